//! Capabilities: root's power split into ~41 pieces, and the 14 a container
//! keeps (ch6). See capabilities(7) and docs/ch6-security.md#capabilities.
//!
//! Through libc (prctl(2) and capset(2)), not a crate: the whole job is one
//! prctl loop, one capset and one prctl, each narrated as the very call it
//! is; and the loop runs up to the running kernel's last capability
//! (PR_CAPBSET_READ says where it ends), so a capability newer than a
//! crate's table is dropped too.

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::{detail, narrate};

/// The capabilities by number, as capabilities(7) names them (without `CAP_`).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (moby's `oci/caps/defaults.go`): what a
/// container's root keeps unless told otherwise.
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities, bit N for capability N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Every capability stepbox knows.
    pub fn all() -> CapSet {
        CapSet((1u64 << NAMES.len()) - 1)
    }

    /// Docker's 14.
    pub fn docker_default() -> CapSet {
        let mut set = CapSet(0);
        for name in DOCKER_DEFAULT {
            set.insert(number(name).expect("a known capability"));
        }
        set
    }

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn insert(&mut self, cap: u32) {
        self.0 |= 1 << cap;
    }

    pub fn remove(&mut self, cap: u32) {
        self.0 &= !(1 << cap);
    }

    /// `CAP_X` names in number order.
    pub fn names(self) -> Vec<String> {
        (0..NAMES.len() as u32)
            .filter(|cap| self.contains(*cap))
            .map(|cap| format!("CAP_{}", NAMES[cap as usize]))
            .collect()
    }

    /// True if the set holds capability `name` (`CAP_SYS_ADMIN` or `SYS_ADMIN`).
    pub fn has(self, name: &str) -> bool {
        number(name).is_some_and(|cap| self.contains(cap))
    }
}

/// The number of capability `name`: `SYS_ADMIN`, `CAP_SYS_ADMIN` or
/// `cap_sys_admin`, as Docker accepts them.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// What `--cap-add` and `--cap-drop` make of Docker's 14, as Docker
/// computes it: `--cap-add ALL` is every capability but those dropped;
/// `--cap-drop ALL` keeps only those added; otherwise the 14, less those
/// dropped, plus those added.
pub fn resolve(add: &[String], drop: &[String]) -> Result<CapSet> {
    let held = held();
    let parse = |flag: &str, names: &[String]| -> Result<(bool, CapSet)> {
        let mut set = CapSet(0);
        let mut all = false;
        for name in names {
            if name.eq_ignore_ascii_case("ALL") {
                all = true;
                continue;
            }
            let cap = number(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "{flag} {}: no such capability: use a name from capabilities(7), e.g. {flag} NET_ADMIN, or ALL",
                    crate::error::quote(name)
                ))
            })?;
            if flag == "--cap-add" && !held.contains(cap) {
                return Err(Error::Invalid(format!(
                    "--cap-add {}: you do not hold it yourself (it is not in your bounding set), \
                     so no container of yours can: leave it out",
                    crate::error::quote(name)
                )));
            }
            set.insert(cap);
        }
        Ok((all, set))
    };
    let (add_all, added) = parse("--cap-add", add)?;
    let (drop_all, dropped) = parse("--cap-drop", drop)?;
    // ALL is every capability the caller holds, as containerd's
    // WithAllCurrentCapabilities: one it lacks could not be given.
    Ok(CapSet(
        held.0
            & if add_all {
                CapSet::all().0 & !dropped.0
            } else if drop_all {
                added.0
            } else {
                (CapSet::docker_default().0 & !dropped.0) | added.0
            },
    ))
}

/// The capabilities this process may still have: its bounding set.
pub fn held() -> CapSet {
    let mut set = CapSet(0);
    for cap in 0..=last_cap() {
        // SAFETY: PR_CAPBSET_READ only reads this process's bounding set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } == 1 {
            set.insert(cap);
        }
    }
    set
}

/// The last capability the running kernel knows (`/proc/sys/kernel/cap_last_cap`),
/// found by asking PR_CAPBSET_READ until it says EINVAL: once per process
/// (a container, cloned from its `run`, finds it known).
fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        let mut last = 0;
        // SAFETY: PR_CAPBSET_READ only reads this process's bounding set.
        while last < 63 && unsafe { libc::prctl(libc::PR_CAPBSET_READ, last + 1, 0, 0, 0) } >= 0 {
            last += 1;
        }
        last
    })
}

