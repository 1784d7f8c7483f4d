//! Docker's words for limits, parsed into the numbers the cgroup files take
//! (ch7): `-m 32m`, `--cpus 0.5`, `--pids-limit 64`, `--cpuset-cpus 0-1`,
//! `-c/--cpu-shares 512`. Pure: every refusal is one line naming the flag,
//! the value, what is wrong and an example that works.

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::error::{quote, Error, Result};

/// Docker refuses a memory limit under 6 MiB ("Minimum memory limit allowed
/// is 6MB"): below it a container cannot even start its first process.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The CFS period every `--cpus` quota is measured against, in µs (Docker's).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses a CFS quota under 1 ms.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;

/// Docker's range for `--cpu-shares` (cgroup v1's cpu.shares).
pub const MIN_CPU_SHARES: u64 = 2;
pub const MAX_CPU_SHARES: u64 = 262_144;

/// The limit flags as typed, in Docker's words: what chapter 7 flattens
/// into `run` and records in the container's state.
#[derive(Args, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitFlags {
    // Every flag takes a value starting with '-' (`-m -1`), so that a
    // negative one is refused by its parser, naming the flag, not by clap
    // as an unknown argument.
    /// Memory limit, swap included (Docker's units: 512k, 32m, 1g; 0: none)
    #[arg(
        short = 'm',
        long = "memory",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    pub memory: Option<String>,
    /// Number of CPUs, as a fraction of one CFS period (0.5 = half a CPU)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// CPUs the container may run on (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "LIST", allow_hyphen_values = true)]
    pub cpuset_cpus: Option<String>,
    /// Relative CPU weight (Docker's 2..262144, default 1024; v2: cpu.weight)
    #[arg(
        short = 'c',
        long = "cpu-shares",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub cpu_shares: Option<String>,
}

impl LimitFlags {
    /// The limits these flags ask for, checked against this machine's CPUs.
    pub fn limits_here(&self) -> Result<Limits> {
        let count = online_cpus();
        let list = std::fs::read_to_string(ONLINE_CPUS)
            .map(|text| text.trim().to_string())
            .unwrap_or_else(|_| format!("0-{}", count - 1));
        self.limits_on(count, &list)
    }

    /// The limits these flags ask for, checked, on a machine whose CPUs
    /// 0 to `cpus_online - 1` are online.
    pub fn limits(&self, cpus_online: usize) -> Result<Limits> {
        self.limits_on(cpus_online, &format!("0-{}", cpus_online.max(1) - 1))
    }

    /// The limits these flags ask for, checked; `cpus_online` is how many
    /// CPUs `--cpus` may ask for (Docker's upper bound), `online` the list
    /// of those CPUs, as the kernel writes it (`0-1`), which
    /// `--cpuset-cpus` may name. A value that means "no limit" (`-m 0`,
    /// `--pids-limit -1` or `0`, as in Docker) is no limit: `None`.
    pub fn limits_on(&self, cpus_online: usize, online: &str) -> Result<Limits> {
        Ok(Limits {
            memory: self
                .memory
                .as_deref()
                .map(parse_memory)
                .transpose()?
                .flatten(),
            cpus: self
                .cpus
                .as_deref()
                .map(|v| parse_cpus(v, cpus_online))
                .transpose()?,
            pids: self
                .pids_limit
                .as_deref()
                .map(parse_pids)
                .transpose()?
                .filter(|pids| *pids != Pids::Max),
            cpuset_cpus: self
                .cpuset_cpus
                .as_deref()
                .map(|v| parse_cpuset_on(v, online))
                .transpose()?,
            cpu_shares: self
                .cpu_shares
                .as_deref()
                .map(parse_cpu_shares)
                .transpose()?,
        })
    }
}

/// What the container's cgroup is limited to; `None`: not limited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory, swap included (swap itself is turned off).
    pub memory: Option<u64>,
    /// A CFS quota per period.
    pub cpus: Option<CpuQuota>,
    /// At most this many processes (and threads).
    pub pids: Option<Pids>,
    /// A cpuset list, as the kernel writes it (`0-1,3`).
    pub cpuset_cpus: Option<String>,
    /// cgroup v1's cpu.shares (v2 takes [`shares_to_weight`] of it).
    pub cpu_shares: Option<u64>,
}

impl Limits {
    /// True when no limit was asked for: then no cgroup is needed at all.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// `--cpus N` as the kernel takes it: `quota` µs of CPU time per `period` µs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    /// cgroup v2's cpu.max: `"50000 100000"`.
    pub fn cpu_max(&self) -> String {
        format!("{} {}", self.quota_us, self.period_us)
    }
}

