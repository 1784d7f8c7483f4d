//! What an image holds besides file bytes (docs/ch3-overlay.md, the
//! unpacker; docs/ch5-commit.md, commit): device nodes are skipped with one
//! notice, mtimes and the `user.*` and `security.capability` extended
//! attributes are kept on unpack and written back by commit; and a real
//! distro root filesystem (Debian's minbase, made by mmdebstrap) runs.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::tarballs::{docker_save, tarball, Entry};
use support::{list_dir, Outcome, Sandbox, Who};

const CH3: &str = env!("CARGO_BIN_EXE_ch3-overlay");
const CH5: &str = env!("CARGO_BIN_EXE_ch5-commit");

/// 2001-02-03, 2002-03-04 and 2003-04-05, 00:00 UTC.
const FILE_MTIME: u64 = 981_158_400;
const DIR_MTIME: u64 = 1_015_200_000;
const LINK_MTIME: u64 = 1_049_500_800;

/// `cap_net_raw=ep` as the kernel stores it in `security.capability`
/// (struct vfs_cap_data, revision 2: magic with the effective flag, then
/// permitted and inheritable words; CAP_NET_RAW is bit 13). The root test
/// checks these bytes with getcap, the real tool.
const CAP_NET_RAW_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn sandbox(who: Who) -> Sandbox {
    let sandbox = Sandbox::new(who);
    sandbox.with_busybox();
    sandbox
}

/// Write `bytes` as `name` in the sandbox, owned by its user.
fn image_file(sandbox: &Sandbox, name: &str, bytes: &[u8]) -> PathBuf {
    let path = sandbox.path().join(name);
    fs::write(&path, bytes).unwrap();
    support::chown_to_sandbox_user(sandbox, &path);
    path
}

/// The busybox image's entries, then `more` (a tar stream without its end
/// marker, as `tar_entries` makes): a root filesystem with extra entries.
fn busybox_plus(more: &[u8]) -> Vec<u8> {
    let busybox = fs::read(support::busybox_image()).unwrap();
    let mut out = tar::Builder::new(Vec::new());
    let mut reader = tar::Archive::new(&busybox[..]);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.append(&header, &data[..]).unwrap();
    }
    let mut bytes = out.into_inner().unwrap();
    // Builder::into_inner wrote the end marker (two zero blocks): ours goes after `more`.
    bytes.truncate(bytes.len() - 1024);
    bytes.extend_from_slice(more);
    bytes.resize(bytes.len() + 1024, 0);
    bytes
}

/// One PAX extended header ('x') with `records` (key, value), for the entry after it.
fn pax(builder: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (key, value) in records {
        let rest = [b" ", key.as_bytes(), b"=", value, b"\n"].concat();
        let mut len = rest.len() + 1;
        while len.to_string().len() + rest.len() > len {
            len += 1;
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.extend_from_slice(&rest);
    }
    let mut header = tar::Header::new_ustar();
    header.set_path("PaxHeaders/x").unwrap();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, &data[..]).unwrap();
}

/// A header of `kind` at `mtime`, owned by root.
fn header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    header
}

/// Entries (no end marker) with metadata to keep: /data (a directory with
/// an mtime of its own, made before its children), /data/file (an mtime,
/// `user.note=hello`, `security.capability` cap_net_raw=ep, and a
/// `trusted.secret` that must not be set), /data/link (a symlink's own mtime).
fn metadata_entries() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o755, DIR_MTIME);
    b.append_data(&mut dir, "data/", std::io::empty()).unwrap();
    pax(
        &mut b,
        &[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.security.capability", &CAP_NET_RAW_EP),
            ("SCHILY.xattr.trusted.secret", b"x"),
        ],
    );
    let mut file = header(tar::EntryType::Regular, 0o755, FILE_MTIME);
    file.set_size(3);
    b.append_data(&mut file, "data/file", &b"hi\n"[..]).unwrap();
    let mut link = header(tar::EntryType::Symlink, 0o777, LINK_MTIME);
    b.append_link(&mut link, "data/link", "file").unwrap();
    without_end(b)
}