/// Keep only `keep`: drop every other capability from the bounding set
/// (so no exec can ever regain it, not even of a setuid-root or file-capable
/// program), set permitted, effective and inheritable to `keep`, and clear
/// the ambient set.
///
/// `switching_user`: a `-u` switch (setgroups, setgid, setuid) follows in
/// `Command::exec`, and needs CAP_SETGID and CAP_SETUID even if they were
/// dropped: they stay in the permitted and effective sets until then (never
/// in the bounding set), and setuid(2) to a non-zero uid clears both sets,
/// while an exec as root gets only the bounding set.
pub fn limit_to(keep: CapSet, switching_user: bool) -> Result<()> {
    // 1. The bounding set first: dropping from it needs CAP_SETPCAP, which
    //    the capset below may take away.
    let last = last_cap();
    let mut dropped = Vec::new();
    for cap in 0..=last {
        if keep.contains(cap) {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP changes only this process's bounding set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            return Err(Error::sys(
                format!("prctl(PR_CAPBSET_DROP, {})", cap_name(cap)),
                Errno::last(),
            )
            .hint("dropping from the bounding set needs CAP_SETPCAP"));
        }
        dropped.push(cap_name(cap));
    }
    narrate!(
        6,
        "prctl(PR_CAPBSET_DROP, cap)   /* {} times: every capability up to {} but the {} kept */",
        dropped.len(),
        cap_name(last),
        keep.names().len()
    );
    detail!(6, "dropped from the bounding set: {}", dropped.join(", "));
    // 2. Permitted, effective and inheritable.
    let mut held = keep;
    if switching_user {
        for name in ["SETGID", "SETUID"] {
            held.insert(number(name).expect("a known capability"));
        }
    }
    let shown = if keep.0 == 0 {
        "0".to_string()
    } else {
        keep.names().join("|")
    };
    let call = if held == keep {
        format!("capset({{ .effective = .permitted = .inheritable = {shown} }})")
    } else {
        format!("capset({{ .effective = .permitted = {shown}|CAP_SETGID|CAP_SETUID /* until the -u switch */, .inheritable = {shown} }})")
    };
    narrate!(6, "{call}");
    capset(held, held, keep).map_err(|errno| Error::sys(call, errno))?;
    // 3. Ambient: capabilities a non-root program would keep across exec.
    narrate!(
        6,
        "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)"
    );
    // SAFETY: clears this process's ambient set.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(Error::sys(
            "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)",
            Errno::last(),
        ));
    }
    Ok(())
}

fn cap_name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map_or_else(|| format!("{cap}"), |name| format!("CAP_{name}"))
}

/// `struct __user_cap_header_struct` of capset(2).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One of the two `struct __user_cap_data_struct` (bits 0-31, then 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// _LINUX_CAPABILITY_VERSION_3: 64-bit sets, in two halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capset(
    effective: CapSet,
    permitted: CapSet,
    inheritable: CapSet,
) -> std::result::Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |set: CapSet, high: bool| (if high { set.0 >> 32 } else { set.0 }) as u32;
    let data = [false, true].map(|high| CapData {
        effective: half(effective, high),
        permitted: half(permitted, high),
        inheritable: half(inheritable, high),
    });
    // SAFETY: capset reads the header and two data structs, which live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// This process's effective set (capget(2)).
pub fn effective() -> CapSet {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data structs, which live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return CapSet(0);
    }
    CapSet(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_default_is_dockers_fourteen() {
        let set = resolve(&[], &[]).unwrap();
        assert_eq!(set.names().len(), 14);
        assert!(set.has("CAP_MKNOD") && set.has("NET_RAW"));
        assert!(!set.has("SYS_ADMIN") && !set.has("DAC_READ_SEARCH"));
    }

    #[test]
    fn names_are_accepted_with_or_without_cap_and_in_any_case() {
        assert_eq!(number("SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("cap_sys_admin"), Some(21));
        assert_eq!(number("CHECKPOINT_RESTORE"), Some(40));
    }

    #[test]
    fn an_unknown_capability_is_refused_with_the_flag_and_an_example() {
        let error = resolve(&names(&["SYS_WIZARD"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--cap-add \"SYS_WIZARD\": no such capability"),
            "{error}"
        );
        let error = resolve(&[], &names(&["NOPE"])).unwrap_err().to_string();
        assert!(error.contains("--cap-drop \"NOPE\""), "{error}");
    }

    #[test]
    fn drop_all_keeps_only_what_is_added() {
        let set = resolve(&names(&["NET_ADMIN"]), &names(&["ALL"])).unwrap();
        assert_eq!(set.names(), ["CAP_NET_ADMIN"]);
        assert_eq!(resolve(&[], &names(&["all"])).unwrap(), CapSet(0));
    }

    #[test]
    fn add_all_is_everything_held_but_what_is_dropped() {
        let set = resolve(&names(&["ALL"]), &names(&["SYS_ADMIN"])).unwrap();
        assert!(!set.has("SYS_ADMIN"));
        // Everything this process holds (its bounding set), but SYS_ADMIN (21).
        assert_eq!(set, CapSet(held().0 & CapSet::all().0 & !(1 << 21)));
    }

    #[test]
    fn otherwise_the_fourteen_less_dropped_plus_added() {
        let set = resolve(&names(&["SYS_TIME"]), &names(&["MKNOD", "CHOWN"])).unwrap();
        assert!(set.has("SYS_TIME") && !set.has("MKNOD") && !set.has("CHOWN"));
        assert_eq!(set.names().len(), 13);
    }
}
