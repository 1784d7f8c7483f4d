//! seccomp: a filter the kernel runs on every system call the container
//! makes, from Docker's default profile or a profile file in Docker's JSON
//! format (ch6). See seccomp(2) and docs/ch6-security.md#seccomp.
//!
//! Docker's profile is an allowlist: about 370 calls are allowed, every
//! other one fails with EPERM; some are allowed only with arguments that
//! are safe (`personality` with the usual personas, `socket` of any family
//! but AF_ALG and AF_VSOCK, `clone` without namespace flags), and some only if the
//! container holds the capability that makes them meaningful
//! (`open_by_handle_at` with CAP_DAC_READ_SEARCH, `mount` with
//! CAP_SYS_ADMIN).
//!
//! The filter is compiled to BPF by stepbox itself ([`super::bpf`]): a
//! binary search over call numbers, so stepbox builds with no libseccomp
//! installed. Each filter has one action for all its rules, so a profile
//! becomes one filter per action: the allowlist (its default action for
//! everything else), then one filter for each other action (clone3's
//! ENOSYS). The kernel runs every filter and takes the most severe answer;
//! between two errnos, the filter installed last, so those go after the
//! allowlist.

use std::collections::BTreeMap;

use nix::errno::Errno;
use serde::Deserialize;

use super::bpf::{self, Action, Condition, Op, Program};
use super::caps::CapSet;
use super::syscalls;
use crate::error::{quote, Error, Result};
use crate::{detail, narrate};

/// Docker's default seccomp profile, unchanged: `profiles/seccomp/default.json`
/// of github.com/moby/profiles v0.2.3 (as vendored by moby/moby at commit
/// 35797366d7cd), Copyright The Moby Authors, licensed under the Apache
/// License, Version 2.0.
pub const DOCKER_DEFAULT: &str = include_str!("seccomp-default.json");

/// A profile in Docker's JSON format (the fields stepbox reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

/// A condition on one argument (all of a rule's must hold).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// When a rule applies: the container's capabilities, the architecture,
/// the kernel's version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

impl Profile {
    /// Parse a profile; `origin` names it in errors (a file, or Docker's default).
    pub fn parse(text: &str, origin: &str) -> Result<Profile> {
        let profile: Profile = serde_json::from_str(text).map_err(|e| {
            Error::Invalid(format!(
                "seccomp profile {origin}: not a seccomp profile in Docker's JSON format ({e}): see Docker's default.json for the format"
            ))
        })?;
        // Every action and operator must be one we can compile: say so now,
        // before any container is created.
        action(&profile.default_action, profile.default_errno_ret, origin)?;
        for rule in &profile.syscalls {
            action(&rule.action, rule.errno_ret, origin)?;
            for arg in rule.args.iter().flatten() {
                operator(arg, origin)?;
            }
        }
        Ok(profile)
    }

