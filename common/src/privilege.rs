//! Whether this process runs as root (every chapter). A leaf: everything
//! that behaves differently without root asks here.

use nix::unistd::Uid;

/// True when we are not root and so need a user namespace to do anything.
pub fn rootless() -> bool {
    !Uid::effective().is_root()
}
