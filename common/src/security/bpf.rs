//! A seccomp filter as the kernel runs it: a classic BPF program
//! (seccomp(2)). The kernel hands it a `seccomp_data`, the call's number,
//! its architecture and its six arguments, and takes what it returns as
//! the answer: allow, fail with an errno, kill.
//!
//! The program checks the architecture, then finds the call's number by a
//! binary search over ranges of numbers that get the same answer, as
//! libseccomp's optimised filters do. A chain that asks "is it read? is it
//! write? ..." in turn grows with every call a profile names (Docker's
//! allowlist: about 1,600 instructions); the search needs a comparison per
//! halving of the ranges for any call, and Docker's profile fits in under
//! two hundred instructions. That matters twice: each system call runs the filter, and
//! when it is installed the kernel runs it once for every call number, to
//! learn which calls it always allows and may then let pass unfiltered.

use std::collections::BTreeMap;

use libc::{sock_filter, BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP};
use libc::{BPF_K, BPF_LD, BPF_RET, BPF_W};

/// A BPF program, ready for seccomp(2).
pub type Program = Vec<sock_filter>;

/// The kernel takes at most this many instructions (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// What the filter answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Log,
}

impl Action {
    /// The filter's return value for this answer (SECCOMP_RET_*).
    pub fn ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(errno) => libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Log => libc::SECCOMP_RET_LOG,
        }
    }
}

/// How an argument is compared, always as the full 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(argument & mask) == value`.
    MaskedEq(u64),
}

/// One condition on argument `index` (0 to 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    /// The kernel reads this argument as a 32-bit `int`: only its low word
    /// is compared, as the kernel will see it (a full comparison would let
    /// `socket(2^32 + AF_VSOCK, ...)` pass a rule against AF_VSOCK).
    pub low_word: bool,
}

/// When a call is answered `matched`: always (`None`), or when every
/// condition of one of the rules holds.
pub type Rules = Option<Vec<Vec<Condition>>>;

/// A filter: the calls it names answer `matched` (under their rules),
/// everything else `mismatched`; another architecture is killed.
pub struct Filter {
    /// AUDIT_ARCH_* of the architecture allowed.
    pub arch: u32,
    pub calls: BTreeMap<u32, Rules>,
    pub matched: Action,
    pub mismatched: Action,
    /// Every number from this one on gets this answer, whatever `calls`
    /// say (x86_64's x32 calls: bit 30 set).
    pub beyond: Option<(u32, Action)>,
}

/// AUDIT_ARCH_* (linux/audit.h) of the architecture this is built for.
pub fn native_arch() -> u32 {
    if cfg!(target_arch = "aarch64") {
        0xc000_00b7
    } else if cfg!(target_arch = "riscv64") {
        0xc000_00f3
    } else {
        0xc000_003e // x86_64
    }
}

// Offsets in struct seccomp_data (linux/seccomp.h).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// What one range of call numbers gets.
#[derive(Clone, PartialEq)]
enum Leaf<'a> {
    Answer(Action),
    /// One call, answered under its rules.
    Rules(&'a [Vec<Condition>]),
}

/// Compile `filter`, or say why it cannot be.
pub fn compile(filter: &Filter) -> Result<Program, String> {
    // The number line from 0, cut where the answer changes: each range
    // starts at its number and ends where the next one starts.
    let mut ranges: Vec<(u32, Leaf)> = vec![(0, Leaf::Answer(filter.mismatched))];
    for (&number, rules) in &filter.calls {
        let leaf = match rules {
            None => Leaf::Answer(filter.matched),
            Some(rules) => Leaf::Rules(rules),
        };
        // The range before may have been opened at this number.
        if ranges.last().is_some_and(|(start, _)| *start == number) {
            ranges.pop();
        }
        ranges.push((number, leaf));
        if let Some(next) = number.checked_add(1) {
            if !filter.calls.contains_key(&next) {
                ranges.push((next, Leaf::Answer(filter.mismatched)));
            }
        }
    }
    if let Some((start, action)) = filter.beyond {
        ranges.retain(|(from, _)| *from < start);
        ranges.push((start, Leaf::Answer(action)));
    }
    // Neighbours with the same plain answer are one range.
    ranges.dedup_by(|next, previous| matches!(next.1, Leaf::Answer(_)) && next.1 == previous.1);
    let mut program = vec![
        load(ARCH),
        jump(BPF_JEQ, filter.arch, 1, 0),
        ret(Action::KillProcess.ret()),
        load(NR),
    ];
    program.extend(search(&ranges, filter)?);
    if program.len() > MAX_INSTRUCTIONS {
        return Err(format!(
            "the filter needs {} BPF instructions, more than the kernel's {MAX_INSTRUCTIONS}",
            program.len()
        ));
    }
    Ok(program)
}

