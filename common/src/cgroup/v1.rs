//! cgroup v1: one tree per controller, each its own mount under
//! /sys/fs/cgroup (ch7, on hybrid and legacy hosts, as runc does there).
//! The container gets a directory in each tree, and its child moves itself
//! into each one (`0` written to its `tasks`).
//!
//! ```text
//! /sys/fs/cgroup/            (a tmpfs)
//! ├── memory/stepbox/web/    memory.limit_in_bytes, memory.memsw.limit_in_bytes,
//! │                          memory.oom_control, memory.usage_in_bytes
//! ├── cpu/stepbox/web/       cpu.cfs_period_us, cpu.cfs_quota_us, cpu.shares
//! ├── cpuacct/stepbox/web/   cpuacct.usage
//! ├── pids/stepbox/web/      pids.max, pids.current
//! └── unified/               (hybrid: cgroup2, with no controllers)
//! ```

use std::path::{Path, PathBuf};

use super::{
    keyed_value, mkdir, mkdir_as, read_file, read_number, write_file, write_file_as, Cgroup,
    Hierarchy, Limits,
};
use crate::error::{quote, Error, Result};
use crate::narrate;

/// A file that only controller `controller`'s cgroups have.
fn marker(controller: &str) -> &'static str {
    match controller {
        "memory" => "memory.limit_in_bytes",
        "cpu" => "cpu.cfs_quota_us",
        "cpuacct" => "cpuacct.usage",
        "pids" => "pids.max",
        "cpuset" => "cpuset.cpus",
        "freezer" => "freezer.state",
        _ => "cgroup.procs",
    }
}

/// One v1 hierarchy mounted under /sys/fs/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Its directory's name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`, `systemd`).
    pub name: String,
    /// Where it is mounted.
    pub dir: PathBuf,
    /// Its mount options as mount(2) takes them again (`memory`,
    /// `cpu,cpuacct`, `name=systemd`), from /proc/self/mountinfo; `None`
    /// where that does not say (a test's fake tree).
    pub options: Option<String>,
}

impl Tree {
    /// True if the tree holds controller `controller`: by its mount
    /// options, or for a test's fake tree by its name (`cpu,cpuacct`).
    pub fn has(&self, controller: &str) -> bool {
        let list = self.options.as_deref().unwrap_or(&self.name);
        list.split(',').any(|c| c == controller)
    }
}

/// Every v1 hierarchy mounted under `base`, each once, by name: the
/// controllers' trees and named ones (systemd's). A container is put in a
/// cgroup of its own in each, as runc does: in a tree where it stayed in
/// the caller's cgroup, its cgroup namespace would be rooted at the
/// caller's cgroup, there the hierarchy's root, whose `release_agent` runs
/// a program as root on the host (docs/ch7-cgroups.md#every-tree-on-v1).
/// Distros often mount cpu and cpuacct together as `cpu,cpuacct`, with
/// `cpu` and `cpuacct` symlinks to it: the tree is used once. A cgroup2
/// mount (a hybrid host's unified/) is not a v1 tree.
///
/// `mounted_only`: the cgroup mounts right under `base` that are seen
/// (mountinfo still lists a mount another one hides: each path is the last
/// one mounted there, and is a cgroup filesystem when looked at), and the
/// symlinks in `base` to a cgroup mount elsewhere, named as the link is.
/// Otherwise (a test's fake base of plain directories) every directory in
/// `base`.
pub fn trees(base: &Path, mounted_only: bool) -> Vec<Tree> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounted_only {
        let is_cgroup = |dir: &Path| {
            nix::sys::statfs::statfs(dir)
                .is_ok_and(|fs| fs.filesystem_type().0 == CGROUP_SUPER_MAGIC)
        };
        // A hidden mount's path is gone, or is another filesystem's (or a
        // symlink's: followed below).
        let seen = |dir: &Path| {
            std::fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir()) && is_cgroup(dir)
        };
        let mut trees: Vec<Tree> = mounted_trees(&mountinfo, base)
            .into_iter()
            .filter(|tree| seen(&tree.dir))
            .collect();
        // The listing's own type (d_type): only a symlink is followed.
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            let (Ok(real), Some(name)) = (
                entry.path().canonicalize(),
                entry.file_name().to_str().map(String::from),
            ) else {
                continue;
            };
            let known = trees.iter().any(|t| t.dir == real) || real.parent() == Some(base);
            if known || !is_cgroup(&real) {
                continue;
            }
            if let Some(options) = mount_options(&mountinfo, &real) {
                trees.push(Tree {
                    name,
                    dir: real,
                    options: Some(options),
                });
            }
        }
        trees.sort_by(|a, b| a.name.cmp(&b.name));
        return trees;
    }
    let mut trees = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in entries {
        let Ok(real) = dir.canonicalize() else {
            continue;
        };
        let is_v2 = nix::sys::statfs::statfs(&real)
            .is_ok_and(|fs| fs.filesystem_type().0 == crate::doctor::CGROUP2_SUPER_MAGIC);
        if !real.is_dir() || is_v2 || seen.contains(&real) {
            continue;
        }
        let Some(name) = real.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        trees.push(Tree {
            name: name.to_string(),
            dir: real.clone(),
            options: mount_options(&mountinfo, &real),
        });
        seen.push(real);
    }
    trees
}

