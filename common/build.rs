//! Link the unwinder statically (libgcc_eh.a, as `-C target-feature=+crt-static`
//! does) instead of loading libgcc_s.so.1 at every start: each chapter then
//! loads one shared library (libc), not two. Loading the second cost about
//! 0.2 ms per start on the machine the benchmark runs on (scripts/bench.sh's
//! ch1 row), for code a release build (panic = "abort") never runs.

fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