/// The binary search over `ranges` (the call's number is in A): if it is at
/// least where the middle range starts, on to the right half, else the left.
fn search(ranges: &[(u32, Leaf)], filter: &Filter) -> Result<Program, String> {
    if let [(_, leaf)] = ranges {
        return match leaf {
            Leaf::Answer(action) => Ok(vec![ret(action.ret())]),
            Leaf::Rules(rules) => rules_code(rules, filter),
        };
    }
    let middle = ranges.len() / 2;
    let left = search(&ranges[..middle], filter)?;
    let right = search(&ranges[middle..], filter)?;
    let boundary = ranges[middle].0;
    let mut program = match u8::try_from(left.len()) {
        // A conditional jump skips at most 255 instructions ...
        Ok(skip) => vec![jump(BPF_JGE, boundary, skip, 0)],
        // ... an unconditional one, any number.
        Err(_) => vec![
            jump(BPF_JGE, boundary, 0, 1),
            sock_filter {
                code: (BPF_JMP | BPF_JA) as u16,
                jt: 0,
                jf: 0,
                k: left.len() as u32,
            },
        ],
    };
    program.extend(left);
    program.extend(right);
    Ok(program)
}

/// One call's rules, in turn: the first whose conditions all hold answers
/// `matched`; when none does, `mismatched`.
fn rules_code(rules: &[Vec<Condition>], filter: &Filter) -> Result<Program, String> {
    let mut program = Vec::new();
    for rule in rules {
        // Built from the end: a failed condition skips the rest of its
        // rule and the rule's answer, to the next rule.
        let mut code = vec![ret(filter.matched.ret())];
        for condition in rule.iter().rev() {
            // A condition's own code is at most 6 instructions long.
            let fail = u8::try_from(code.len())
                .ok()
                .filter(|n| *n <= u8::MAX - 6)
                .ok_or("a rule with more conditions than a BPF jump can skip")?;
            let mut ahead = condition_code(condition, fail);
            ahead.extend(code);
            code = ahead;
        }
        program.extend(code);
    }
    program.push(ret(filter.mismatched.ret()));
    Ok(program)
}

/// Compare a 64-bit argument, high word first, as two 32-bit words (BPF's
/// accumulator holds 32 bits). When it holds, the next instruction after
/// this code runs; when not, `fail` instructions further on.
fn condition_code(condition: &Condition, fail: u8) -> Program {
    // Little-endian: the low word first (x86_64, aarch64, riscv64).
    let low = ARGS + 8 * u32::from(condition.index);
    let high = low + 4;
    let (value_high, value_low) = split(condition.value);
    // Jump offsets count from the next instruction; `f(n)` reaches the
    // failure from an instruction that has `n` more of this code after it.
    let f = |n: u8| n + fail;
    if condition.low_word {
        let value = value_low;
        return match condition.op {
            Op::Eq => vec![load(low), jump(BPF_JEQ, value, 0, f(0))],
            Op::Ne => vec![load(low), jump(BPF_JEQ, value, f(0), 0)],
            Op::MaskedEq(mask) => vec![
                load(low),
                and(mask as u32),
                jump(BPF_JEQ, value & mask as u32, 0, f(0)),
            ],
            Op::Gt => vec![load(low), jump(BPF_JGT, value, 0, f(0))],
            Op::Ge => vec![load(low), jump(BPF_JGE, value, 0, f(0))],
            Op::Lt => vec![load(low), jump(BPF_JGE, value, f(0), 0)],
            Op::Le => vec![load(low), jump(BPF_JGT, value, f(0), 0)],
        };
    }
    match condition.op {
        Op::Eq => vec![
            load(high),
            jump(BPF_JEQ, value_high, 0, f(2)),
            load(low),
            jump(BPF_JEQ, value_low, 0, f(0)),
        ],
        Op::Ne => vec![
            load(high),
            jump(BPF_JEQ, value_high, 0, 2),
            load(low),
            jump(BPF_JEQ, value_low, f(0), 0),
        ],
        Op::MaskedEq(mask) => {
            let (mask_high, mask_low) = split(mask);
            let (want_high, want_low) = split(condition.value & mask);
            vec![
                load(high),
                and(mask_high),
                jump(BPF_JEQ, want_high, 0, f(3)),
                load(low),
                and(mask_low),
                jump(BPF_JEQ, want_low, 0, f(0)),
            ]
        }
        Op::Gt | Op::Ge => vec![
            load(high),
            jump(BPF_JGT, value_high, 3, 0),
            jump(BPF_JEQ, value_high, 0, f(2)),
            load(low),
            jump(
                if condition.op == Op::Gt {
                    BPF_JGT
                } else {
                    BPF_JGE
                },
                value_low,
                0,
                f(0),
            ),
        ],
        Op::Lt | Op::Le => vec![
            load(high),
            jump(BPF_JGT, value_high, f(3), 0),
            jump(BPF_JEQ, value_high, 0, 2),
            load(low),
            jump(
                if condition.op == Op::Lt {
                    BPF_JGE
                } else {
                    BPF_JGT
                },
                value_low,
                f(0),
                0,
            ),
        ],
    }
}