/// statfs(2)'s f_type of a cgroup v1 filesystem.
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// The cgroup (v1) mounts right under `base` in mountinfo's text, by name:
/// for a path mounted more than once, the last mount (the one seen).
fn mounted_trees(mountinfo: &str, base: &Path) -> Vec<Tree> {
    let mut trees: Vec<Tree> = Vec::new();
    for (dir, options) in mountinfo.lines().filter_map(cgroup_mount) {
        let dir = PathBuf::from(dir);
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if dir.parent() != Some(base) {
            continue;
        }
        trees.retain(|t| t.dir != dir);
        trees.push(Tree {
            name: name.to_string(),
            options: Some(options),
            dir,
        });
    }
    trees.sort_by(|a, b| a.name.cmp(&b.name));
    trees
}

/// The v1 hierarchies this process is in (the lines of /proc/self/cgroup
/// but the `0::` one, as `cpu,cpuacct` or `name=systemd`) that no tree in
/// `trees` holds: a container could not be moved out of its root there.
pub fn uncovered(trees: &[Tree], proc_self_cgroup: &str) -> Vec<String> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers) = (fields.next()?, fields.next()?);
            (id != "0" && !controllers.is_empty()).then_some(controllers)
        })
        .filter(|controllers| {
            !trees
                .iter()
                .any(|t| controllers.split(',').all(|c| t.has(c)))
        })
        .map(String::from)
        .collect()
}

/// Of a mountinfo line, a cgroup (v1) mount's mount point and its super
/// options without `rw`/`ro` (what mounting that hierarchy again needs).
/// A mount point mountinfo escapes (`\040` for a space) is left out.
fn cgroup_mount(line: &str) -> Option<(&str, String)> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut fields = right.split(' ');
    let (fstype, _source, options) = (fields.next()?, fields.next()?, fields.next()?);
    (fstype == "cgroup" && !mount_point.contains('\\')).then(|| {
        let options = options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect::<Vec<_>>()
            .join(",");
        (mount_point, options)
    })
}

/// The super options of the cgroup (v1) mount at `dir` in mountinfo's
/// text (the last one mounted there, the one seen), without `rw`/`ro`:
/// what mounting that hierarchy again needs.
fn mount_options(mountinfo: &str, dir: &Path) -> Option<String> {
    let dir = dir.to_str()?;
    mountinfo
        .lines()
        .rev()
        .filter_map(cgroup_mount)
        .find_map(|(mount_point, options)| (mount_point == dir).then_some(options))
}