/// `--pids-limit`: a number, or no limit (`max`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pids {
    Max,
    Limit(u64),
}

impl Pids {
    /// What pids.max takes.
    pub fn file_value(&self) -> String {
        match self {
            Pids::Max => "max".into(),
            Pids::Limit(n) => n.to_string(),
        }
    }
}

/// The kernel's list of the CPUs online (`0-1`).
pub const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// How many CPUs are online (sysconf(_SC_NPROCESSORS_ONLN)): the most
/// `--cpus` may ask for, as in Docker.
pub fn online_cpus() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

fn refuse(flag: &str, value: &str, why: &str) -> Error {
    Error::Invalid(format!("{flag} {}: {why}", quote(value)))
}

/// A size in Docker's units (go-units' RAMInBytes): a number, optionally
/// with a fraction, then `b`, `k`, `m`, `g`, `t` or `p` in either case,
/// optionally followed by `b` or `ib` (`32m`, `32MB`, `32MiB`, `1.5g`);
/// the multipliers are powers of 1024.
pub fn parse_size(text: &str) -> std::result::Result<u64, &'static str> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim_start().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return Err("not a size: give bytes, or a number with k, m or g, e.g. 32m"),
    };
    if number.is_empty() || number.starts_with('.') || number.matches('.').count() > 1 {
        return Err("not a size: give bytes, or a number with k, m or g, e.g. 32m");
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().map_err(|_| "too large a size")?;
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole);
    if !fraction.is_empty() {
        // The fraction of one unit, rounded down to a byte, as Docker does.
        let digits = fraction.len().min(18) as u32;
        let numerator: u128 = fraction[..digits as usize]
            .parse()
            .map_err(|_| "not a size")?;
        let part = (numerator << shift) / 10u128.pow(digits);
        bytes = bytes.and_then(|b| b.checked_add(part as u64));
    }
    bytes.ok_or("too large a size")
}

/// `-m/--memory`: at least [`MIN_MEMORY`]; 0 is no limit (`None`), as in
/// Docker. A size too large for 64 bits is refused; any other is set as
/// given (the kernel takes the largest it can count as no limit at all).
pub fn parse_memory(text: &str) -> Result<Option<u64>> {
    let bytes = parse_size(text).map_err(|why| refuse("--memory", text, why))?;
    if bytes == 0 {
        return Ok(None);
    }
    if bytes < MIN_MEMORY {
        return Err(refuse(
            "--memory",
            text,
            "the smallest memory limit is 6m (6 MiB), e.g. -m 32m (0: no limit)",
        ));
    }
    Ok(Some(bytes))
}

/// `--cpus`: a decimal number of CPUs, from 0.01 to `online`, as a quota of
/// the 100 ms period (Docker's NanoCPUs × period / 10⁹).
pub fn parse_cpus(text: &str, online: usize) -> Result<CpuQuota> {
    let usage = "not a number of CPUs: give a decimal such as 0.5 or 2";
    let text_trimmed = text.trim();
    let valid = !text_trimmed.is_empty()
        && text_trimmed.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text_trimmed.matches('.').count() <= 1
        && text_trimmed != ".";
    if !valid {
        return Err(refuse("--cpus", text, usage));
    }
    // Nano-CPUs, exactly, from the decimal digits (no float rounding).
    let (whole, fraction) = text_trimmed.split_once('.').unwrap_or((text_trimmed, ""));
    if fraction.len() > 9 {
        return Err(refuse(
            "--cpus",
            text,
            "too many decimals: at most 9, e.g. 0.5",
        ));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| refuse("--cpus", text, "too many CPUs"))?
    };
    let fraction_nanos: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().unwrap_or(0)
    };
    let nanos = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(|| refuse("--cpus", text, "too many CPUs"))?;
    let quota_us = nanos / 1_000_000_000 * CPU_PERIOD_US
        + nanos % 1_000_000_000 * CPU_PERIOD_US / 1_000_000_000;
    if quota_us < MIN_CPU_QUOTA_US {
        return Err(refuse(
            "--cpus",
            text,
            "the smallest is 0.01 (1 ms of CPU time in every 100 ms), e.g. --cpus 0.5",
        ));
    }
    if nanos > online as u64 * 1_000_000_000 {
        return Err(refuse(
            "--cpus",
            text,
            &format!("this machine has only {online} CPUs: give 0.01 to {online}"),
        ));
    }
    Ok(CpuQuota {
        quota_us,
        period_us: CPU_PERIOD_US,
    })
}