fn split(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

/// A = the 32-bit word at `offset` of seccomp_data.
fn load(offset: u32) -> sock_filter {
    sock_filter {
        code: (BPF_LD | BPF_W | BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

fn and(mask: u32) -> sock_filter {
    sock_filter {
        code: (BPF_ALU | BPF_AND | BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: mask,
    }
}

/// If `A <test> k`, skip `jt` instructions, else `jf`.
pub(crate) fn jump(test: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: (BPF_JMP | test | BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn ret(value: u32) -> sock_filter {
    sock_filter {
        code: (BPF_RET | BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: value,
    }
}

/// Run `program` on one call as the kernel would (the instructions this
/// module emits, and seccompiler's), for tests: what it returns.
#[cfg(test)]
pub fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let word = |offset: u32| -> u32 {
        match offset {
            NR => nr,
            ARCH => arch,
            _ => {
                let index = ((offset - ARGS) / 8) as usize;
                if (offset - ARGS).is_multiple_of(8) {
                    args[index] as u32
                } else {
                    (args[index] >> 32) as u32
                }
            }
        }
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let insn = program[pc];
        let code = u32::from(insn.code);
        pc += 1;
        match code {
            c if c == BPF_LD | BPF_W | BPF_ABS => a = word(insn.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= insn.k,
            c if c == BPF_JMP | BPF_JA => pc += insn.k as usize,
            c if c == BPF_RET | BPF_K => return insn.k,
            c if c & 0x07 == BPF_JMP => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => a == insn.k,
                    BPF_JGT => a > insn.k,
                    BPF_JGE => a >= insn.k,
                    other => panic!("a jump this module does not emit: {other:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            other => panic!("an instruction this module does not emit: {other:#x}"),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

    /// The same filter compiled by seccompiler, whose filters are one
    /// chain of "is it this call?" tests: the reference.
    pub fn reference(filter: &Filter) -> Program {
        let action = |a: Action| match a {
            Action::Allow => seccompiler::SeccompAction::Allow,
            Action::Errno(e) => seccompiler::SeccompAction::Errno(e),
            Action::KillThread => seccompiler::SeccompAction::KillThread,
            Action::KillProcess => seccompiler::SeccompAction::KillProcess,
            Action::Trap => seccompiler::SeccompAction::Trap,
            Action::Log => seccompiler::SeccompAction::Log,
        };
        let rules = filter
            .calls
            .iter()
            .map(|(&number, rules)| {
                let chain = rules
                    .iter()
                    .flatten()
                    .map(|rule| {
                        let conditions = rule
                            .iter()
                            .map(|c| {
                                let op = match c.op {
                                    Op::Eq => SeccompCmpOp::Eq,
                                    Op::Ne => SeccompCmpOp::Ne,
                                    Op::Lt => SeccompCmpOp::Lt,
                                    Op::Le => SeccompCmpOp::Le,
                                    Op::Gt => SeccompCmpOp::Gt,
                                    Op::Ge => SeccompCmpOp::Ge,
                                    Op::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
                                };
                                let len = if c.low_word {
                                    SeccompCmpArgLen::Dword
                                } else {
                                    SeccompCmpArgLen::Qword
                                };
                                SeccompCondition::new(c.index, len, op, c.value).unwrap()
                            })
                            .collect();
                        SeccompRule::new(conditions).unwrap()
                    })
                    .collect();
                (i64::from(number), chain)
            })
            .collect();
        let arch = if cfg!(target_arch = "aarch64") {
            seccompiler::TargetArch::aarch64
        } else if cfg!(target_arch = "riscv64") {
            seccompiler::TargetArch::riscv64
        } else {
            seccompiler::TargetArch::x86_64
        };
        let compiled = seccompiler::SeccompFilter::new(
            rules,
            action(filter.mismatched),
            action(filter.matched),
            arch,
        )
        .unwrap();
        seccompiler::BpfProgram::try_from(compiled)
            .unwrap()
            .into_iter()
            .map(|i| sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    /// xorshift64: the same numbers every run.
    pub struct Random(pub u64);

    impl Random {
        pub fn number(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.number() % from.len() as u64) as usize]
        }
    }

    /// Argument values that sit on every edge of `filter`'s comparisons:
    /// each value, one either side, its other word changed, its masks.
    pub fn edges(filter: &Filter) -> Vec<u64> {
        let mut values = vec![0, 1, u64::MAX, u64::from(u32::MAX), 1 << 32];
        for condition in filter.calls.values().flatten().flatten().flatten() {
            let v = condition.value;
            values.extend([v, v.wrapping_sub(1), v.wrapping_add(1)]);
            values.extend([
                v ^ (1 << 32),
                v ^ 1,
                v | (0xffff_ffff << 32),
                v & 0xffff_ffff,
            ]);
            if let Op::MaskedEq(mask) = condition.op {
                values.extend([v & mask, (v & mask) | !mask, mask, !mask]);
            }
        }
        values.sort_unstable();
        values.dedup();
        values
    }

    /// Both programs answer the same for every number up to `top`, far
    /// numbers and another architecture, with `samples` argument sets per
    /// call drawn from the edges.
    pub fn assert_same(
        ours: &[sock_filter],
        theirs: &[sock_filter],
        filter: &Filter,
        samples: usize,
    ) {
        let edges = edges(filter);
        let mut random = Random(0x5eed_cafe_f00d_d00d);
        let top = filter.calls.keys().last().map_or(0, |n| n + 2);
        let far = [
            u32::MAX,
            u32::MAX - 1,
            0x3fff_ffff,
            0x7fff_ffff,
            0x4000_0000,
            0x4000_0001,
            0x8000_0000,
        ];
        for nr in (0..=top).chain(far) {
            for arch in [filter.arch, 0x4000_0003 /* i386 */] {
                let count = if filter.calls.get(&nr).is_some_and(Option::is_some) {
                    samples
                } else {
                    2
                };
                for _ in 0..count {
                    let args = std::array::from_fn(|_| random.pick(&edges));
                    assert_eq!(
                        run(ours, nr, arch, args),
                        run(theirs, nr, arch, args),
                        "call {nr}, arch {arch:#x}, args {args:x?}"
                    );
                }
            }
        }
    }

    fn random_filter(random: &mut Random) -> Filter {
        let ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
        let values = [
            0,
            1,
            2,
            0x10,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 5,
            u64::MAX,
            0x7e02_0000,
        ];
        let mut calls = BTreeMap::new();
        for _ in 0..random.number() % 300 {
            let number = (random.number() % 460) as u32;
            let rules = if random.number().is_multiple_of(4) {
                let rules = (0..1 + random.number() % 4)
                    .map(|_| {
                        (0..1 + random.number() % 3)
                            .map(|_| Condition {
                                index: (random.number() % 6) as u8,
                                op: if random.number().is_multiple_of(5) {
                                    Op::MaskedEq(random.pick(&values))
                                } else {
                                    random.pick(&ops)
                                },
                                value: random.pick(&values),
                                low_word: random.number().is_multiple_of(3),
                            })
                            .collect()
                    })
                    .collect();
                Some(rules)
            } else {
                None
            };
            calls.insert(number, rules);
        }
        let actions = [
            Action::Allow,
            Action::Errno(1),
            Action::Errno(38),
            Action::KillProcess,
            Action::Log,
        ];
        let matched = random.pick(&actions);
        let mut mismatched = random.pick(&actions);
        while mismatched == matched {
            mismatched = random.pick(&actions);
        }
        Filter {
            arch: native_arch(),
            calls,
            matched,
            mismatched,
            beyond: None,
        }
    }

    pub fn stmt(code: u32, k: u32) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    pub(crate) use super::jump;

    #[test]
    fn random_filters_answer_as_seccompilers_chain_does() {
        let mut random = Random(42);
        for _ in 0..60 {
            let filter = random_filter(&mut random);
            let ours = compile(&filter).unwrap();
            assert_same(&ours, &reference(&filter), &filter, 40);
        }
    }

    #[test]
    fn every_comparison_holds_on_both_words_of_the_argument() {
        // One call, one condition, every operator, against values whose
        // high and low words each sit below, on and above the compared one.
        let value = (7u64 << 32) | 100;
        let near = |v: u64| [v.wrapping_sub(1), v, v.wrapping_add(1)];
        let args: Vec<u64> = near(7)
            .iter()
            .flat_map(|high| near(100).map(|low| (high << 32) | low))
            .collect();
        for op in [
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Le,
            Op::Gt,
            Op::Ge,
            Op::MaskedEq(0xf_0000_00f0),
        ] {
            for low_word in [false, true] {
                let filter = Filter {
                    arch: native_arch(),
                    calls: BTreeMap::from([(
                        3,
                        Some(vec![vec![Condition {
                            index: 2,
                            op,
                            value,
                            low_word,
                        }]]),
                    )]),
                    matched: Action::Allow,
                    mismatched: Action::Errno(1),
                    beyond: None,
                };
                let program = compile(&filter).unwrap();
                // A 32-bit argument: the kernel sees its low word only.
                let seen = |v: u64| if low_word { v & 0xffff_ffff } else { v };
                for &arg in &args {
                    let (arg_seen, value) = (seen(arg), seen(value));
                    let holds = match op {
                        Op::Eq => arg_seen == value,
                        Op::Ne => arg_seen != value,
                        Op::Lt => arg_seen < value,
                        Op::Le => arg_seen <= value,
                        Op::Gt => arg_seen > value,
                        Op::Ge => arg_seen >= value,
                        Op::MaskedEq(mask) => arg_seen & mask == value & mask,
                    };
                    let want = if holds {
                        Action::Allow
                    } else {
                        Action::Errno(1)
                    };
                    assert_eq!(
                        run(&program, 3, native_arch(), [0, 0, arg, 0, 0, 0]),
                        want.ret(),
                        "{op:?} {arg:#x} low word only: {low_word}"
                    );
                }
            }
        }
    }

    #[test]
    fn another_architecture_is_killed_and_far_numbers_get_the_default() {
        let filter = Filter {
            arch: native_arch(),
            calls: BTreeMap::from([(0, None), (u32::MAX, None)]),
            matched: Action::Allow,
            mismatched: Action::Errno(1),
            beyond: None,
        };
        let program = compile(&filter).unwrap();
        assert_eq!(
            run(&program, 0, 0x4000_0003, [0; 6]),
            Action::KillProcess.ret()
        );
        assert_eq!(run(&program, 0, native_arch(), [0; 6]), Action::Allow.ret());
        assert_eq!(
            run(&program, u32::MAX, native_arch(), [0; 6]),
            Action::Allow.ret()
        );
        assert_eq!(
            run(&program, 1, native_arch(), [0; 6]),
            Action::Errno(1).ret()
        );
        assert_eq!(
            run(&program, u32::MAX - 1, native_arch(), [0; 6]),
            Action::Errno(1).ret()
        );
    }

    /// Every other number below `end` allowed, the rest EPERM: one range
    /// per number.
    fn every_other_call(end: u32) -> Filter {
        Filter {
            arch: native_arch(),
            calls: (0..end).step_by(2).map(|n| (n, None)).collect(),
            matched: Action::Allow,
            mismatched: Action::Errno(1),
            beyond: None,
        }
    }

    #[test]
    fn a_filter_longer_than_a_conditional_jump_uses_an_unconditional_one() {
        // Hundreds of ranges, so the left half of the first comparisons is
        // longer than 255 instructions.
        let program = compile(&every_other_call(2000)).unwrap();
        assert!(program
            .iter()
            .any(|i| u32::from(i.code) == BPF_JMP | BPF_JA));
        for nr in 0..2002 {
            let want = if nr % 2 == 0 && nr < 2000 {
                Action::Allow
            } else {
                Action::Errno(1)
            };
            assert_eq!(
                run(&program, nr, native_arch(), [0; 6]),
                want.ret(),
                "call {nr}"
            );
        }
    }

    #[test]
    fn a_filter_over_the_kernels_limit_is_refused() {
        let error = compile(&every_other_call(6000)).unwrap_err();
        assert!(error.contains("more than the kernel's 4096"), "{error}");
    }
}
