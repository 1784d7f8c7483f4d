//! Mount flags as C spells them (common::mount::flag_names, ch1 onwards):
//! the narration prints every mount(2) with its flags, so a learner can line
//! it up with the man page.

use common::mount::flag_names;
use nix::mount::MsFlags;

#[test]
fn no_flags_are_written_as_zero() {
    assert_eq!(flag_names(MsFlags::empty()), "0");
}

#[test]
fn flags_are_joined_with_a_bar() {
    assert_eq!(
        flag_names(MsFlags::MS_REC | MsFlags::MS_PRIVATE),
        "MS_REC|MS_PRIVATE"
    );
}

#[test]
fn flags_come_in_one_fixed_order_whatever_the_order_asked() {
    assert_eq!(
        flag_names(MsFlags::MS_REC | MsFlags::MS_BIND | MsFlags::MS_RDONLY),
        "MS_RDONLY|MS_BIND|MS_REC"
    );
    assert_eq!(
        flag_names(MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC),
        "MS_NOSUID|MS_NODEV|MS_NOEXEC"
    );
}

#[test]
fn every_flag_stepbox_mounts_with_is_named() {
    for (flag, name) in [
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
        (MsFlags::MS_REMOUNT, "MS_REMOUNT"),
        (MsFlags::MS_BIND, "MS_BIND"),
        (MsFlags::MS_REC, "MS_REC"),
        (MsFlags::MS_PRIVATE, "MS_PRIVATE"),
        (MsFlags::MS_SLAVE, "MS_SLAVE"),
        (MsFlags::MS_SHARED, "MS_SHARED"),
        (MsFlags::MS_NOATIME, "MS_NOATIME"),
        (MsFlags::MS_NODIRATIME, "MS_NODIRATIME"),
        (MsFlags::MS_RELATIME, "MS_RELATIME"),
        (MsFlags::MS_STRICTATIME, "MS_STRICTATIME"),
    ] {
        assert_eq!(flag_names(flag), name);
    }
}