/// Of a v1 cgroup's directories, the one of `controller`: the one whose
/// controller files it has. The directories in a tree named after the
/// controller (`memory/`, `cpu,cpuacct/`) are looked at first, so that
/// one stat usually finds it.
pub fn dir_for<'a>(dirs: &'a [PathBuf], controller: &str) -> Option<&'a Path> {
    let named = |dir: &&PathBuf| {
        dir.iter().any(|part| {
            part.to_str()
                .is_some_and(|p| p.split(',').any(|c| c == controller))
        })
    };
    let (likely, others): (Vec<&PathBuf>, Vec<&PathBuf>) = dirs.iter().partition(named);
    likely
        .into_iter()
        .chain(others)
        .map(PathBuf::as_path)
        .find(|dir| dir.join(marker(controller)).exists())
}

/// The controllers the limits need mounted.
fn needed(limits: &Limits) -> Vec<&'static str> {
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

/// Make `<tree>/<parent>/stepbox/<name>` in every v1 tree.
pub fn create(hierarchy: &Hierarchy, name: &str, limits: &Limits) -> Result<Cgroup> {
    if hierarchy.base == Path::new(super::CGROUP_ROOT) {
        refuse_uncovered(hierarchy)?;
    }
    for controller in needed(limits) {
        // A tree's root may lack the controller's files (the root has no
        // pids.max): the controller's name, or a tree that holds its files.
        let trees = hierarchy.trees();
        let found = trees.iter().any(|t| t.has(controller))
            || hierarchy.base.join(controller).is_dir()
            || trees
                .iter()
                .any(|t| t.dir.join(marker(controller)).exists());
        if !found {
            return Err(Error::Invalid(format!(
                "this host mounts no v1 {controller} controller under {}, so that limit cannot be set: \
                 mount -t cgroup -o {controller} cgroup {}/{controller}",
                quote(&hierarchy.base),
                hierarchy.base.display()
            )));
        }
    }
    let mut cgroup = Cgroup {
        mode: hierarchy.mode,
        name: name.to_string(),
        dirs: Vec::new(),
        stepbox_dirs: Vec::new(),
    };
    for tree in hierarchy.trees() {
        let stepbox = tree.dir.join(&hierarchy.parent).join(super::STEPBOX_DIR);
        let dir = stepbox.join(name);
        // Another container's removal may rmdir stepbox/ between our two
        // mkdirs (it was empty for a moment): make it again, as v2 does.
        let cpuset = tree.has("cpuset");
        let mut made = Err(Error::Internal("not tried".into()));
        for _ in 0..3 {
            // stepbox/ itself exists once some container runs: its steps
            // are details, so that every run's story reads the same.
            made = mkdir_as(&stepbox, false)
                .and_then(|()| init_cpuset(cpuset, &stepbox, false))
                .and_then(|()| mkdir(&dir));
            if !matches!(&made, Err(error) if error.errno() == Some(nix::errno::Errno::ENOENT)) {
                break;
            }
        }
        cgroup.stepbox_dirs.push(stepbox);
        if made.is_ok() {
            cgroup.dirs.push(dir.clone());
        }
        if let Err(error) = made.and_then(|()| init_cpuset(cpuset, &dir, true)) {
            return Err(error.with_cleanup(cgroup.remove()));
        }
    }
    Ok(cgroup)
}

/// Refuse a host where this process is in a v1 hierarchy that has no tree
/// under /sys/fs/cgroup (mounted elsewhere, or nowhere): the container
/// would stay at its root there, the hierarchy a container with SYS_ADMIN
/// could mount and whose `release_agent` runs as root on the host.
fn refuse_uncovered(hierarchy: &Hierarchy) -> Result<()> {
    let trees = hierarchy.trees();
    let text = read_file(Path::new("/proc/self/cgroup"))?;
    let missing = uncovered(trees, &text);
    let base = hierarchy.base.display();
    if let Some(first) = missing.first() {
        let (kind, are) = match missing.len() {
            1 => ("hierarchy", "is"),
            _ => ("hierarchies", "are"),
        };
        return Err(Error::Invalid(format!(
            "this process is in the cgroup v1 {kind} {} (/proc/self/cgroup) that {are} not mounted \
             under {base}, so a container could not be moved out of its root there: mount it there \
             (mount -t cgroup -o {first} cgroup {base}/{})",
            missing.join(", "),
            first.trim_start_matches("name=")
        )));
    }
    if trees.is_empty() {
        return Err(Error::Invalid(format!(
            "no cgroup v1 tree is mounted under {base}: mount the controllers' trees there \
             (mount -t cgroup -o memory cgroup {base}/memory, …), or boot with \
             systemd.unified_cgroup_hierarchy=1 for cgroup v2"
        )));
    }
    Ok(())
}