/// Entries (no end marker) a distro tarball holds in /dev, and a socket
/// (S_IFSOCK in the mode field, as some writers put it), a hard link to a
/// device, and /etc/marker.
fn device_entries() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, major, minor) in [
        ("dev/mem", tar::EntryType::Char, 1, 1),
        ("dev/null", tar::EntryType::Char, 1, 3),
        ("dev/sda", tar::EntryType::Block, 8, 0),
    ] {
        let mut h = header(kind, 0o666, FILE_MTIME);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    // GNU tar stores a second link to a device as a hard link to the first.
    let mut link = header(tar::EntryType::Link, 0o666, FILE_MTIME);
    b.append_link(&mut link, "dev/null2", "dev/null").unwrap();
    let mut socket = header(tar::EntryType::Regular, 0o140_755, FILE_MTIME);
    b.append_data(&mut socket, "run/socket", std::io::empty())
        .unwrap();
    let mut marker = header(tar::EntryType::Regular, 0o644, FILE_MTIME);
    marker.set_size(3);
    b.append_data(&mut marker, "etc/marker", &b"ok\n"[..])
        .unwrap();
    without_end(b)
}

fn without_end(builder: tar::Builder<Vec<u8>>) -> Vec<u8> {
    let mut bytes = builder.into_inner().unwrap();
    bytes.truncate(bytes.len() - 1024);
    bytes
}

/// The extended attribute `name` of `path` (never following a symlink),
/// or None if it has none of that name.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = CString::new(name).unwrap();
    let mut value = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated; the buffer is valid for its length.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if n < 0 {
        let error = std::io::Error::last_os_error();
        assert_eq!(error.raw_os_error(), Some(libc::ENODATA), "{path:?} {name}");
        return None;
    }
    value.truncate(n as usize);
    Some(value)
}

/// The unpacked layer holding `rel` under the sandbox's data root.
fn layer_with(sandbox: &Sandbox, rel: &str) -> PathBuf {
    let layers = sandbox.data_root().join("layers");
    list_dir(&layers)
        .into_iter()
        .map(|digest| layers.join(digest))
        .find(|layer| layer.join(rel).symlink_metadata().is_ok())
        .unwrap_or_else(|| panic!("no layer holds {rel}"))
}

/// Every block or character device below `dir` but 0/0 whiteouts.
fn devices_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        if kind.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if (kind.is_char_device() && meta.rdev() != 0) || kind.is_block_device() {
            found.push(path);
        }
    }
    found
}

// Device nodes (and sockets) in a root filesystem are skipped, never made,
// with one notice that -q does not hide; the rest of the image runs.
fn claim_devices_skipped(who: Who) {
    let sandbox = sandbox(who);
    let image = image_file(&sandbox, "devs.tar", &busybox_plus(&device_entries()));
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "cat",
            "/etc/marker",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(
        out.error_lines(),
        [
            "ch3-overlay: skipped 4 device nodes and 1 socket in the image: \
          a container gets its own /dev"
        ],
        "{out:#?}"
    );
    let layer = layer_with(&sandbox, "etc/marker");
    assert_eq!(devices_below(&layer), Vec::<PathBuf>::new());
    assert!(
        !layer.join("run/socket").exists(),
        "the socket entry was made"
    );
}

root_and_rootless!(claim_devices_skipped: device_nodes_in_an_image_are_skipped_with_one_notice, rootless_device_nodes_in_an_image_are_skipped_with_one_notice);

// A 0/0 character device in a layer is an overlay whiteout, as overlayfs
// itself writes them: it hides the file below, and is no device.
fn claim_zero_zero_whiteout(who: Who) {
    let sandbox = sandbox(who);
    let busybox = fs::read(support::busybox_image()).unwrap();
    let top = tarball(&[Entry::Dir("etc/"), Entry::CharDevice("etc/passwd", 0, 0)]);
    let image = image_file(&sandbox, "saved.tar", &docker_save(&[busybox, top]));
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "test -e /etc/passwd || echo gone",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "gone\n");
    assert_eq!(out.error_lines(), Vec::<&str>::new());
}