    /// Docker's default profile, parsed once per process (a container,
    /// cloned from its `run`, finds it parsed).
    pub fn docker_default() -> &'static Profile {
        static PARSED: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        PARSED.get_or_init(|| {
            Profile::parse(DOCKER_DEFAULT, "(Docker's default)")
                .expect("the embedded profile parses")
        })
    }

    /// [`Profile::compile`], remembered for `origin` and `caps`: `run`
    /// compiles on the host when it checks the flags, before the clone,
    /// so that the container only installs what is ready.
    pub fn compiled(&self, caps: CapSet, origin: &str) -> Result<Vec<Program>> {
        type Compiled = (String, CapSet, Vec<Program>);
        static LAST: std::sync::Mutex<Option<Compiled>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((o, c, programs)) = last.as_ref() {
            if o == origin && *c == caps {
                return Ok(programs.clone());
            }
        }
        let programs = self.compile(caps, origin)?;
        *last = Some((origin.to_string(), caps, programs.clone()));
        Ok(programs)
    }

    /// The BPF filters for a container holding `caps`, on this machine, in
    /// the order to install them.
    pub fn compile(&self, caps: CapSet, origin: &str) -> Result<Vec<Program>> {
        self.filters(caps, origin)?
            .iter()
            .map(|filter| bpf::compile(filter).map_err(|e| invalid(origin, &e)))
            .collect()
    }

    /// The filters [`Profile::compile`] compiles, from [`Profile::plan`]:
    /// the allowlist answers the profile's default to every call it does
    /// not name, and refuses x32 calls; the others allow what they do not
    /// name.
    pub fn filters(&self, caps: CapSet, origin: &str) -> Result<Vec<bpf::Filter>> {
        let default = action(&self.default_action, self.default_errno_ret, origin)?;
        let mut filters = Vec::new();
        for (i, (act, calls)) in self.plan(caps, origin)?.into_iter().enumerate() {
            let mismatched = if act == Action::Allow {
                default
            } else {
                Action::Allow
            };
            let filter = bpf::Filter {
                arch: bpf::native_arch(),
                calls,
                matched: act,
                mismatched,
                beyond: (i == 0 && cfg!(target_arch = "x86_64"))
                    .then_some((X32_SYSCALL_BIT, Action::Errno(libc::EPERM as u32))),
            };
            filters.push(filter);
        }
        Ok(filters)
    }

    /// What the filters hold: for each action, the calls it answers (with
    /// their rules), the allowlist first; its filter answers the profile's
    /// default to every other call, the others allow every other call.
    pub fn plan(&self, caps: CapSet, origin: &str) -> Result<Vec<(Action, Calls)>> {
        let kernel = kernel_version();
        let default = action(&self.default_action, self.default_errno_ret, origin)?;
        // Rules by action, then by system call number: OR of rules, AND of
        // each rule's conditions, as libseccomp reads Docker's format.
        let mut grouped: Vec<(Action, Calls)> = Vec::new();
        let mut unknown = Vec::new();
        for rule in &self.syscalls {
            if !applies(rule, caps, kernel) {
                continue;
            }
            let act = action(&rule.action, rule.errno_ret, origin)?;
            if act == default {
                continue; // what happens anyway
            }
            let conditions = rule
                .args
                .iter()
                .flatten()
                .map(|arg| {
                    if arg.index > 5 {
                        return Err(invalid(
                            origin,
                            &format!("argument {}: a system call has arguments 0 to 5", arg.index),
                        ));
                    }
                    Ok(Condition {
                        index: arg.index,
                        op: operator(arg, origin)?,
                        value: compared_value(arg),
                        low_word: false, // set for each call below
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let index = match grouped.iter().position(|(a, _)| *a == act) {
                Some(index) => index,
                None => {
                    grouped.push((act, BTreeMap::new()));
                    grouped.len() - 1
                }
            };
            let calls = &mut grouped[index].1;
            for name in rule.names.iter().chain(rule.name.iter()) {
                let Some(number) = syscalls::number(name).and_then(|n| u32::try_from(n).ok())
                else {
                    // As runc does: a name this architecture lacks is no error.
                    unknown.push(name.as_str());
                    continue;
                };
                let mut conditions = conditions.clone();
                for condition in &mut conditions {
                    condition.low_word = syscalls::int_argument(name, condition.index);
                    if condition.low_word && condition.value > u64::from(u32::MAX) {
                        return Err(invalid(
                            origin,
                            &format!(
                                "{name}: argument {} is a 32-bit int, and {:#x} does not fit in one",
                                condition.index, condition.value
                            ),
                        ));
                    }
                }
                if conditions.is_empty() {
                    calls.insert(number, None);
                } else if let Some(Some(rules)) = calls.get_mut(&number) {
                    rules.push(conditions.clone());
                } else {
                    calls
                        .entry(number)
                        .or_insert_with(|| Some(vec![conditions.clone()]));
                }
            }
        }
        let mut by_action = grouped;
        // One filter per action, and the kernel keeps the most severe
        // answer of all: so the allowlist must allow what another rule
        // answers (with that rule's conditions), or its default, more
        // severe than the rule's action, would win (an ERRNO default over
        // a LOG rule, a KILL default over clone3's ENOSYS).
        if default != Action::Allow {
            let others: Vec<Calls> = by_action
                .iter()
                .filter(|(act, _)| *act != Action::Allow)
                .map(|(_, calls)| calls.clone())
                .collect();
            if !by_action.iter().any(|(act, _)| *act == Action::Allow) {
                by_action.push((Action::Allow, BTreeMap::new()));
            }
            let allowed = &mut by_action
                .iter_mut()
                .find(|(act, _)| *act == Action::Allow)
                .expect("an allowlist")
                .1;
            for calls in others {
                for (number, conditions) in calls {
                    match (allowed.get_mut(&number), conditions) {
                        (Some(None), _) => {}
                        (Some(Some(rules)), Some(more)) => rules.extend(more),
                        (Some(slot), None) => *slot = None,
                        (None, conditions) => {
                            allowed.insert(number, conditions);
                        }
                    }
                }
            }
        }
        if !unknown.is_empty() {
            detail!(
                6,
                "seccomp: {} names this architecture does not have: {}",
                unknown.len(),
                unknown.join(", ")
            );
        }
        // The allowlist first (its rules allow; everything else gets the
        // default), then the filters for every other action.
        by_action.sort_by_key(|(act, _)| *act != Action::Allow);
        let has_allow = by_action
            .first()
            .is_some_and(|(act, _)| *act == Action::Allow);
        if !has_allow && default != Action::Allow {
            // Nothing allowed at all: one filter that answers `default`.
            by_action.insert(0, (Action::Allow, BTreeMap::new()));
        }
        Ok(by_action)
    }
}

/// Calls by number, each with its rules ([`bpf::Rules`]).
pub type Calls = BTreeMap<u32, bpf::Rules>;

fn invalid(origin: &str, why: &str) -> Error {
    Error::Invalid(format!(
        "seccomp profile {origin}: {why}: fix the profile, or use --security-opt seccomp=unconfined"
    ))
}

/// libseccomp's SCMP_CMP_MASKED_EQ is `(arg & value) == valueTwo`;
/// [`Op::MaskedEq`]`(mask)` is `(arg & mask) == value`.
fn compared_value(arg: &Arg) -> u64 {
    if arg.op == "SCMP_CMP_MASKED_EQ" {
        arg.value_two
    } else {
        arg.value
    }
}

fn operator(arg: &Arg, origin: &str) -> Result<Op> {
    Ok(match arg.op.as_str() {
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq(arg.value),
        other => {
            return Err(invalid(
                origin,
                &format!("unknown operator {}", quote(other)),
            ))
        }
    })
}

fn action(name: &str, errno: Option<u32>, origin: &str) -> Result<Action> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        // Docker's default errno for SCMP_ACT_ERRNO is EPERM.
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        other => {
            return Err(invalid(
                origin,
                &format!(
                    "action {} is not supported (use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP or SCMP_ACT_LOG)",
                    quote(other)
                ),
            ))
        }
    })
}