/// A new v1 cpuset cgroup has empty cpuset.cpus and cpuset.mems, and takes
/// no process until both are set: copy them from its parent (`cpuset`:
/// `dir` is in the cpuset tree).
fn init_cpuset(cpuset: bool, dir: &Path, shown: bool) -> Result<()> {
    if !cpuset {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read_file(&dir.join(file))?.trim().is_empty() {
            let value = read_file(&parent.join(file))?;
            write_file_as(&dir.join(file), value.trim(), shown)?;
        }
    }
    Ok(())
}

/// Write the limits into the v1 files: memory.limit_in_bytes, then
/// memory.memsw.limit_in_bytes to the same (memory + swap may not exceed
/// memory: no swap; it must come second, as memsw may never be below the
/// memory limit), cpu.cfs_period_us and cpu.cfs_quota_us, pids.max,
/// cpuset.cpus, cpu.shares.
pub fn apply(cgroup: &Cgroup, limits: &Limits) -> Result<()> {
    let dir = |controller: &str| {
        cgroup.dir_for(controller).ok_or_else(|| {
            Error::Invalid(format!(
                "this host has no v1 {controller} controller for {}'s cgroup",
                cgroup.name
            ))
        })
    };
    if let Some(bytes) = limits.memory {
        let memory = dir("memory")?;
        write_file(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_file(&memsw, &bytes.to_string())?;
        } else {
            crate::detail!(
                7,
                "no memory.memsw.limit_in_bytes: swap is not accounted (boot with swapaccount=1 to turn it off per cgroup)"
            );
        }
    }
    if let Some(quota) = limits.cpus {
        let cpu = dir("cpu")?;
        write_file(&cpu.join("cpu.cfs_period_us"), &quota.period_us.to_string())?;
        write_file(&cpu.join("cpu.cfs_quota_us"), &quota.quota_us.to_string())?;
    }
    if let Some(pids) = limits.pids {
        write_file(&dir("pids")?.join("pids.max"), &pids.file_value())?;
    }
    if let Some(cpus) = &limits.cpuset_cpus {
        write_file(&dir("cpuset")?.join("cpuset.cpus"), cpus)?;
    }
    if let Some(shares) = limits.cpu_shares {
        write_file(&dir("cpu")?.join("cpu.shares"), &shares.to_string())?;
    }
    Ok(())
}

/// The OOM kills in a v1 memory cgroup: memory.oom_control's oom_kill
/// (Linux 4.13+); on older kernels, 1 if the limit was ever hit (failcnt).
pub fn oom_kills(dir: &Path) -> Result<u64> {
    let control = read_file(&dir.join("memory.oom_control"))?;
    if let Some(kills) = keyed_value(&control, "oom_kill") {
        return Ok(kills);
    }
    narrate!(
        7,
        "/* no oom_kill count in memory.oom_control: reading memory.failcnt */"
    );
    Ok(read_number(&dir.join("memory.failcnt"))?.map_or(0, |n| u64::from(n > 0)))
}

/// v1 shows "no limit" as a huge number (PAGE_COUNTER_MAX pages).
fn limit(value: Option<u64>) -> Option<u64> {
    value.filter(|&n| n < 1 << 62)
}