root_and_rootless!(claim_zero_zero_whiteout: a_zero_zero_device_in_a_layer_is_a_whiteout, rootless_a_zero_zero_device_in_a_layer_is_a_whiteout);

// Unpack keeps mtimes (a directory's, set after its children; a symlink's
// own) and the user.* and security.capability xattrs; trusted.* is never
// set, and what is not set is counted in the one notice.
fn claim_unpack_keeps_metadata(who: Who) {
    let sandbox = sandbox(who);
    let image = image_file(&sandbox, "meta.tar", &busybox_plus(&metadata_entries()));
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "stat",
            "-c",
            "%n %Y",
            "/data/file",
            "/data",
            "/data/link",
        ],
    );
    out.assert_ok();
    assert_eq!(
        out.stdout,
        format!("/data/file {FILE_MTIME}\n/data {DIR_MTIME}\n/data/link {LINK_MTIME}\n")
    );
    let file = layer_with(&sandbox, "data/file").join("data/file");
    assert_eq!(xattr(&file, "user.note").as_deref(), Some(&b"hello"[..]));
    assert_eq!(xattr(&file, "trusted.secret"), None);
    let cap = xattr(&file, "security.capability");
    if sandbox.rootless() {
        // Setting a file capability needs CAP_SETFCAP over the file's
        // user namespace: the unpack (in the host's, as the user) is refused.
        assert_eq!(cap, None);
        assert_eq!(
            out.error_lines(),
            [
                "ch3-overlay: skipped 1 extended attribute of a namespace never set (trusted.* or \
              other) and 1 extended attribute this user or filesystem cannot set in the image"
            ],
            "{out:#?}"
        );
    } else {
        assert_eq!(cap.as_deref(), Some(&CAP_NET_RAW_EP[..]));
        let getcap = Command::new("getcap")
            .arg(&file)
            .output()
            .expect("getcap is missing: apt-get install libcap2-bin");
        let shown = String::from_utf8_lossy(&getcap.stdout);
        assert!(shown.trim_end().ends_with(" cap_net_raw=ep"), "{shown}");
        assert_eq!(
            out.error_lines(),
            [
                "ch3-overlay: skipped 1 extended attribute of a namespace never set (trusted.* or \
              other) in the image"
            ],
            "{out:#?}"
        );
    }
}

root_and_rootless!(claim_unpack_keeps_metadata: unpack_keeps_mtimes_and_user_and_capability_xattrs, rootless_unpack_keeps_mtimes_and_user_and_capability_xattrs);

/// An entry's mtime and its extended attributes (from PAX records).
type Metadata = (u64, Vec<(String, Vec<u8>)>);

/// Each entry of the gzip tarball `path`, by name.
fn committed(path: &Path) -> std::collections::BTreeMap<String, Metadata> {
    let file = fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions().unwrap() {
            for record in records {
                let record = record.unwrap();
                if let Some(name) = record.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), record.value_bytes().to_vec()));
                }
            }
        }
        out.insert(name, (entry.header().mtime().unwrap(), xattrs));
    }
    out
}

