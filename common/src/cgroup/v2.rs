//! cgroup v2: one tree at /sys/fs/cgroup, every controller's files in every
//! directory (ch7). A controller reaches a cgroup only if each cgroup above
//! it lists it in `cgroup.subtree_control`, so making `stepbox/<name>`
//! enables memory, cpu and pids on the way down. See cgroups(7) and the
//! kernel's Documentation/admin-guide/cgroup-v2.rst.
//!
//! ```text
//! /sys/fs/cgroup/                 cgroup.subtree_control: +memory +cpu +pids
//! └── stepbox/                    cgroup.subtree_control: +memory +cpu +pids
//!     └── web/                    memory.max, memory.swap.max, cpu.max, pids.max,
//!                                 cgroup.procs, memory.events, cgroup.kill
//! ```

use std::path::Path;

use super::{
    keyed_value, limits, mkdir, mkdir_as, read_file, read_number, read_optional, write_file,
    Cgroup, Hierarchy, Limits, Stats,
};
use crate::error::{quote, Error, Result};
use crate::{detail, narrate};

/// The controllers that `stepbox/<name>` gets: memory, cpu and pids always
/// (their use is what `stats` shows), cpuset when `--cpuset-cpus` asks.
pub fn wanted_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut wanted = vec!["memory", "cpu", "pids"];
    if limits.cpuset_cpus.is_some() {
        wanted.push("cpuset");
    }
    wanted
}

/// The controllers a limit needs, which must be there or the limit is refused.
fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if limits.memory.is_some() {
        needed.push("memory");
    }
    if limits.cpus.is_some() || limits.cpu_shares.is_some() {
        needed.push("cpu");
    }
    if limits.pids.is_some() {
        needed.push("pids");
    }
    if limits.cpuset_cpus.is_some() {
        needed.push("cpuset");
    }
    needed
}

/// What to write to a `cgroup.subtree_control` that has `enabled` so that
/// `wanted` reach the children, given what the cgroup itself has
/// (`available`, its `cgroup.controllers`): `+memory +pids`, or `None`
/// when nothing is missing.
pub fn subtree_change(available: &str, enabled: &str, wanted: &[&str]) -> Option<String> {
    let available: Vec<&str> = available.split_whitespace().collect();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| available.contains(c) && !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    (!missing.is_empty()).then(|| missing.join(" "))
}

/// Hand the `wanted` controllers down from `dir` to its children; a
/// `needed` one it does not have is refused, naming the fix.
fn enable_controllers(dir: &Path, wanted: &[&str], needed: &[&str]) -> Result<()> {
    let available = read_file(&dir.join("cgroup.controllers"))?;
    if let Some(missing) = needed
        .iter()
        .find(|c| !available.split_whitespace().any(|a| a == **c))
    {
        return Err(Error::Invalid(format!(
            "the cgroup {} has no {missing} controller to give, so that limit cannot be set: \
             as root, enable it above (echo +{missing} > PARENT/cgroup.subtree_control); \
             rootless, ask for it in the delegation (systemd: Delegate=yes gives memory, cpu and pids)",
            quote(dir)
        )));
    }
    let enabled = read_file(&dir.join("cgroup.subtree_control"))?;
    if let Some(change) = subtree_change(&available, &enabled, wanted) {
        write_file(&dir.join("cgroup.subtree_control"), &change)?;
    }
    Ok(())
}

/// The leaf that a delegated cgroup's own processes are moved into.
pub const SUPERVISOR_LEAF: &str = "stepbox-supervisor";