/// `--pids-limit`: a positive number; 0 or a negative one means no limit,
/// as in Docker (`-1` is how Docker spells it).
pub fn parse_pids(text: &str) -> Result<Pids> {
    let n: i64 = text.trim().parse().map_err(|_| {
        refuse(
            "--pids-limit",
            text,
            "not a whole number: give the most processes the container may have, e.g. 64 (-1: unlimited)",
        )
    })?;
    Ok(match u64::try_from(n) {
        Ok(0) | Err(_) => Pids::Max,
        Ok(n) => Pids::Limit(n),
    })
}

/// `--cpuset-cpus` on a machine whose online CPUs are the list `online`
/// (`0-1`, as /sys/devices/system/cpu/online has it): [`parse_cpuset`],
/// and every CPU it names is online, or it is refused naming those there
/// are (the kernel would refuse it only once the container is cloned).
pub fn parse_cpuset_on(text: &str, online: &str) -> Result<String> {
    let list = parse_cpuset(text)?;
    let ranges = |list: &str| -> Vec<(u32, u32)> {
        list.split(',')
            .filter_map(|part| {
                let (first, last) = part.split_once('-').unwrap_or((part, part));
                Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
            })
            .collect()
    };
    let up = ranges(online);
    for (first, last) in ranges(&list) {
        // The first CPU of first..=last that no online range holds.
        let mut cpu = first;
        while let Some(&(_, end)) = up.iter().find(|(a, b)| (*a..=*b).contains(&cpu)) {
            match end.checked_add(1) {
                Some(next) if next <= last => cpu = next,
                _ => break,
            }
        }
        if !up.iter().any(|(a, b)| (*a..=*b).contains(&cpu)) {
            return Err(refuse(
                "--cpuset-cpus",
                text,
                &format!("this machine has no CPU {cpu} online: give CPUs from {online}"),
            ));
        }
    }
    Ok(list)
}

/// `--cpuset-cpus`: a list of CPU numbers and ranges (`0-3`, `0,2`, `1,3-5`),
/// given back as typed once checked ([`parse_cpuset_on`] checks them
/// against the CPUs online).
pub fn parse_cpuset(text: &str) -> Result<String> {
    let usage = "not a CPU list: give CPU numbers and ranges, e.g. 0-1 or 0,2";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(refuse("--cpuset-cpus", text, usage));
    }
    for part in trimmed.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let number = |s: &str| -> Result<u32> {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
                return Err(refuse("--cpuset-cpus", text, usage));
            }
            s.parse()
                .map_err(|_| refuse("--cpuset-cpus", text, "no CPU has so large a number"))
        };
        if number(first)? > number(last)? {
            return Err(refuse(
                "--cpuset-cpus",
                text,
                &format!("the range {part} runs backwards: write it low-high, e.g. 0-1"),
            ));
        }
    }
    Ok(trimmed.to_string())
}

/// `-c/--cpu-shares`: Docker's 2..262144 (1024 is the default weight).
pub fn parse_cpu_shares(text: &str) -> Result<u64> {
    let shares: u64 = text.trim().parse().map_err(|_| {
        refuse(
            "--cpu-shares",
            text,
            "not a whole number: give a weight from 2 to 262144 (1024 is the default)",
        )
    })?;
    if !(MIN_CPU_SHARES..=MAX_CPU_SHARES).contains(&shares) {
        return Err(refuse(
            "--cpu-shares",
            text,
            "out of range: give a weight from 2 to 262144 (1024 is the default)",
        ));
    }
    Ok(shares)
}