// Commit writes the mtimes and the kept xattrs back (PAX SCHILY.xattr
// records), and GNU tar and bsdtar read the commit without a warning.
fn claim_commit_writes_metadata(who: Who) {
    let sandbox = sandbox(who);
    let image = image_file(&sandbox, "meta.tar", &busybox_plus(&metadata_entries()));
    let run = [
        "-q",
        "run",
        "--name",
        "meta",
        image.to_str().unwrap(),
        "true",
    ];
    sandbox.run(CH5, &run).assert_ok();
    // export writes the whole tree; commit's layer is written the same way.
    let tarball = sandbox.path().join("kept.tar.gz");
    sandbox
        .run(
            CH5,
            &["-q", "export", "meta", "-o", tarball.to_str().unwrap()],
        )
        .assert_ok();
    let entries = committed(&tarball);
    let mut want_file = vec![("user.note".to_string(), b"hello".to_vec())];
    if !sandbox.rootless() {
        want_file.insert(
            0,
            ("security.capability".to_string(), CAP_NET_RAW_EP.to_vec()),
        );
    }
    let mut got_file = entries["data/file"].clone();
    got_file.1.sort();
    assert_eq!(got_file, (FILE_MTIME, want_file));
    assert_eq!(entries["data"], (DIR_MTIME, vec![]));
    assert_eq!(entries["data/link"], (LINK_MTIME, vec![]));

    // Each tool shows the date its own way.
    for (tool, package, date) in [
        ("tar", "tar", "2001-02-03"),
        ("bsdtar", "libarchive-tools", "Feb  3  2001"),
    ] {
        let out = Command::new(tool)
            .args(["-tvzf", tarball.to_str().unwrap()])
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}: apt-get install {package}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{tool}: {stderr}"
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing
                .lines()
                .any(|l| l.ends_with("data/file") && l.contains(date)),
            "{tool}: {listing}"
        );
    }
}

root_and_rootless!(claim_commit_writes_metadata: commit_writes_mtimes_and_xattrs_back, rootless_commit_writes_mtimes_and_xattrs_back);

/// A Debian bookworm minbase root filesystem tarball, made once by
/// mmdebstrap into the target directory and reused by later runs.
fn debian_minbase() -> PathBuf {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-bookworm-minbase.tar");
            if !cache.is_file() {
                let partial = cache.with_extension(format!("partial.{}", std::process::id()));
                let out = Command::new("mmdebstrap")
                    .args(["--quiet", "--variant=minbase", "--format=tar", "bookworm"])
                    .arg(&partial)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("mmdebstrap: {e}: the test needs it: apt-get install mmdebstrap")
                    });
                assert!(
                    out.status.success(),
                    "mmdebstrap failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                fs::rename(&partial, &cache).unwrap();
            }
            cache
        })
        .clone()
}

const DEBIAN_CHECK: &str = "grep VERSION_CODENAME /etc/os-release; apt-get --version | head -n 1; \
                            stat -c '%A %u %n' /usr/bin/passwd; ls -l /usr/bin/passwd";

/// What a Debian minbase container printed for DEBIAN_CHECK.
fn assert_debian_ran(out: &Outcome, chapter: &str) {
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "VERSION_CODENAME=bookworm", "{out:#?}");
    assert!(lines[1].starts_with("apt 2.6"), "{out:#?}");
    assert_eq!(lines[2], "-rwsr-xr-x 0 /usr/bin/passwd", "{out:#?}");
    assert!(lines[3].starts_with("-rwsr-xr-x"), "{out:#?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:#?}");
    let prefix = format!("{chapter}: skipped ");
    assert!(
        errors[0].starts_with(&prefix)
            && errors[0].ends_with(" device nodes in the image: a container gets its own /dev"),
        "{out:#?}"
    );
}

/// The Debian tarball copied into the sandbox, owned by its user.
fn debian_in(sandbox: &Sandbox) -> PathBuf {
    let image = sandbox.path().join("debian.tar");
    fs::copy(debian_minbase(), &image).unwrap();
    support::chown_to_sandbox_user(sandbox, &image);
    image
}

// A debootstrap-style minbase tarball (with /dev device nodes) runs in ch3:
// os-release, apt, and passwd keeps its setuid bit.
fn claim_debian_ch3(who: Who) {
    let sandbox = sandbox(who);
    let image = debian_in(&sandbox);
    let args = [
        "-q",
        "--image",
        image.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        DEBIAN_CHECK,
    ];
    assert_debian_ran(&sandbox.run(CH3, &args), "ch3-overlay");
}

root_and_rootless!(claim_debian_ch3: a_debian_minbase_tarball_runs_in_ch3, rootless_a_debian_minbase_tarball_runs_in_ch3);