/// memory.usage_in_bytes, cpuacct.usage (ns), cpu.stat's throttled_time
/// (ns), pids.current.
pub fn stats(cgroup: &Cgroup) -> Result<super::Stats> {
    let mut stats = super::Stats::default();
    if let Some(memory) = cgroup.dir_for("memory") {
        stats.memory_bytes = read_number(&memory.join("memory.usage_in_bytes"))?;
        stats.memory_limit = limit(read_number(&memory.join("memory.limit_in_bytes"))?);
    }
    if let Some(cpuacct) = cgroup.dir_for("cpuacct") {
        stats.cpu_usec = read_number(&cpuacct.join("cpuacct.usage"))?.map(|ns| ns / 1000);
    }
    if let Some(cpu) = cgroup.dir_for("cpu") {
        let stat = super::read_optional(&cpu.join("cpu.stat"))?.unwrap_or_default();
        stats.throttled_usec = keyed_value(&stat, "throttled_time").map(|ns| ns / 1000);
    }
    if let Some(pids) = cgroup.dir_for("pids") {
        stats.pids = read_number(&pids.join("pids.current"))?;
        stats.pids_limit = read_number(&pids.join("pids.max"))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn each_directory_is_known_by_its_controllers_files() {
        let base = tempfile::tempdir().unwrap();
        let memory = base.path().join("memory/stepbox/web");
        let pids = base.path().join("pids/stepbox/web");
        for (dir, file) in [(&memory, "memory.limit_in_bytes"), (&pids, "pids.max")] {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join(file), "").unwrap();
        }
        let dirs = vec![memory.clone(), pids.clone()];
        assert_eq!(dir_for(&dirs, "memory"), Some(memory.as_path()));
        assert_eq!(dir_for(&dirs, "pids"), Some(pids.as_path()));
        assert_eq!(dir_for(&dirs, "cpu"), None);
    }

    #[test]
    fn a_trees_mount_options_come_from_mountinfo_without_rw() {
        let mountinfo = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
                         39 31 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=hidden\n\
                         40 39 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
                         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let at = |dir: &str| mount_options(mountinfo, Path::new(dir));
        assert_eq!(
            at("/sys/fs/cgroup/cpu,cpuacct").as_deref(),
            Some("cpu,cpuacct")
        );
        assert_eq!(
            at("/sys/fs/cgroup/systemd").as_deref(),
            Some("xattr,name=systemd")
        );
        assert_eq!(at("/sys/fs/cgroup/unified"), None);
    }

    #[test]
    fn the_trees_are_the_cgroup_mounts_right_under_the_base_each_once() {
        let mountinfo = "31 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755\n\
                         32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                         33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                         34 31 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                         35 31 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=hidden\n\
                         36 35 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
                         37 25 0:33 / /mnt/elsewhere/pids rw - cgroup cgroup rw,pids\n\
                         38 31 0:34 / /sys/fs/cgroup/two\\040words rw - cgroup cgroup rw,pids\n";
        let trees = mounted_trees(mountinfo, Path::new("/sys/fs/cgroup"));
        let shown: Vec<(&str, &str)> = trees
            .iter()
            .map(|t| (t.name.as_str(), t.options.as_deref().unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                ("cpu,cpuacct", "cpu,cpuacct"),
                ("memory", "memory"),
                ("systemd", "xattr,name=systemd")
            ]
        );
        assert_eq!(trees[0].dir, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(trees[0].has("cpu") && trees[0].has("cpuacct") && !trees[0].has("cpuset"));
        assert!(!trees[2].has("systemd"));
    }

    #[test]
    fn a_v1_hierarchy_of_this_process_with_no_tree_is_named() {
        let tree = |name: &str, options: &str| Tree {
            name: name.into(),
            dir: PathBuf::from("/sys/fs/cgroup").join(name),
            options: Some(options.into()),
        };
        let trees = [
            tree("cpu,cpuacct", "cpu,cpuacct"),
            tree("memory", "memory"),
            tree("systemd", "xattr,name=systemd"),
        ];
        let cgroup = "12:pids:/user.slice\n4:memory:/\n3:cpu,cpuacct:/\n1:name=systemd:/x\n0::/x\n";
        assert_eq!(uncovered(&trees, cgroup), ["pids"]);
        assert!(uncovered(&trees[..], "4:memory:/\n0::/\n").is_empty());
        assert_eq!(uncovered(&[], "3:cpu,cpuacct:/\n"), ["cpu,cpuacct"]);
    }

    #[test]
    fn no_limit_is_a_huge_number_in_v1() {
        assert_eq!(limit(Some(9_223_372_036_854_771_712)), None);
        assert_eq!(limit(Some(33_554_432)), Some(33_554_432));
    }
}