/// cgroup v2's "no internal processes" rule: a cgroup other than the root
/// can hand controllers down only while it holds no process itself. A
/// rootless caller's delegated cgroup holds the caller: so its processes
/// move into a leaf of their own first (what systemd asks of a delegated
/// scope), once, when a controller is still to be enabled.
fn move_processes_to_a_leaf(parent: &Path, wanted: &[&str]) -> Result<()> {
    let available = read_file(&parent.join("cgroup.controllers"))?;
    let enabled = read_file(&parent.join("cgroup.subtree_control"))?;
    if subtree_change(&available, &enabled, wanted).is_none() {
        return Ok(());
    }
    let pids = super::read_pids(&parent.join("cgroup.procs"))?;
    if pids.is_empty() {
        return Ok(());
    }
    narrate!(
        7,
        "/* {} holds processes, so it cannot hand controllers down: they move to {SUPERVISOR_LEAF}/ */",
        quote(parent)
    );
    let leaf = parent.join(SUPERVISOR_LEAF);
    mkdir(&leaf)?;
    for pid in pids {
        match write_file(&leaf.join("cgroup.procs"), &pid.to_string()) {
            Err(error) if error.errno() == Some(nix::errno::Errno::ESRCH) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Make `<base>/<parent>/stepbox/<name>`, enabling the controllers in the
/// parent and in stepbox/ first (a controller must be enabled in a
/// cgroup's parent before its files appear in the cgroup).
pub fn create(hierarchy: &Hierarchy, name: &str, limits: &Limits) -> Result<Cgroup> {
    let parent = hierarchy.base.join(&hierarchy.parent);
    let stepbox = parent.join(super::STEPBOX_DIR);
    let dir = stepbox.join(name);
    let wanted = wanted_controllers(limits);
    let needed = needed_controllers(limits);
    if !hierarchy.parent.as_os_str().is_empty() {
        move_processes_to_a_leaf(&parent, &wanted)?;
    }
    enable_controllers(&parent, &wanted, &needed)?;
    // Another container's removal may rmdir stepbox/ between our mkdir and
    // the next step: one retry makes it again.
    let mut tries = 0;
    loop {
        tries += 1;
        mkdir_as(&stepbox, false)?;
        let made = enable_controllers(&stepbox, &wanted, &needed).and_then(|()| mkdir(&dir));
        match made {
            Err(error) if tries < 2 && error.errno() == Some(nix::errno::Errno::ENOENT) => continue,
            other => other?,
        }
        break;
    }
    Ok(Cgroup {
        mode: super::Mode::V2,
        name: name.to_string(),
        dirs: vec![dir],
        stepbox_dirs: vec![stepbox],
    })
}

/// Write the limits into `dir`'s files: memory.max with swap off
/// (memory.swap.max 0, so the limit cannot be dodged by swapping, as
/// Docker's `-m` alone means), cpu.max, pids.max, cpuset.cpus, cpu.weight.
pub fn apply(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(bytes) = limits.memory {
        write_file(&dir.join("memory.max"), &bytes.to_string())?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write_file(&swap, "0")?;
        } else {
            detail!(
                7,
                "no memory.swap.max: this kernel does not account swap, so there is none to turn off"
            );
        }
    }
    if let Some(quota) = limits.cpus {
        write_file(&dir.join("cpu.max"), &quota.cpu_max())?;
    }
    if let Some(pids) = limits.pids {
        write_file(&dir.join("pids.max"), &pids.file_value())?;
    }
    if let Some(cpus) = &limits.cpuset_cpus {
        write_file(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(shares) = limits.cpu_shares {
        narrate!(
            7,
            "/* --cpu-shares {shares} is v1's cpu.shares; v2's cpu.weight is 1 + (shares - 2) * 9999 / 262142 */"
        );
        write_file(
            &dir.join("cpu.weight"),
            &limits::shares_to_weight(shares).to_string(),
        )?;
    }
    Ok(())
}

/// True while a process is in `dir` or below (`cgroup.events`' populated).
pub fn populated(dir: &Path) -> Result<bool> {
    let events = read_file(&dir.join("cgroup.events"))?;
    Ok(keyed_value(&events, "populated") == Some(1))
}

/// `memory.events`' oom_kill: processes the OOM killer killed in `dir`.
pub fn oom_kills(dir: &Path) -> Result<u64> {
    let events = read_file(&dir.join("memory.events"))?;
    Ok(keyed_value(&events, "oom_kill").unwrap_or(0))
}

/// memory.current, cpu.stat's usage_usec and throttled_usec, pids.current.
pub fn stats(dir: &Path) -> Result<Stats> {
    let cpu = read_optional(&dir.join("cpu.stat"))?.unwrap_or_default();
    Ok(Stats {
        memory_bytes: read_number(&dir.join("memory.current"))?,
        memory_limit: read_number(&dir.join("memory.max"))?,
        cpu_usec: keyed_value(&cpu, "usage_usec"),
        throttled_usec: keyed_value(&cpu, "throttled_usec"),
        pids: read_number(&dir.join("pids.current"))?,
        pids_limit: read_number(&dir.join("pids.max"))?,
    })
}

/// Kill everything in `dir` at once with `cgroup.kill` (Linux 5.14+), and
/// wait until it is empty. False if this kernel has no cgroup.kill.
pub fn kill(dir: &Path) -> Result<bool> {
    let file = dir.join("cgroup.kill");
    if !file.exists() {
        return Ok(false);
    }
    if !populated(dir)? {
        return Ok(true);
    }
    write_file(&file, "1")?;
    let deadline = std::time::Instant::now() + super::REMOVE_PATIENCE;
    while populated(dir)? {
        if std::time::Instant::now() > deadline {
            return Err(Error::Conflict(format!(
                "the cgroup {} still holds processes after cgroup.kill: try again",
                quote(dir)
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_controllers_that_the_cgroup_has_are_enabled() {
        let all = "cpuset cpu io memory hugetlb pids rdma misc";
        assert_eq!(
            subtree_change(all, "", &["memory", "cpu", "pids"]).as_deref(),
            Some("+memory +cpu +pids")
        );
        assert_eq!(
            subtree_change(all, "cpu memory", &["memory", "cpu", "pids"]).as_deref(),
            Some("+pids")
        );
        assert_eq!(
            subtree_change(all, "memory cpu pids", &["memory", "cpu", "pids"]),
            None
        );
        // A delegation without cpu: memory and pids only.
        assert_eq!(
            subtree_change("memory pids", "", &["memory", "cpu", "pids"]).as_deref(),
            Some("+memory +pids")
        );
    }

    #[test]
    fn each_limit_needs_its_controller() {
        let none = Limits::default();
        assert!(needed_controllers(&none).is_empty());
        assert_eq!(wanted_controllers(&none), ["memory", "cpu", "pids"]);
        let all = Limits {
            memory: Some(1 << 25),
            cpus: Some(limits::CpuQuota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            pids: Some(limits::Pids::Limit(16)),
            cpuset_cpus: Some("0".into()),
            cpu_shares: None,
        };
        assert_eq!(
            needed_controllers(&all),
            ["memory", "cpu", "pids", "cpuset"]
        );
    }

    #[test]
    fn the_limits_are_written_to_v2_files() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            memory: Some(33_554_432),
            cpus: Some(limits::CpuQuota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            pids: Some(limits::Pids::Limit(16)),
            cpuset_cpus: None,
            cpu_shares: Some(1024),
        };
        // The kernel makes a cgroup's files (memory.swap.max only where
        // swap is accounted); stepbox never creates one.
        for file in [
            "memory.max",
            "memory.swap.max",
            "cpu.max",
            "pids.max",
            "cpu.weight",
        ] {
            std::fs::write(dir.path().join(file), "max").unwrap();
        }
        apply(dir.path(), &limits).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("memory.max"), "33554432");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "16");
        assert_eq!(read("cpu.weight"), "39");
        assert!(!dir.path().join("cpuset.cpus").exists());
    }
}