// ...and in ch5, as a named container.
fn claim_debian_ch5(who: Who) {
    let sandbox = sandbox(who);
    let image = debian_in(&sandbox);
    let args = [
        "-q",
        "run",
        "--name",
        "deb",
        image.to_str().unwrap(),
        "sh",
        "-c",
        DEBIAN_CHECK,
    ];
    assert_debian_ran(&sandbox.run(CH5, &args), "ch5-commit");
}

root_and_rootless!(claim_debian_ch5: a_debian_minbase_tarball_runs_in_ch5, rootless_a_debian_minbase_tarball_runs_in_ch5);

// An extended attribute the kernel will not take (a name longer than 255
// bytes: ERANGE; a value over 64 KiB: E2BIG) is counted in the notice and
// left out; it does not fail the unpack.
fn claim_overlong_xattrs_are_skipped(who: Who) {
    let sandbox = sandbox(who);
    let long_name = format!("SCHILY.xattr.user.{}", "n".repeat(300));
    let huge_value = vec![b'v'; 70_000];
    let mut b = tar::Builder::new(Vec::new());
    pax(
        &mut b,
        &[
            (long_name.as_str(), b"x"),
            ("SCHILY.xattr.user.huge", &huge_value),
        ],
    );
    let mut file = header(tar::EntryType::Regular, 0o644, FILE_MTIME);
    file.set_size(3);
    b.append_data(&mut file, "odd-xattrs", &b"ok\n"[..])
        .unwrap();
    let image = image_file(&sandbox, "odd.tar", &busybox_plus(&without_end(b)));
    let out = sandbox.run(
        CH3,
        &[
            "-q",
            "--image",
            image.to_str().unwrap(),
            "--",
            "cat",
            "/odd-xattrs",
        ],
    );
    out.assert_ok();
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(
        out.error_lines(),
        ["ch3-overlay: skipped 2 extended attributes this user or filesystem cannot set in the image"],
        "{out:#?}"
    );
}
root_and_rootless!(claim_overlong_xattrs_are_skipped: overlong_xattrs_are_skipped_and_counted, rootless_overlong_xattrs_are_skipped_and_counted);

// commit leaves out an extended attribute whose name holds '=' (a PAX
// record splits at its first '=', so it would come back as another
// attribute), saying so; the others are committed.
fn claim_commit_skips_xattr_names_with_equals(who: Who) {
    let sandbox = sandbox(who);
    sandbox
        .run(
            CH5,
            &[
                "-q",
                "run",
                "-d",
                "--name",
                "eq",
                "busybox",
                "sh",
                "-c",
                "echo hi > /f; sleep 300",
            ],
        )
        .assert_ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let file = sandbox.data_root().join("containers/eq/upper/f");
    for (name, value) in [("user.a=b", "val"), ("user.plain", "kept")] {
        let c_path = CString::new(file.as_os_str().as_bytes()).unwrap();
        let c_name = CString::new(name).unwrap();
        // SAFETY: NUL-terminated strings and a value valid for its length.
        let rc = unsafe {
            libc::lsetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(
            rc,
            0,
            "setxattr {name}: {}",
            std::io::Error::last_os_error()
        );
    }
    let tarball = sandbox.path().join("eqimage.tar.gz");
    let out = sandbox.run(
        CH5,
        &["-q", "export", "eq", "-o", tarball.to_str().unwrap()],
    );
    sandbox.run(CH5, &["-q", "rm", "-f", "eq"]).assert_ok();
    out.assert_ok();
    assert_eq!(
        out.error_lines(),
        ["ch5-commit: not committed: the extended attribute user.a=b of /f (its name holds '=')"],
        "{out:#?}"
    );
    let entries = committed(&tarball);
    let f = &entries["f"];
    assert!(
        f.1.contains(&("user.plain".to_string(), b"kept".to_vec())),
        "{f:?}"
    );
    assert!(!f.1.iter().any(|(k, _)| k.starts_with("user.a")), "{f:?}");
}
root_and_rootless!(claim_commit_skips_xattr_names_with_equals: commit_leaves_out_an_xattr_whose_name_holds_equals, rootless_commit_leaves_out_an_xattr_whose_name_holds_equals);