/// Does `rule` apply to a container holding `caps` on this machine? As
/// Docker decides: every capability `includes` names is held, none that
/// `excludes` names is; the architecture is (or is not) listed; the kernel
/// is at least (or below) `minKernel`.
fn applies(rule: &Rule, caps: CapSet, kernel: (u32, u32)) -> bool {
    let arch = docker_arch();
    let matches = |filter: &Filter, all: bool| {
        let caps_ok = filter.caps.as_ref().map(|list| {
            if all {
                list.iter().all(|c| caps.has(c))
            } else {
                list.iter().any(|c| caps.has(c))
            }
        });
        let arch_ok = filter
            .arches
            .as_ref()
            .map(|list| list.iter().any(|a| a == arch));
        let kernel_ok = filter
            .min_kernel
            .as_deref()
            .map(|min| kernel >= parse_version(min));
        [caps_ok, arch_ok, kernel_ok]
    };
    if let Some(includes) = &rule.includes {
        if matches(includes, true).contains(&Some(false)) {
            return false;
        }
    }
    if let Some(excludes) = &rule.excludes {
        if matches(excludes, false).contains(&Some(true)) {
            return false;
        }
    }
    true
}

/// This machine's architecture as Docker's profile names it.
fn docker_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname()
        .map(|u| parse_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// x32 system calls are x86_64's numbers with bit 30 set, under the same
/// architecture in the filter's check: a filter that names calls by number
/// would let them by. The first filter refuses them all (EPERM).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Install `programs` on this process, in order. Needs no_new_privs (or
/// CAP_SYS_ADMIN): a filter must not be able to fool a setuid program.
pub fn install(programs: &[Program], what: &str) -> Result<()> {
    for (i, program) in programs.iter().enumerate() {
        let call = format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, 0, {{ .len = {}, .filter = {} }})",
            program.len(),
            if i == 0 {
                format!("/* {what} */")
            } else {
                "/* the rules with another errno */".to_string()
            }
        );
        narrate!(6, "{call}");
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies `len` instructions from `filter`, which
        // `program` holds for the length of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        Errno::result(rc).map_err(|errno| Error::sys(call.clone(), errno))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_profile_parses_and_compiles_for_the_default_capabilities() {
        let profile = Profile::docker_default();
        assert_eq!(profile.default_action, "SCMP_ACT_ERRNO");
        let programs = profile
            .compile(CapSet::docker_default(), "default")
            .unwrap();
        // The allowlist, and clone3's ENOSYS.
        assert_eq!(programs.len(), 2);
        assert!(
            programs.iter().all(|p| p.len() < 4096),
            "BPF programs hold at most 4096 instructions"
        );
    }

    #[test]
    fn dockers_profile_answers_every_call_as_seccompilers_chain_does() {
        // Each filter, for three capability sets, against the same filter
        // as seccompiler compiles it: every call number, on every edge of
        // the argument rules (clone's flags, personality, socket).
        let profile = Profile::docker_default();
        for caps in [CapSet::docker_default(), CapSet::all(), CapSet(0)] {
            let programs = profile.compile(caps, "default").unwrap();
            let filters = profile.filters(caps, "default").unwrap();
            assert_eq!(programs.len(), filters.len());
            for (i, (filter, ours)) in filters.iter().zip(&programs).enumerate() {
                let mut theirs = bpf::tests::reference(filter);
                if let Some((start, answer)) = filter.beyond {
                    // After seccompiler's architecture check (3 instructions).
                    let guard = [
                        bpf::tests::stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
                        bpf::tests::jump(libc::BPF_JGE, start, 0, 1),
                        bpf::tests::stmt(libc::BPF_RET | libc::BPF_K, answer.ret()),
                    ];
                    theirs.splice(3..3, guard);
                }
                if i == 0 {
                    // The allowlist: a few hundred instructions, not 1,600.
                    assert!(
                        ours.len() * 4 < theirs.len(),
                        "{} against {}",
                        ours.len(),
                        theirs.len()
                    );
                }
                bpf::tests::assert_same(ours, &theirs, filter, 3000);
            }
        }
    }

    /// What the kernel answers a call with `programs` installed: every
    /// filter runs, the most severe action wins, and between equal actions
    /// the filter installed last (seccomp(2)).
    fn kernel_answer(programs: &[Program], nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        let severity = |ret: u32| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32;
        let mut answer = None;
        for program in programs.iter().rev() {
            let ret = bpf::run(program, nr as u32, arch, args);
            if answer.is_none_or(|best| severity(ret) < severity(best)) {
                answer = Some(ret);
            }
        }
        answer.expect("a filter")
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn dockers_filters_together_answer_as_the_profile_says() {
        // The filters as the kernel combines them: what the merge of other
        // actions into the allowlist, the x32 guard and the 32-bit
        // arguments must give.
        let programs = Profile::docker_default()
            .compile(CapSet::docker_default(), "default")
            .unwrap();
        let allow = Action::Allow.ret();
        let eperm = Action::Errno(libc::EPERM as u32).ret();
        let answer =
            |nr: i64, args: [u64; 6]| kernel_answer(&programs, nr, bpf::native_arch(), args);
        let high = 1u64 << 32;
        let cases = [
            ("read", libc::SYS_read, [0; 6], allow),
            ("mount", libc::SYS_mount, [0; 6], eperm),
            (
                "clone3",
                libc::SYS_clone3,
                [0; 6],
                Action::Errno(libc::ENOSYS as u32).ret(),
            ),
            (
                "clone(SIGCHLD)",
                libc::SYS_clone,
                [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
                allow,
            ),
            (
                "clone(CLONE_NEWUSER)",
                libc::SYS_clone,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
                eperm,
            ),
            (
                "socket(AF_UNIX)",
                libc::SYS_socket,
                [1, 1, 0, 0, 0, 0],
                allow,
            ),
            (
                "socket(AF_VSOCK)",
                libc::SYS_socket,
                [40, 1, 0, 0, 0, 0],
                eperm,
            ),
            (
                "socket(2^32 + AF_VSOCK)",
                libc::SYS_socket,
                [high | 40, 1, 0, 0, 0, 0],
                eperm,
            ),
            (
                "socket(2^32 + AF_ALG)",
                libc::SYS_socket,
                [high | 38, 5, 0, 0, 0, 0],
                eperm,
            ),
            (
                "socket(2^32 + AF_UNIX)",
                libc::SYS_socket,
                [high | 1, 1, 0, 0, 0, 0],
                allow,
            ),
            (
                "personality(0xffffffff)",
                libc::SYS_personality,
                [0xffff_ffff, 0, 0, 0, 0, 0],
                allow,
            ),
            (
                "personality(2^32 + 0xffffffff)",
                libc::SYS_personality,
                [high | 0xffff_ffff, 0, 0, 0, 0, 0],
                allow,
            ),
            (
                "personality(ADDR_NO_RANDOMIZE)",
                libc::SYS_personality,
                [0x0040000, 0, 0, 0, 0, 0],
                eperm,
            ),
            ("x32 getpid", 0x4000_0000 | libc::SYS_getpid, [0; 6], eperm),
            ("x32 clone3", 0x4000_0000 | libc::SYS_clone3, [0; 6], eperm),
            ("number 1000", 1000, [0; 6], eperm),
        ];
        for (call, nr, args, want) in cases {
            assert_eq!(answer(nr, args), want, "{call}");
        }
        // A 32-bit x86 program is killed, whatever the number.
        for nr in [3, 0x4000_0000] {
            let killed = kernel_answer(&programs, nr, 0x4000_0003, [0; 6]);
            assert_eq!(killed, Action::KillProcess.ret(), "i386 call {nr}");
        }
    }

    #[test]
    fn a_value_too_wide_for_a_32_bit_argument_is_refused() {
        let text = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":4294967336,"op":"SCMP_CMP_EQ"}]}]}"#;
        let error = Profile::parse(text, "p")
            .unwrap()
            .compile(CapSet(0), "p")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "socket: argument 0 is a 32-bit int, and 0x100000028 does not fit in one"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_capability_rule_applies_only_when_the_capability_is_held() {
        let profile = Profile::docker_default();
        let rule = profile
            .syscalls
            .iter()
            .find(|r| r.names.iter().any(|n| n == "open_by_handle_at"))
            .unwrap();
        assert!(!applies(rule, CapSet::docker_default(), (6, 1)));
        let mut caps = CapSet::docker_default();
        caps.insert(2); // CAP_DAC_READ_SEARCH
        assert!(applies(rule, caps, (6, 1)));
    }

    #[test]
    fn an_excluding_rule_does_not_apply_when_the_capability_is_held() {
        let profile = Profile::docker_default();
        let clone3 = profile
            .syscalls
            .iter()
            .find(|r| r.names == ["clone3"] && r.action == "SCMP_ACT_ERRNO")
            .unwrap();
        assert!(applies(clone3, CapSet::docker_default(), (6, 1)));
        assert!(!applies(clone3, CapSet::all(), (6, 1)));
    }

    #[test]
    fn min_kernel_is_compared_as_major_minor() {
        let profile = Profile::docker_default();
        let ptrace = profile
            .syscalls
            .iter()
            .find(|r| r.names.iter().any(|n| n == "ptrace"))
            .unwrap();
        assert!(applies(ptrace, CapSet(0), (4, 8)));
        assert!(applies(ptrace, CapSet(0), (6, 18)));
        assert!(!applies(ptrace, CapSet(0), (4, 4)));
    }

    #[test]
    fn a_file_that_is_not_a_profile_is_refused_with_its_name() {
        let error = Profile::parse("{\"syscalls\": []}", "/p.json")
            .unwrap_err()
            .to_string();
        assert!(
            error
                .contains("seccomp profile /p.json: not a seccomp profile in Docker's JSON format"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_action_is_refused_and_the_supported_ones_named() {
        let text = r#"{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[]}"#;
        let error = Profile::parse(text, "p").unwrap_err().to_string();
        assert!(
            error.contains("action \"SCMP_ACT_NOTIFY\" is not supported"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_operator_is_refused() {
        let text = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#;
        let error = Profile::parse(text, "p").unwrap_err().to_string();
        assert!(
            error.contains("unknown operator \"SCMP_CMP_ALMOST\""),
            "{error}"
        );
    }

    #[test]
    fn a_denylist_profile_compiles_to_one_filter() {
        let text = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
        let programs = Profile::parse(text, "p")
            .unwrap()
            .compile(CapSet(0), "p")
            .unwrap();
        assert_eq!(programs.len(), 1);
    }

    #[test]
    fn masked_eq_compares_value_two_under_the_mask_value() {
        let arg = Arg {
            index: 0,
            value: 0x7e02_0000,
            value_two: 0,
            op: "SCMP_CMP_MASKED_EQ".into(),
        };
        assert_eq!(operator(&arg, "p").unwrap(), Op::MaskedEq(0x7e02_0000));
        assert_eq!(compared_value(&arg), 0);
    }
}
