//! The ideas behind stepbox, one module each. A chapter binary is a short
//! story whose every step calls into one of these.
//!
//! | concept                                   | module          | introduced in |
//! |-------------------------------------------|-----------------|---------------|
//! | errors naming the call, path and errno    | [`error`]       | ch1           |
//! | checking the machine (`--doctor`)         | [`doctor`]      | ch1           |
//! | narrating each system call in C form      | [`narration`]   | ch1           |
//! | shared command-line arguments             | [`cli`]         | ch1           |
//! | am I root? (a leaf every module may ask)  | [`privilege`]   | ch1           |
//! | namespaces and user-namespace id maps     | [`namespace`]   | ch1           |
//! | clone, release, exec, wait, signals       | [`process`]     | ch1           |
//! | mount propagation, tmpfs, bind, proc, dev | [`mount`]       | ch1           |
//! | the data root, scratch dirs, names        | [`dataroot`]    | ch2           |
//! | image store, provisioning, safe unpack    | [`image`]       | ch2           |
//! | chroot and pivot_root, the escape         | [`rootfs`]      | ch2           |
//! | the container's own pty, relayed          | [`terminal`]    | ch2           |
//! | PID 1 that forwards signals and reaps     | [`init`]        | ch2           |
//! | the command's clean environment, `-e`     | [`environment`] | ch2           |
//! | layers, overlayfs, per-run write layers   | [`overlay`]     | ch3           |
//! | the image's user, looked up in the image  | [`user`]        | ch3           |
//! | volumes: -v parsing, in-root bind mounts  | [`volume`]      | ch4           |
//! | named containers, state, locks, listing   | [`container`]   | ch5           |
//! | the container verbs; what a chapter adds  | [`lifecycle`]   | ch5           |
//! | caps, no_new_privs, masks, seccomp        | [`security`]    | ch6           |
//! | cgroups: memory, cpu and pids limits      | [`cgroup`]      | ch7           |

pub mod cgroup;
pub mod cli;
pub mod container;
pub mod dataroot;
pub mod doctor;
pub mod environment;
pub mod error;
pub mod image;
pub mod init;
pub mod lifecycle;
pub mod mount;
pub mod namespace;
pub mod narration;
pub mod overlay;
pub mod privilege;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod terminal;
pub mod user;
pub mod volume;

pub use error::{Error, Result};