/// cgroup v1's cpu.shares (2..262144) as cgroup v2's cpu.weight (1..10000),
/// by runc's linear map (`ConvertCPUSharesToCgroupV2Value`): 2 → 1,
/// 262144 → 10000. (Note it maps Docker's default 1024 to 39, not to v2's
/// default 100; newer runc releases moved to a curve that keeps 1024 → 100.)
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(error: Error) -> String {
        error.to_string()
    }

    #[test]
    fn sizes_are_read_in_dockers_binary_units() {
        assert_eq!(parse_size("32m"), Ok(33_554_432));
        assert_eq!(parse_size("32M"), Ok(33_554_432));
        assert_eq!(parse_size("32MiB"), Ok(33_554_432));
        assert_eq!(parse_size("32mb"), Ok(33_554_432));
        assert_eq!(parse_size("512k"), Ok(524_288));
        assert_eq!(parse_size("1g"), Ok(1_073_741_824));
        assert_eq!(parse_size("1.5g"), Ok(1_610_612_736));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096b"), Ok(4096));
    }

    #[test]
    fn a_size_with_an_unknown_unit_or_no_number_is_refused() {
        for bad in ["", "m", "32x", "32 megs", "-1m", "1.2.3m", ".5m", "0x10"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_size("99999999999p"),
            Err("too large a size"),
            "overflow is refused, not wrapped"
        );
    }

    #[test]
    fn a_memory_limit_under_6m_is_refused_with_the_minimum() {
        assert!(why(parse_memory("5m").unwrap_err()).contains("smallest memory limit is 6m"));
        assert_eq!(parse_memory("6m").unwrap(), Some(MIN_MEMORY));
        assert_eq!(
            why(parse_memory("32q").unwrap_err()),
            "--memory \"32q\": not a size: give bytes, or a number with k, m or g, e.g. 32m"
        );
    }

    #[test]
    fn cpus_become_a_quota_of_a_100ms_period() {
        let half = parse_cpus("0.5", 2).unwrap();
        assert_eq!(half.cpu_max(), "50000 100000");
        assert_eq!(parse_cpus("1.5", 2).unwrap().quota_us, 150_000);
        assert_eq!(parse_cpus("2", 2).unwrap().quota_us, 200_000);
        assert_eq!(parse_cpus(".25", 2).unwrap().quota_us, 25_000);
        assert_eq!(parse_cpus("0.01", 2).unwrap().quota_us, 1_000);
    }

    #[test]
    fn cpus_out_of_range_or_not_a_number_are_refused_with_the_reason() {
        assert!(why(parse_cpus("3", 2).unwrap_err()).contains("only 2 CPUs"));
        assert!(why(parse_cpus("0", 2).unwrap_err()).contains("smallest is 0.01"));
        assert!(why(parse_cpus("0.001", 2).unwrap_err()).contains("smallest is 0.01"));
        for bad in ["", "half", "-1", "1e3", "0.5.1", "."] {
            assert!(
                why(parse_cpus(bad, 2).unwrap_err()).contains("not a number of CPUs"),
                "{bad:?}"
            );
        }
        assert!(why(parse_cpus("0.0000000001", 2).unwrap_err()).contains("too many decimals"));
    }

    #[test]
    fn pids_limit_is_a_number_and_minus_one_means_none() {
        assert_eq!(parse_pids("64").unwrap(), Pids::Limit(64));
        assert_eq!(parse_pids("-1").unwrap(), Pids::Max);
        assert_eq!(parse_pids("0").unwrap(), Pids::Max);
        assert_eq!(Pids::Limit(16).file_value(), "16");
        assert_eq!(Pids::Max.file_value(), "max");
        assert!(why(parse_pids("lots").unwrap_err()).contains("not a whole number"));
    }

    #[test]
    fn cpuset_lists_are_numbers_and_ranges() {
        assert_eq!(parse_cpuset("0-1").unwrap(), "0-1");
        assert_eq!(parse_cpuset("0,2,4-7").unwrap(), "0,2,4-7");
        assert!(why(parse_cpuset("3-1").unwrap_err()).contains("runs backwards"));
        for bad in ["", "a", "1-", "-1", "1,,2", "1-2-3"] {
            assert!(
                why(parse_cpuset(bad).unwrap_err()).contains("not a CPU list"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cpu_shares_are_dockers_range_and_map_to_a_v2_weight() {
        assert!(why(parse_cpu_shares("1").unwrap_err()).contains("out of range"));
        assert!(why(parse_cpu_shares("300000").unwrap_err()).contains("out of range"));
        assert_eq!(parse_cpu_shares("512").unwrap(), 512);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(0), 0);
    }

    #[test]
    fn the_flags_fit_into_run_beside_dockers_others() {
        use clap::{CommandFactory, FromArgMatches};
        type Cli = crate::lifecycle::Cli<LimitFlags>;
        let command = crate::cli::with_volume_flag(Cli::command()).name("ch7-cgroups");
        command.clone().debug_assert();
        let argv = [
            "ch7-cgroups",
            "run",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "-1",
            "-c",
            "512",
            "--cpuset-cpus",
            "0",
            "-v",
            "/a:/b",
            "busybox",
            "sh",
        ];
        let matches = command.try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Some(crate::lifecycle::Verb::Run(run)) = cli.command else {
            panic!("not a run");
        };
        let limits = run.chapter.limits(2).unwrap();
        assert_eq!(limits.memory, Some(32 << 20));
        assert_eq!(limits.cpus.unwrap().cpu_max(), "50000 100000");
        assert_eq!(limits.pids, None, "-1: no limit");
        assert_eq!(limits.cpu_shares, Some(512));
        assert_eq!(limits.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(run.volumes, ["/a:/b"]);
    }

    #[test]
    fn zero_memory_and_a_pids_limit_of_0_or_minus_1_are_no_limit() {
        assert_eq!(parse_memory("0").unwrap(), None);
        assert_eq!(parse_memory("0m").unwrap(), None);
        for pids in ["-1", "0"] {
            let flags = LimitFlags {
                memory: Some("0".into()),
                pids_limit: Some(pids.into()),
                ..LimitFlags::default()
            };
            let limits = flags.limits(2).unwrap();
            assert!(limits.is_empty(), "{pids}: {limits:?}");
        }
    }

    #[test]
    fn a_huge_memory_limit_is_set_as_given_or_refused_as_too_large() {
        assert_eq!(parse_memory("8000p").unwrap(), Some(8000 << 50));
        assert_eq!(parse_memory("8000P").unwrap(), Some(8000 << 50));
        assert_eq!(
            why(parse_memory("99999p").unwrap_err()),
            "--memory \"99999p\": too large a size"
        );
    }

    #[test]
    fn negative_values_reach_the_parsers_which_name_the_flag() {
        use clap::{CommandFactory, FromArgMatches};
        type Cli = crate::lifecycle::Cli<LimitFlags>;
        let command = crate::cli::with_volume_flag(Cli::command()).name("ch7-cgroups");
        let cases: [(&[&str], &str); 5] = [
            (&["-m", "-1"], "--memory \"-1\": not a size"),
            (&["--memory", "-1"], "--memory \"-1\": not a size"),
            (&["--cpus", "-1"], "--cpus \"-1\": not a number of CPUs"),
            (
                &["--cpu-shares", "-5"],
                "--cpu-shares \"-5\": not a whole number",
            ),
            (
                &["--cpuset-cpus", "-1"],
                "--cpuset-cpus \"-1\": not a CPU list",
            ),
        ];
        for (flags, message) in cases {
            let mut argv = vec!["ch7-cgroups", "run"];
            argv.extend_from_slice(flags);
            argv.extend_from_slice(&["busybox", "true"]);
            let matches = command
                .clone()
                .try_get_matches_from(&argv)
                .unwrap_or_else(|e| panic!("{flags:?}: clap refused it: {e}"));
            let cli = Cli::from_arg_matches(&matches).unwrap();
            let Some(crate::lifecycle::Verb::Run(run)) = cli.command else {
                panic!("not a run");
            };
            let error = why(run.chapter.limits(2).unwrap_err());
            assert!(error.starts_with(message), "{flags:?}: {error}");
        }
    }

    #[test]
    fn a_cpuset_naming_a_cpu_that_is_not_online_is_refused_naming_those_there_are() {
        assert_eq!(parse_cpuset_on("0-1", "0-1").unwrap(), "0-1");
        assert_eq!(parse_cpuset_on("1,3", "0-1,3").unwrap(), "1,3");
        assert_eq!(
            why(parse_cpuset_on("99", "0-1").unwrap_err()),
            "--cpuset-cpus \"99\": this machine has no CPU 99 online: give CPUs from 0-1"
        );
        assert!(why(parse_cpuset_on("0-3", "0-1,3").unwrap_err()).contains("no CPU 2 online"));
        assert!(why(parse_cpuset_on("1-2", "0-1").unwrap_err()).contains("no CPU 2 online"));
        assert!(why(parse_cpuset_on("3-1", "0-7").unwrap_err()).contains("runs backwards"));
        let flags = LimitFlags {
            cpuset_cpus: Some("2".into()),
            ..LimitFlags::default()
        };
        assert!(why(flags.limits(2).unwrap_err()).contains("no CPU 2 online"));
    }

    #[test]
    fn at_least_one_cpu_is_online() {
        assert!(online_cpus() >= 1);
    }

    #[test]
    fn no_flags_means_no_limits() {
        let limits = LimitFlags::default().limits(2).unwrap();
        assert!(limits.is_empty());
        let flags = LimitFlags {
            memory: Some("32m".into()),
            pids_limit: Some("16".into()),
            ..LimitFlags::default()
        };
        let limits = flags.limits(2).unwrap();
        assert_eq!(limits.memory, Some(33_554_432));
        assert_eq!(limits.pids, Some(Pids::Limit(16)));
        assert!(!limits.is_empty());
    }
}
