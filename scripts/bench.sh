#!/usr/bin/env bash
# Benchmark: how much does each chapter cost compared with the tool it imitates?
#
# Builds release binaries, then, for each chapter, measures
#   * wall time to start a container and run /bin/true in it (hyperfine, no
#     shell in between: median, min and max of many runs),
#   * peak resident memory (/usr/bin/time -f %M, the largest of several runs),
#   * and, where a chapter adds work that grows with the image or with the
#     number of containers, that work: unpacking and committing ~200 MB of
#     small files, 50 containers side by side.
#
# Targets (a missed target is reported as FAIL, but the script still exits 0;
# it exits non-zero only if something breaks):
#   ch1-mount-ns   median ≤ 1.25 × `unshare -m /bin/true`   peak RSS ≤ 4 MiB
#   ch2-rootfs     --method pivot-root median ≤ 1.0 × `bwrap` into the same
#                  busybox root (new mount, pid, uts, ipc namespaces, /proc, /dev)
#                  peak RSS ≤ 4 MiB
#   ch3-overlay    median, layer cached, ≤ 1.3 × ch2-rootfs --method
#                  pivot-root, pair by pair, on disk and on tmpfs (see the
#                  filesystems below)
#                  median, layer cached, ≤ 0.8 × `crun run` of a plain OCI
#                  bundle (see crun below), pair by pair
#                  first run of a ~200 MB tarball of small files (unpack +
#                  one container run) ≤ 1.0 × `tar -xf` of the same file
#                  peak RSS, layer cached, ≤ 4 MiB
#   ch4-volumes    median with three -v volumes ≤ 1.1 × ch3-overlay, pair by
#                  pair, on disk and on tmpfs     peak RSS ≤ 4 MiB
#   ch5-commit     50 `run -d` one after another: median start of the last 10
#                  ≤ 1.5 × the first 10
#                  `ps` with 50 containers running: median ≤ 20 ms
#                  each container's monitor process: RSS ≤ 1.5 MiB
#                  `commit --flatten` of busybox + ~200 MB of small files
#                  ≤ 0.33 × `tar -czf` of the same files (3 × faster), and
#                  its layer no larger than tar's .tgz
#                  run --rm busybox /bin/true ≤ 0.8 × `crun run` of the plain
#                  bundle, pair by pair         peak RSS of run --rm ≤ 4 MiB
#                  50 × `run -d` (busybox sleep) then one `rm -f` of all 50:
#                  median total ≤ 0.8 × 50 × `crun run --detach` then one
#                  `crun delete -f --regex` of all 50, batch against batch
#                  ($BENCH_BIG_RUNS batches of each, taking turns)
#   commit         (issue 12) `commit` of a container that changed 1 MB, as a
#                  layer over its image's: median ≤ 100 ms, ≤ 2 MiB written
#                  to the store; a run of the committed image unpacks one
#                  layer (the new one) and none of its base
#   ch6-security   (issue 13) run --rm busybox /bin/true ≤ 1.15 × ch5-commit
#                  run --rm, pair by pair; and ≤ 0.8 × `crun run` of an OCI
#                  bundle over the same busybox root with the same
#                  restrictions: Docker's default seccomp profile (ch6's own
#                  JSON, converted with jq to a runtime-spec linux.seccomp),
#                  Docker's 14 capabilities, its masked and read-only paths,
#                  no_new_privs; mount, pid, uts and ipc namespaces as ch6
#                  makes, no cgroup (ch6 makes none: --cgroup-manager=disabled)
#                  peak RSS of run --rm ≤ 4 MiB
#   interactive    (from ch2 on, stdin a terminal gives the container a pty of
#                  its own) ch2-rootfs and ch5-commit run --rm, stdin a pty:
#                  median ≤ 0.3 ms more than with stdin /dev/null, both
#                  started by the same pty wrapper, pair by pair
#                  ch2-rootfs, stdin /dev/null: median ≤ 1.05 × the same
#                  chapter built from the commit before the terminal work
#                  (the parent of the first commit of common/src/terminal.rs,
#                  checked out with git worktree and built in a temporary
#                  directory), pair by pair
#   ch7-cgroups    (issue 14) run --rm with three limits (-m, --cpus,
#                  --pids-limit: a cgroup made, written, joined and removed
#                  in each run): median ≤ 1.2 × ch6-security run --rm, pair
#                  by pair; peak RSS of that run --rm ≤ 4 MiB
#   lower bounds   (issue 15) each chapter, run as in its rows above (ch1;
#                  ch2 --method pivot-root; ch3, layer cached; ch4 with three
#                  -v volumes; ch5, ch6 run --rm; ch7 run --rm with its three
#                  limits) ≤ 1.2 × scripts/lower-bound.c doing the same run
#                  (built with cc -O2): the chapter's system calls, without
#                  the Rust runtime's, the narration's and the chapter's
#                  checks (the file's header lists what it leaves out), in
#                  the same data root over the same layer, pair by pair; as
#                  root (the chapters add a user namespace otherwise), ch7
#                  only where it may set limits, on cgroup v1 trees
#
# crun (issue 15): the plain bundle is made as ch3 makes its container, from
# `crun spec`: mount, pid, uts and ipc namespaces; the root a read-only bind
# of the busybox layer ch3 and ch5 read (no overlay: crun has no image
# store); /proc, /dev with devpts, shm and mqueue, a tmpfs on /tmp, no /sys;
# no seccomp, crun spec's default capabilities, no cgroup
# (--cgroup-manager=disabled); no masked or read-only paths, no
# no_new_privs and no rlimits (ch3 sets none of them). As root, an info row
# pairs ch5's lower bound with crun too: the floor of the rows against crun
# on this data root, what no Rust change can go below.
#
# Filesystems: the ch3 / ch2 and ch4 / ch3 pairs run twice, each time with a
# data root of their own holding a copy of the busybox image: on disk (under
# /var/tmp; ext4 mounted with discard on the machine these targets were set
# on; the row names the filesystem it found) and on tmpfs (a tmpfs the
# script mounts under its temporary directory and unmounts at exit). Every
# other row uses the data root made by mktemp -d (under $TMPDIR, else /tmp:
# ext4 there too, but tmpfs where /tmp is one); the banner names its
# filesystem. The minbase rows use /var/tmp and /dev/shm.
#
# Timings are only as quiet as the machine: a build running alongside moves
# the medians by tenths of a millisecond. Compare runs made on an idle machine.
#
# Usage: scripts/bench.sh            (from any directory)
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: the repository's target/)
#   BENCH_RUNS         timed runs per command  (default 300)
#   BENCH_WARMUP       untimed warm-up runs    (default 20)
#   BENCH_RSS_RUNS     runs for peak RSS       (default 20)
#   BENCH_BIG_RUNS     runs of the ~200 MB unpack and commit (default 5)
#   BENCH_ONLY         interactive: only the interactive-start rows (and the
#                      untimed runs that provision their images); minbase:
#                      only the Debian minbase first unpack; commit: only the
#                      1 MB layer commit; ch6: only ch6's rows against ch5
#                      and crun; ch7: only the ch7-cgroups row; crun: only
#                      the rows against crun's plain bundle (ch3, ch5 run
#                      --rm, 50 run -d + rm -f); lowerbound: only each
#                      chapter against its lower bound in C; default: every
#                      row
#
# Run as root, it installs what it lacks with apt-get (hyperfine, time,
# bubblewrap, jq, gcc for the pty wrapper and the lower bounds, crun). It never touches /var/lib/stepbox: the chapters get a
# temporary data root, every container it starts (stepbox's and crun's) is
# removed on exit, and the tmpfs it mounts is unmounted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

RUNS=${BENCH_RUNS:-300}
WARMUP=${BENCH_WARMUP:-20}
RSS_RUNS=${BENCH_RSS_RUNS:-20}
BIG_RUNS=${BENCH_BIG_RUNS:-5}
ONLY=${BENCH_ONLY:-}
case $ONLY in
  '' | interactive | minbase | commit | ch6 | ch7 | crun | lowerbound) ;;
  *) echo "bench.sh: BENCH_ONLY=$ONLY: the values known are interactive, minbase, commit, ch6, ch7, crun and lowerbound" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# command → Debian package that provides it
declare -A PACKAGE=(
  [hyperfine]=hyperfine
  [/usr/bin/time]=time
  [unshare]=util-linux
  [findmnt]=util-linux
  [awk]=mawk
  [bwrap]=bubblewrap
  [jq]=jq
  [tar]=tar
  [gzip]=gzip
  [cc]=gcc
  [mmdebstrap]=mmdebstrap
  [crun]=crun
)

command -v cargo >/dev/null ||
  { echo "bench.sh: cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }

missing=()
for tool in "${!PACKAGE[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${PACKAGE[$tool]}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "bench.sh: missing tools: install the package(s) ${missing[*]}" \
      "(e.g. sudo apt-get install ${missing[*]}), or run as root" >&2
    exit 1
  fi
  echo "bench.sh: installing ${missing[*]}" >&2
  # A fresh machine may have no package lists yet: fetch them and try again.
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

# ---------------------------------------------------------------------------
# Build, and a data root of our own
# ---------------------------------------------------------------------------

echo "building release binaries..." >&2
cargo build --release --bins --quiet
# A relative CARGO_TARGET_DIR is relative to the repository root, as for cargo.
bin="${CARGO_TARGET_DIR:-$repo/target}/release"

# On exit, even after a failure or Ctrl-C: remove every ch5 container (rm -f
# kills its processes) and every crun container, the old revision's git
# worktree, unmount our tmpfs, then remove our temporary directories.
cleanup() {
  local state name id proc root
  for state in "${STEPBOX_ROOT:-/nonexistent}"/containers/*/state.json; do
    [ -e "$state" ] || continue
    name=$(basename "$(dirname "$state")")
    # The last chapter may remove any chapter's container (an earlier one
    # refuses a later one's: it knows nothing of its cgroup).
    "$bin/ch7-cgroups" -q rm -f "$name" >/dev/null ||
      echo "bench.sh: could not remove container $name" >&2
  done
  if [ -n "$crun_state" ] && [ -d "$crun_state" ]; then
    for id in $(crun --root "$crun_state" list -q); do
      crun --root "$crun_state" --cgroup-manager=disabled delete -f "$id" ||
        echo "bench.sh: could not delete crun container $id" >&2
    done
  fi
  # A `crun run` stopped half-way (Ctrl-C) may leave a container that its
  # state does not list. Our bundles' root is the busybox layer, bound as
  # it is: a process whose root is that directory (same device and inode)
  # is one of their containers' init, and killing it ends its pid namespace.
  if [ -n "$crun_root" ] && root=$(stat -c %d:%i "$crun_root" 2>/dev/null); then
    for proc in /proc/[0-9]*; do
      if [ "$(stat -L -c %d:%i "$proc/root" 2>/dev/null)" = "$root" ]; then
        kill -KILL "${proc#/proc/}" 2>/dev/null ||
          echo "bench.sh: could not kill crun's container process ${proc#/proc/}" >&2
      fi
    done
  fi
  if [ -n "$old_src" ]; then
    git -C "$repo" worktree remove --force "$old_src" ||
      echo "bench.sh: could not remove the git worktree $old_src" >&2
  fi
  # Before removing $work, which holds the mount point.
  if [ -n "$tmpfs_dir" ] && mountpoint -q "$tmpfs_dir"; then
    umount "$tmpfs_dir" || echo "bench.sh: could not unmount the tmpfs at $tmpfs_dir" >&2
  fi
  rm -rf "$STEPBOX_ROOT" "$results" "$work" "${scratch_dirs[@]}"
  # A cgroup is removed by rmdir alone, once no process is in it.
  [ -z "$floor_dir" ] || [ ! -d "$floor_dir" ] || rmdir "$floor_dir" ||
    echo "bench.sh: could not remove the cgroup $floor_dir" >&2
  # ch7's lower bound: the cgroups of a run stopped half-way, then their
  # parent, in every tree (its container's init died with it: PDEATHSIG).
  if [ -n "$lb_cgroup" ]; then
    for dir in /sys/fs/cgroup/*/"$lb_cgroup"/*/ /sys/fs/cgroup/*/"$lb_cgroup"/; do
      if [ -d "$dir" ] && ! rmdir "$dir"; then
        echo "bench.sh: could not remove the cgroup $dir" >&2
      fi
    done
  fi
}
STEPBOX_ROOT='' results='' work='' old_src='' scratch_dirs=() floor_dir='' lb_cgroup=''
crun_state='' crun_root='' tmpfs_dir=''
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
STEPBOX_ROOT=$(mktemp -d)   # the chapters' data root: images, containers
export STEPBOX_ROOT
results=$(mktemp -d)        # hyperfine's and time's raw output
work=$(mktemp -d)           # generated files, tarballs, volumes, fresh data roots
crun_state=$work/crun-state # crun's --root: its containers' state

# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

# Results, in milliseconds and KiB, keyed by the row's NAME.
declare -A MEDIAN MIN MAX MEAN RSS
met=0
missed=0
unmeasured=0

# time_cmd NAME -- CMD...
#   Time CMD with hyperfine and record its median, min and max wall time (ms).
#   -N: hyperfine runs CMD itself, so no shell start-up is measured.
time_cmd() {
  local name=$1
  shift 2
  local csv="$results/${name//[^A-Za-z0-9_.-]/_}.csv"
  echo "timing $name: $* ($RUNS runs)..." >&2
  hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
    --export-csv "$csv" -- "${*@Q}" >/dev/null
  # CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
  # Count from the end: the command itself may contain commas.
  local median min max
  read -r median min max < <(awk -F, 'NR == 2 {
      printf "%.3f %.3f %.3f\n", $(NF-4) * 1000, $(NF-1) * 1000, $NF * 1000 }' "$csv")
  # MAX is printed below and kept for rows that want it.
  # shellcheck disable=SC2034
  MEDIAN[$name]=$median MIN[$name]=$min MAX[$name]=$max
  printf '  %-32s median %8.3f ms   min %8.3f ms   max %8.3f ms\n' \
    "$name" "$median" "$min" "$max"
}

# peak_rss NAME -- CMD...
#   Run CMD $RSS_RUNS times and record the largest peak RSS (KiB). The kernel
#   counts the command's children too, so this covers the container's process.
peak_rss() {
  local name=$1
  shift 2
  local out="$results/${name//[^A-Za-z0-9_.-]/_}.rss" peak=0 kib i
  for ((i = 0; i < RSS_RUNS; i++)); do
    /usr/bin/time -f %M -o "$out" -- "$@" >/dev/null
    kib=$(tail -n 1 "$out")
    if ((kib > peak)); then peak=$kib; fi
  done
  RSS[$name]=$peak
  printf '  %-32s peak RSS %6d KiB = %6.2f MiB (max of %d runs)\n' \
    "$name" "$peak" "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$RSS_RUNS"
}

# verdict OK DESCRIPTION: print PASS or FAIL and count it.
verdict() {
  if [ "$1" = 1 ]; then
    met=$((met + 1))
    echo "  PASS  $2"
  else
    missed=$((missed + 1))
    echo "  FAIL  $2"
  fi
}

# compare A B TARGET_RATIO
#   Target: A's median wall time ≤ TARGET_RATIO × B's. The ratio of the
#   minimums is shown too: it is the least disturbed by other load.
compare() {
  local a=$1 b=$2 target=$3 ratio min_ratio ok
  read -r ratio min_ratio ok < <(awk -v t="$target" \
    -v a="${MEDIAN[$a]}" -v b="${MEDIAN[$b]}" -v amin="${MIN[$a]}" -v bmin="${MIN[$b]}" \
    'BEGIN { r = a / b; printf "%.2f %.2f %d\n", r, amin / bmin, r <= t }')
  verdict "$ok" "$a / $b median = ${ratio}x (target ≤ ${target}x; minimums: ${min_ratio}x)"
}

# difference A B LIMIT_MS
#   Target: A's median wall time is at most LIMIT_MS more than B's. The
#   difference of the minimums and the ratio of the medians are shown too.
difference() {
  local a=$1 b=$2 limit=$3 diff min_diff ratio ok
  read -r diff min_diff ratio ok < <(awk -v l="$limit" \
    -v a="${MEDIAN[$a]}" -v b="${MEDIAN[$b]}" -v amin="${MIN[$a]}" -v bmin="${MIN[$b]}" \
    'BEGIN { d = a - b; printf "%.3f %.3f %.2f %d\n", d, amin - bmin, a / b, d <= l }')
  verdict "$ok" "$a - $b median = $diff ms (target ≤ $limit ms; minimums: $min_diff ms; ratio ${ratio}x)"
}

# not_measured DESCRIPTION: a target that could not be measured, and why.
not_measured() {
  unmeasured=$((unmeasured + 1))
  echo "  N/A   $1"
}

# rss_target NAME LIMIT_KIB
#   Target: NAME's peak RSS ≤ LIMIT_KIB.
rss_target() {
  local name=$1 limit=$2
  verdict "$((RSS[$name] <= limit))" "$name peak RSS = ${RSS[$name]} KiB (target ≤ $limit KiB)"
}

# show_ratio A B
#   No target, for the reader: A's median (and minimum) over B's.
show_ratio() {
  local a=$1 b=$2 ratio min_ratio
  read -r ratio min_ratio < <(awk \
    -v a="${MEDIAN[$a]}" -v b="${MEDIAN[$b]}" -v amin="${MIN[$a]}" -v bmin="${MIN[$b]}" \
    'BEGIN { printf "%.2f %.2f\n", a / b, amin / bmin }')
  echo "  info  $a / $b median = ${ratio}x (minimums: ${min_ratio}x)"
}

# time_target NAME LIMIT_MS
#   Target: NAME's median wall time ≤ LIMIT_MS.
time_target() {
  local name=$1 limit=$2 ok
  ok=$(awk -v m="${MEDIAN[$name]}" -v l="$limit" 'BEGIN { print (m <= l) }')
  verdict "$ok" "$name median = ${MEDIAN[$name]} ms (target ≤ $limit ms)"
}

# Some work takes seconds, or must be set up afresh before every run (an
# empty data root, an empty directory): it is timed here, one run at a time,
# with the shell's own clock ($EPOCHREALTIME, microseconds, no fork).

# time_once ARRAY -- CMD...
#   Run CMD once (output discarded) and append its wall time (ms) to ARRAY.
time_once() {
  local -n times=$1
  shift 2
  local start=$EPOCHREALTIME
  "$@" >/dev/null
  times+=("$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", (b - a) * 1000 }')")
}

# alternate A_TIMES A_CMD B_TIMES B_CMD
#   Run the commands held in the arrays named A_CMD and B_CMD $RUNS times each,
#   pair by pair, after $WARMUP untimed pairs, and append their wall times (ms)
#   to the arrays A_TIMES and B_TIMES. Whatever slows the machine down for a
#   while (a compiler next door) slows both alike, and the one going first
#   changes every pair (A B, B A, ...). The Nth times of A and B are one pair.
alternate() {
  local -n a_cmd=$2 b_cmd=$4
  local i
  for ((i = 0; i < WARMUP; i++)); do
    "${a_cmd[@]}" >/dev/null
    "${b_cmd[@]}" >/dev/null
  done
  for ((i = 0; i < RUNS; i++)); do
    if ((i % 2)); then
      time_once "$3" -- "${b_cmd[@]}"
      time_once "$1" -- "${a_cmd[@]}"
    else
      time_once "$1" -- "${a_cmd[@]}"
      time_once "$3" -- "${b_cmd[@]}"
    fi
  done
}

# paired_difference A_TIMES B_TIMES
#   No target, for the reader: the median of the pairs' differences, A − B (ms).
paired_difference() {
  local -n pa=$1 pb=$2
  paste -d ' ' <(printf '%s\n' "${pa[@]}") <(printf '%s\n' "${pb[@]}") |
    awk '{ print $1 - $2 }' | sort -g | awk '
      { t[NR] = $1 }
      END { printf "%.3f\n", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}

# summarize NAME TIMES...
#   Record the median, min, max and mean of TIMES (ms) as NAME's row, as
#   time_cmd does for hyperfine's, so compare and time_target work on it.
summarize() {
  local name=$1
  shift
  local median min max mean
  read -r median min max mean < <(printf '%s\n' "$@" | sort -g | awk '
      { t[NR] = $1; sum += $1 }
      END {
        median = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f %.3f\n", median, t[1], t[NR], sum / NR
      }')
  # shellcheck disable=SC2034
  MEDIAN[$name]=$median MIN[$name]=$min MAX[$name]=$max MEAN[$name]=$mean
  printf '  %-32s median %8.3f ms   min %8.3f ms   max %8.3f ms   mean %8.3f ms (%d runs)\n' \
    "$name" "$median" "$min" "$max" "$mean" "$#"
}

# crun_setup: the crun command line (our state directory, no cgroup
#   manager) in crun_cmd, and in in_ns the namespace crun's pairs run in.
#   crun 1.8 refuses a hybrid cgroup host whose v2 hierarchy has controllers,
#   even with no cgroup manager. Then both of each pair run in a mount
#   namespace of the script's where an empty tmpfs hides that hierarchy (the
#   chapters crun is compared with use no cgroup): the namespace is made once
#   for all the pairs, not per run.
crun_setup() {
  crun_cmd=(crun --root "$crun_state" --cgroup-manager=disabled)
  in_ns=()
  # (A cgroup file's size is 0 whatever it holds: read it.)
  if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    in_ns=(unshare -m --propagation private -- bash -c
      'mount -t tmpfs -o ro,size=0 stepbox-bench-hide /sys/fs/cgroup/unified && eval "$1"' bash)
    echo "  info  hybrid cgroups with v2 controllers: crun's pairs run where a tmpfs hides /sys/fs/cgroup/unified"
  fi
}

# alternate_in_ns A_TIMES A_CMD B_TIMES B_CMD [NAME...]
#   alternate, inside $in_ns when crun_setup made one. The pairs, the
#   functions and variables NAME... they use, and the arrays they fill
#   travel in and out as bash source; the inner bash stops at the first
#   command that fails, and so does the script.
alternate_in_ns() {
  local a_times=$1 a_cmd=$2 b_times=$3 b_cmd=$4 name src out
  shift 4
  src="set -euo pipefail
    $(declare -f alternate time_once)
    $(declare -p RUNS WARMUP "$a_cmd" "$b_cmd")"
  for name; do
    if declare -F "$name" >/dev/null; then
      src+=$'\n'$(declare -f "$name")
    else
      src+=$'\n'$(declare -p "$name")
    fi
  done
  src+="
    $a_times=() $b_times=()
    alternate $a_times $a_cmd $b_times $b_cmd </dev/null
    declare -p $a_times $b_times"
  out=$("${in_ns[@]:-eval}" "$src") ||
    { echo "bench.sh: a run of ${a_cmd} or ${b_cmd} failed" >&2; exit 1; }
  # declare -p's lines declare locals inside a function: make them global.
  eval "${out//declare -a /declare -ga }"
}

# busybox_layer: the busybox image's unpacked layer in $STEPBOX_ROOT, the one
#   that holds bin/busybox (a committed image's layers may be beside it).
busybox_layer() {
  local dir
  for dir in "$STEPBOX_ROOT"/layers/*/; do
    if [ -x "$dir/bin/busybox" ]; then
      echo "${dir%/}"
      return
    fi
  done
  echo "bench.sh: no busybox layer under $STEPBOX_ROOT/layers" >&2
  return 1
}

# make_small_files DIR
#   About 200 MiB in 30 000 files of 2 to 12 KiB (30 directories of ~1000),
#   like an image's /usr: half random bytes (as incompressible as compressed
#   data), half hex-dump text (compresses about 3:1).
make_small_files() {
  local dir=$1 d kib
  for ((d = 0; d < 30; d++)); do
    kib=$((2 + d % 11))
    mkdir -p "$dir/d$d"
    if ((d % 2)); then
      head -c $((kib * 1024 * 1000 * 16 / 49)) /dev/urandom | od -An -v -tx1
    else
      head -c $((kib * 1024 * 1000)) /dev/urandom
    fi | split -a 4 -d -b "${kib}K" - "$dir/d$d/f"
  done
}

# size_of PATH...: total size of PATH's files, e.g. "201M" (du -sh).
size_of() {
  du -csh "$@" | awk 'END { print $1 }'
}

# As an ordinary user the chapters add a user namespace of their own, and
# unshare needs one too (-r) to be allowed a mount namespace: compare like
# with like.
if [ "$(id -u)" = 0 ]; then
  unshare_m=(unshare -m)
else
  unshare_m=(unshare -r -m)
fi

echo
echo "stepbox benchmark: $(nproc) cores, Linux $(uname -r), $RUNS runs after $WARMUP warm-up runs"
echo "data root: $STEPBOX_ROOT, on $(findmnt -n -o FSTYPE -T "$STEPBOX_ROOT")"
# How long the data root's filesystem takes to make an inode. ext4 skips
# inodes deleted in the last minutes when it looks for a free one, so a
# directory whose block group was churned (a test suite, an earlier bench)
# makes each new file or directory cost up to a millisecond, and every row
# that creates some (a run makes about ten) slower. Compare runs whose
# figure here is alike.
probe=$STEPBOX_ROOT/inode-probe
mkdir "$probe"
start=$(date +%s%N)
for ((i = 0; i < 100; i++)); do : >"$probe/$i"; done
end=$(date +%s%N)
rm -r "$probe"
echo "  info  creating an empty file in the data root: $(awk -v ns=$((end - start)) \
  'BEGIN { printf "%.3f", ns / 100 / 1e6 }') ms (100 files)"

# ---------------------------------------------------------------------------
# Chapter rows are added below, one block per chapter. A block times the
# chapter and the tool it imitates, then states its targets:
#
#   time_cmd TOOL -- TOOL-COMMAND...         time_cmd CHAPTER -- "$bin/CHAPTER" -q ...
#   peak_rss CHAPTER -- "$bin/CHAPTER" -q ...
#   compare CHAPTER TOOL RATIO               rss_target CHAPTER KIB
# ---------------------------------------------------------------------------

# The chapters' own rows; BENCH_ONLY=interactive or minbase skips them.
if [ -z "$ONLY" ]; then
  echo
  echo "== ch1: a new mount namespace with a private /tmp =="
  time_cmd "${unshare_m[*]}" -- "${unshare_m[@]}" /bin/true
  time_cmd ch1-mount-ns -- "$bin/ch1-mount-ns" -q -- /bin/true
  peak_rss "${unshare_m[*]}" -- "${unshare_m[@]}" /bin/true
  peak_rss ch1-mount-ns -- "$bin/ch1-mount-ns" -q -- /bin/true
  compare ch1-mount-ns "${unshare_m[*]}" 1.25
  rss_target ch1-mount-ns 4096

  echo
  echo "== ch2: a busybox root, entered by pivot_root or chroot =="
  # Warm-up run, untimed: provisions the busybox image (apt-get download) and
  # unpacks it once into $STEPBOX_ROOT/rootfs/busybox, the root all four use.
  "$bin/ch2-rootfs" -q -- /bin/true
  rootfs=$STEPBOX_ROOT/rootfs/busybox
  time_cmd "ch2-rootfs pivot-root" -- "$bin/ch2-rootfs" -q --method pivot-root -- /bin/true
  time_cmd "ch2-rootfs chroot" -- "$bin/ch2-rootfs" -q --method chroot -- /bin/true
  time_cmd bwrap -- bwrap --unshare-pid --unshare-uts --unshare-ipc \
    --bind "$rootfs" / --proc /proc --dev /dev /bin/true
  time_cmd "${unshare_m[*]} chroot" -- "${unshare_m[@]}" chroot "$rootfs" /bin/true
  compare "ch2-rootfs pivot-root" bwrap 1.0
  peak_rss ch2-rootfs -- "$bin/ch2-rootfs" -q -- /bin/true
  rss_target ch2-rootfs 4096
  show_ratio "ch2-rootfs chroot" "${unshare_m[*]} chroot"
  show_ratio "ch2-rootfs chroot" bwrap
  show_ratio "ch2-rootfs pivot-root" "ch2-rootfs chroot"

  echo
  echo "== ch3: a read-only image layer under a per-run overlay =="
  "$bin/ch3-overlay" -q -- /bin/true   # warm-up: unpacks the busybox layer once
  time_cmd ch3-overlay -- "$bin/ch3-overlay" -q -- /bin/true
  # The target is checked pair by pair below, on disk and on tmpfs.
  show_ratio ch3-overlay "ch2-rootfs pivot-root"
  peak_rss "ch3-overlay, layer cached" -- "$bin/ch3-overlay" -q -- /bin/true
  rss_target "ch3-overlay, layer cached" 4096

  # First run of a big image: the busybox root plus ~200 MB of small files,
  # one plain tarball made by GNU tar. Each ch3 run gets a new, empty data
  # root, so it unpacks the whole layer; each tar run an empty directory.
  # What they unpacked is only removed on exit: on ext4 without a journal,
  # creating files soon after deleting many is much slower (the allocator
  # steps over inodes freed in the last minute), which would time the
  # previous run's `rm -rf` instead of the tool. For the same reason the two
  # take turns going first.
  echo "generating ~200 MB of small files and a rootfs tarball of them..." >&2
  make_small_files "$work/tree/big"
  bigroot=$work/bigroot.tar
  tar -cf "$bigroot" -C "$rootfs" . -C "$work/tree" big
  echo "  image: $bigroot, $(size_of "$bigroot"), $(tar -tf "$bigroot" | wc -l) entries"

  # first_run_ch3 I / first_run_tar I: unpack the big image, run I, timed.
  # sync first: the previous run's writes reach the disk before the clock starts.
  first_run_ch3() {
    sync
    time_once ch3_first -- "$bin/ch3-overlay" -q --root "$work/fresh-root-$1" \
      --image "$bigroot" -- /bin/true
  }
  first_run_tar() {
    mkdir "$work/extracted-$1"
    sync
    time_once tar_x -- tar -xf "$bigroot" -C "$work/extracted-$1"
  }
  ch3_first=() tar_x=()
  for ((i = 1; i <= BIG_RUNS; i++)); do
    echo "timing ch3-overlay first run and tar -xf, run $i of $BIG_RUNS..." >&2
    if ((i % 2)); then
      first_run_ch3 "$i"
      first_run_tar "$i"
    else
      first_run_tar "$i"
      first_run_ch3 "$i"
    fi
  done
  summarize "ch3-overlay first run" "${ch3_first[@]}"
  summarize "tar -xf" "${tar_x[@]}"
  echo "  note  ch3's figure includes its container run (a few ms: mounts, /bin/true)"
  compare "ch3-overlay first run" "tar -xf" 1.0

  echo
  echo "== ch4: volumes, bind-mounted host directories =="
  mkdir "$work/vol-a" "$work/vol-b" "$work/vol-c"
  sync   # the unpacks above leave ~2 GB for the disk: not while we time
  # The disk is busier after ch3's big unpacks than before them, and each run
  # of ch3 and ch4 creates and removes its write layer's directories: time
  # ch3 again here, so the ratio is the volumes' cost and not the disk's.
  time_cmd "ch3-overlay, again" -- "$bin/ch3-overlay" -q -- /bin/true
  time_cmd "ch4-volumes, 3 volumes" -- "$bin/ch4-volumes" -q \
    -v "$work/vol-a:/a" -v "$work/vol-b:/b" -v "$work/vol-c:/c" -- /bin/true
  # The target is checked pair by pair below, on disk and on tmpfs.
  show_ratio "ch4-volumes, 3 volumes" "ch3-overlay, again"
  show_ratio "ch4-volumes, 3 volumes" ch3-overlay
  peak_rss "ch4-volumes, 3 volumes" -- "$bin/ch4-volumes" -q \
    -v "$work/vol-a:/a" -v "$work/vol-b:/b" -v "$work/vol-c:/c" -- /bin/true
  rss_target "ch4-volumes, 3 volumes" 4096

  echo
  echo "== ch3 / ch2 and ch4 / ch3, pair by pair, on disk and on tmpfs =="
  # What ch3 adds to ch2 is mostly its write layer's directories, made and
  # removed in each run; their cost depends on the filesystem under the
  # data root (on ext4 mounted with discard, a freed block is a synchronous
  # discard). Each filesystem gets a data root of its own with a copy of
  # the busybox image, warmed up untimed (ch2's root and ch3's layer
  # unpacked once); the three volumes stay where they are.
  fs_places=()
  disk_dir=$(mktemp -d /var/tmp/stepbox-bench.XXXXXX)
  scratch_dirs+=("$disk_dir")
  disk_fs=$(findmnt -n -o FSTYPE -T "$disk_dir")
  case $disk_fs in
    tmpfs | ramfs) not_measured "ch3 / ch2 and ch4 / ch3 on disk: /var/tmp is on $disk_fs here" ;;
    *) fs_places+=("disk ($disk_fs):$disk_dir") ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    tmpfs_dir=$work/tmpfs
    mkdir "$tmpfs_dir"
    mount -t tmpfs -o mode=0700,size=256m stepbox-bench-tmpfs "$tmpfs_dir"
    fs_places+=("tmpfs:$tmpfs_dir")
  elif [ "$(findmnt -n -o FSTYPE -T /dev/shm)" = tmpfs ]; then
    # Not root: no mount of our own, but /dev/shm is a tmpfs.
    shm_dir=$(mktemp -d /dev/shm/stepbox-bench.XXXXXX)
    scratch_dirs+=("$shm_dir")
    fs_places+=("tmpfs (/dev/shm):$shm_dir")
  else
    not_measured "ch3 / ch2 and ch4 / ch3 on tmpfs: not root, and /dev/shm is no tmpfs"
  fi
  for place in "${fs_places[@]}"; do
    fs=${place%%:*} root=${place#*:}/root
    mkdir -m 0700 "$root"
    cp -a "$STEPBOX_ROOT/images" "$root/"
    "$bin/ch2-rootfs" -q --root "$root" -- /bin/true
    "$bin/ch3-overlay" -q --root "$root" -- /bin/true
    # shellcheck disable=SC2034  # read by name, in alternate
    ch2_on=("$bin/ch2-rootfs" -q --root "$root" --method pivot-root -- /bin/true)
    # shellcheck disable=SC2034  # read by name, in alternate
    ch3_on=("$bin/ch3-overlay" -q --root "$root" -- /bin/true)
    # shellcheck disable=SC2034  # read by name, in alternate
    ch4_on=("$bin/ch4-volumes" -q --root "$root" \
      -v "$work/vol-a:/a" -v "$work/vol-b:/b" -v "$work/vol-c:/c" -- /bin/true)
    sync
    echo "timing ch3-overlay and ch2-rootfs on $fs, $RUNS pairs..." >&2
    ch3_times=() ch2_times=()
    alternate ch3_times ch3_on ch2_times ch2_on </dev/null
    summarize "ch3-overlay, $fs" "${ch3_times[@]}"
    summarize "ch2-rootfs pivot-root, $fs" "${ch2_times[@]}"
    compare "ch3-overlay, $fs" "ch2-rootfs pivot-root, $fs" 1.3
    echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
      ch3_times ch2_times) ms"
    echo "timing ch4-volumes (3 volumes) and ch3-overlay on $fs, $RUNS pairs..." >&2
    ch4_times=() ch3_times=()
    alternate ch4_times ch4_on ch3_times ch3_on </dev/null
    summarize "ch4-volumes, 3 volumes, $fs" "${ch4_times[@]}"
    summarize "ch3-overlay, $fs, against ch4" "${ch3_times[@]}"
    compare "ch4-volumes, 3 volumes, $fs" "ch3-overlay, $fs, against ch4" 1.1
    echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
      ch4_times ch3_times) ms"
  done
  if [ -n "$tmpfs_dir" ]; then
    umount "$tmpfs_dir"
    tmpfs_dir=''
  fi

  echo
  echo "== ch5: named containers under a monitor; commit =="
  ch5=("$bin/ch5-commit" -q)
  "${ch5[@]}" run --rm busybox /bin/true   # warm-up
  containers=50

  # running PID: true while PID is a live process (a zombie, dead and waiting
  # for its parent to collect it, does not count).
  running() {
    local state
    [ -r "/proc/$1/stat" ] && read -r _ _ state _ <"/proc/$1/stat" && [ "$state" != Z ]
  }

  # monitor_rss NAME: the resident memory (KiB) of container NAME's monitor,
  # whose pid its state.json records.
  monitor_rss() {
    local pid
    pid=$(jq -r .monitor_pid "$STEPBOX_ROOT/containers/$1/state.json")
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status"
  }

  echo "starting $containers detached containers one after another..." >&2
  sync
  starts=() names=()
  for ((i = 1; i <= containers; i++)); do
    names+=("b$i")
    time_once starts -- "${ch5[@]}" run -d --name "b$i" busybox sleep 600
  done
  first="run -d, containers 1-10" last="run -d, containers $((containers - 9))-$containers"
  summarize "$first" "${starts[@]:0:10}"
  summarize "$last" "${starts[@]: -10}"
  summarize "run -d, all $containers" "${starts[@]}"
  compare "$last" "$first" 1.5
  echo "  info  $last / $first mean = $(awk -v a="${MEAN[$last]}" -v b="${MEAN[$first]}" \
    'BEGIN { printf "%.2f", a / b }')x"

  time_cmd "ch5-commit ps, $containers running" -- "${ch5[@]}" ps
  time_target "ch5-commit ps, $containers running" 20

  rss=()
  for name in "${names[@]}"; do
    rss+=("$(monitor_rss "$name")")
  done
  read -r rss_max rss_mean < <(printf '%s\n' "${rss[@]}" | awk '
      $1 > max { max = $1 } { sum += $1 } END { printf "%d %.0f\n", max, sum / NR }')
  printf '  %-32s max %6d KiB = %5.2f MiB   mean %6d KiB (VmRSS of %d monitors)\n' \
    "monitor RSS" "$rss_max" "$(awk -v k="$rss_max" 'BEGIN { print k / 1024 }')" \
    "$rss_mean" "${#rss[@]}"
  verdict "$((rss_max <= 1536))" "largest monitor RSS = $rss_max KiB (target ≤ 1536 KiB each)"
  peak_rss "ch5-commit run --rm" -- "${ch5[@]}" run --rm busybox /bin/true
  rss_target "ch5-commit run --rm" 4096

  monitors=()
  for name in "${names[@]}"; do
    monitors+=("$(jq -r .monitor_pid "$STEPBOX_ROOT/containers/$name/state.json")")
  done
  rm_all=()
  time_once rm_all -- "${ch5[@]}" rm -f "${names[@]}"
  printf '  %-32s total %8.3f ms = %.3f ms per container\n' \
    "rm -f of $containers" "${rm_all[0]}" "$(awk -v t="${rm_all[0]}" -v n="$containers" 'BEGIN { print t / n }')"
  # Each monitor records its container's exit, then ends: give them 5 s.
  for ((tenths = 0; tenths < 50; tenths++)); do
    left=0
    for pid in "${monitors[@]}"; do
      if running "$pid"; then left=$((left + 1)); fi
    done
    if ((left == 0)); then break; fi
    sleep 0.1
  done
  echo "  info  monitors still running $((tenths / 10)).$((tenths % 10)) s after rm -f: $left"

  # Commit: ~200 MB of small files written into a running container. Writing
  # them from inside (exec ... sh -c) would be slow, so we put them straight
  # into its upper directory: exactly what the container's writes would leave.
  echo "putting ~200 MB of small files into container bigfiles..." >&2
  "${ch5[@]}" run -d --name bigfiles busybox sleep 600 >/dev/null
  upper=$STEPBOX_ROOT/containers/bigfiles/upper
  layer=$(jq -r '.layers[0]' "$STEPBOX_ROOT/containers/bigfiles/state.json")
  cp -a "$work/tree/big" "$upper/"
  echo "  container files: busybox layer $(size_of "$layer") + big/ $(size_of "$upper/big")"
  commits=() tar_czf=()
  for ((i = 1; i <= BIG_RUNS; i++)); do
    echo "timing ch5-commit commit and tar -czf, run $i of $BIG_RUNS..." >&2
    sync
    time_once commits -- "${ch5[@]}" commit --flatten bigfiles "img$i"
    sync
    # The same files as the container's merged view: the layer, then big/.
    time_once tar_czf -- tar -czf "$work/tar$i.tgz" -C "$layer" . -C "$upper" big
  done
  # The flattened image's one layer, from the store's files.
  manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "img1:latest") | .digest' \
    "$STEPBOX_ROOT/images/index.json")
  flat=$(jq -r '.layers[0].digest' "$STEPBOX_ROOT/blobs/sha256/${manifest#sha256:}")
  flat_blob=$STEPBOX_ROOT/blobs/sha256/${flat#sha256:}
  echo "  output: commit --flatten $(size_of "$flat_blob"), tar -czf $(size_of "$work/tar1.tgz")"
  summarize "ch5-commit commit --flatten" "${commits[@]}"
  summarize "tar -czf" "${tar_czf[@]}"
  compare "ch5-commit commit --flatten" "tar -czf" 0.33
  flat_bytes=$(stat -c %s "$flat_blob") tgz_bytes=$(stat -c %s "$work/tar1.tgz")
  verdict "$((flat_bytes <= tgz_bytes))" \
    "commit --flatten's layer = $flat_bytes bytes, tar -czf's file = $tgz_bytes bytes (target: not larger, $(awk \
      -v a="$flat_bytes" -v b="$tgz_bytes" 'BEGIN { printf "%.3f", a / b }')x)"
  "${ch5[@]}" rm -f bigfiles >/dev/null
fi

# ---------------------------------------------------------------------------
# Commit as a layer (issue 12): a container that wrote 1 MB (incompressible)
# is committed again and again; each commit writes the upper directory as
# one layer, plus a config and a manifest, into the store. What it wrote is
# the store's growth (du of blobs/ before and after). Then the first run of
# one committed image: its base layer is cached, so only the new layer is
# unpacked (the narration says each layer it unpacks).

if [ -z "$ONLY" ] || [ "$ONLY" = commit ]; then
  echo
  echo "== commit of a 1 MB change, as a layer =="
  ch5=("$bin/ch5-commit" -q)
  "${ch5[@]}" run -d --name onemb busybox sh -c 'head -c 1048576 /dev/urandom > /root/one-mb; sleep 600' >/dev/null
  for ((tenths = 0; tenths < 50; tenths++)); do
    [ -s "$STEPBOX_ROOT/containers/onemb/upper/root/one-mb" ] &&
      [ "$(stat -c %s "$STEPBOX_ROOT/containers/onemb/upper/root/one-mb")" = 1048576 ] && break
    sleep 0.1
  done
  layer_commits=() written=()
  commit_runs=$((RUNS < 50 ? RUNS : 50))
  for ((i = 0; i < WARMUP && i < 5; i++)); do
    "${ch5[@]}" commit onemb "warm:$i" >/dev/null
  done
  for ((i = 1; i <= commit_runs; i++)); do
    before=$(du -sb "$STEPBOX_ROOT/blobs" | cut -f 1)
    time_once layer_commits -- "${ch5[@]}" commit onemb "onemb:$i"
    after=$(du -sb "$STEPBOX_ROOT/blobs" | cut -f 1)
    written+=("$((after - before))")
  done
  summarize "ch5-commit commit, 1 MB change" "${layer_commits[@]}"
  time_target "ch5-commit commit, 1 MB change" 100
  most=$(printf '%s\n' "${written[@]}" | sort -n | tail -n 1)
  verdict "$((most <= 2 * 1048576))" \
    "largest store growth of one commit = $most bytes (target ≤ $((2 * 1048576)) bytes)"
  layers_before=$(find "$STEPBOX_ROOT/layers" -mindepth 1 -maxdepth 1 | wc -l)
  unpacked=$("$bin/ch5-commit" run --rm onemb:1 /bin/true 2>&1 | grep -c 'unpacked .* into layer' || true)
  layers_after=$(find "$STEPBOX_ROOT/layers" -mindepth 1 -maxdepth 1 | wc -l)
  verdict "$((unpacked == 1 && layers_after == layers_before + 1))" \
    "first run of the committed image: $unpacked layer unpacked, $((layers_after - layers_before)) new layer directory (target: 1 and 1, the base reused)"
  "${ch5[@]}" rm -f onemb >/dev/null
fi


# ---------------------------------------------------------------------------
# ch6 (issue 13): what the restrictions cost. ch6's run --rm against ch5's,
# and against crun running a bundle over the same busybox root (the layer
# ch5 and ch6 unpacked, which their overlays read) with the same
# restrictions, pair by pair. The bundle's config starts from `crun spec`:
# the namespaces become ch6's (no network, no user namespace as root), /sys
# and its cgroup mount go (ch6 mounts neither), and the rest is set as ch6
# sets it: Docker's 14 capabilities in every set, no_new_privs, Docker's
# masked and read-only paths, and Docker's default seccomp profile,
# converted from ch6's own copy (common/src/security/seccomp-default.json)
# as Docker converts it: the rules whose includes/excludes match the 14
# capabilities, this architecture and this kernel, for the native
# architecture only (as ch6's filter allows only it).

if [ -z "$ONLY" ] || [ "$ONLY" = ch6 ]; then
  echo
  echo "== ch6: capabilities, no_new_privs, masked paths, seccomp =="
  ch5=("$bin/ch5-commit" -q)
  ch6=("$bin/ch6-security" -q)
  # Untimed: provision busybox and unpack its layer; both chapters work.
  "${ch5[@]}" run --rm busybox /bin/true </dev/null
  "${ch6[@]}" run --rm busybox /bin/true </dev/null
  layer=$(busybox_layer)
  crun_root=$layer   # the bundle's root, for cleanup
  bundle=$work/crun-bundle
  mkdir -p "$bundle"
  case $(uname -m) in
    x86_64) go_arch=amd64 scmp_arch=SCMP_ARCH_X86_64 ;;
    aarch64) go_arch=arm64 scmp_arch=SCMP_ARCH_AARCH64 ;;
    *) echo "bench.sh: no seccomp architecture for $(uname -m)" >&2; exit 1 ;;
  esac
  kernel=$(uname -r | sed -E 's/^([0-9]+)\.([0-9]+).*/[\1,\2]/')
  docker_caps='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]'
  jq --argjson caps "$docker_caps" --arg arch "$go_arch" --arg scmp "$scmp_arch" \
    --argjson kernel "$kernel" '
    def held: . as $c | $caps | index($c) != null;
    {
      defaultAction,
      defaultErrnoRet: (.defaultErrnoRet // 1),
      architectures: [$scmp],
      syscalls: [
        .syscalls[]
        | select(all((.includes.caps // [])[]; held))
        | select((.includes.arches // []) as $a | ($a | length) == 0 or ($a | index($arch)) != null)
        | select((.includes.minKernel // "0.0") | split(".") | map(tonumber) <= $kernel)
        | select(any((.excludes.caps // [])[]; held) | not)
        | select((.excludes.arches // []) | index($arch) == null)
        | {names, action} + (if .errnoRet then {errnoRet} else {} end)
          + (if .args then {args: [.args[] | {index, value, op} + (if .valueTwo then {valueTwo} else {} end)]} else {} end)
      ]
    }' "$repo/common/src/security/seccomp-default.json" >"$work/seccomp-oci.json"
  (cd "$bundle" && crun spec)
  jq --arg root "$layer" --argjson caps "$docker_caps" \
    --slurpfile seccomp "$work/seccomp-oci.json" '
    .root = {path: $root, readonly: false}
    | .process.terminal = false
    | .process.args = ["/bin/true"]
    | .process.noNewPrivileges = true
    | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps, inheritable: $caps, ambient: []}
    | .process.rlimits = []
    | .hostname = "stepbox-bench"
    | .mounts |= map(select(.destination != "/sys" and .destination != "/sys/fs/cgroup"))
    | .linux.namespaces = [{type: "pid"}, {type: "mount"}, {type: "uts"}, {type: "ipc"}]
    | .linux.maskedPaths = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
        "/proc/keys", "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
        "/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
    | .linux.readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    | .linux.seccomp = $seccomp[0]
    | del(.linux.resources)' "$bundle/config.json" >"$bundle/config.json.new"
  mv "$bundle/config.json.new" "$bundle/config.json"
  echo "  crun bundle: $bundle over $layer; seccomp: $(jq '.linux.seccomp.syscalls | length' "$bundle/config.json") rules"
  crun_setup
  # shellcheck disable=SC2034  # read by name, in alternate
  crun_run=("${crun_cmd[@]}" run --bundle "$bundle" stepbox-bench)
  # shellcheck disable=SC2034  # read by name, in alternate
  ch6_rm=("${ch6[@]}" run --rm busybox /bin/true)
  # shellcheck disable=SC2034  # read by name, in alternate
  ch5_rm=("${ch5[@]}" run --rm busybox /bin/true)
  check_crun="${crun_run[*]@Q} </dev/null"
  "${in_ns[@]:-eval}" "$check_crun" ||
    { echo "bench.sh: crun run of the bundle failed: see $bundle/config.json" >&2; exit 1; }
  echo "timing ch6-security and ch5-commit run --rm, $RUNS pairs..." >&2
  ch6_times=() ch5_times=()
  alternate ch6_times ch6_rm ch5_times ch5_rm </dev/null
  summarize "ch6 run --rm" "${ch6_times[@]}"
  summarize "ch5 run --rm" "${ch5_times[@]}"
  compare "ch6 run --rm" "ch5 run --rm" 1.15
  echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
    ch6_times ch5_times) ms"
  # What the seccomp filter costs a run: its parse, compile and install,
  # and every later system call that passes it (an info row).
  # shellcheck disable=SC2034  # read by name, in alternate
  ch6_unconfined=("${ch6[@]}" run --rm --security-opt seccomp=unconfined busybox /bin/true)
  echo "timing ch6-security run --rm with and without seccomp, $RUNS pairs..." >&2
  # shellcheck disable=SC2034  # filled by name, in alternate
  ch6_times=() unconfined_times=()
  alternate ch6_times ch6_rm unconfined_times ch6_unconfined </dev/null
  echo "  info  the seccomp filter's cost (ch6 run --rm against seccomp=unconfined, median of the $RUNS pairs' differences) = $(paired_difference \
    ch6_times unconfined_times) ms"
  echo "timing ch6-security run --rm and crun run, $RUNS pairs..." >&2
  ch6_times=() crun_times=()
  alternate_in_ns ch6_times ch6_rm crun_times crun_run
  summarize "ch6 run --rm, against crun" "${ch6_times[@]}"
  summarize "crun run" "${crun_times[@]}"
  compare "ch6 run --rm, against crun" "crun run" 0.8
  echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
    ch6_times crun_times) ms"
  peak_rss "ch6-security run --rm" -- "${ch6_rm[@]}"
  rss_target "ch6-security run --rm" 4096
fi

# BENCH_ONLY=minbase, commit, ch6, ch7, crun and lowerbound skip the interactive rows.
if [ -z "$ONLY" ] || [ "$ONLY" = interactive ]; then
echo
echo "== from ch2 on: an interactive start (stdin a terminal) =="
# Interactive, a chapter gives the container a pty of its own devpts: the
# child makes it and sends the master back, the parent puts the caller's
# terminal in raw mode and relays (common/src/terminal.rs). Otherwise it only
# calls setsid(). Both kinds of start go through the same small pty wrapper,
# so that its own cost cancels out: `ptyrun -i CMD` runs CMD with the
# wrapper's pty as stdin, stdout and stderr, `ptyrun -n CMD` the same with
# stdin /dev/null. The pairs are timed with the shell's clock (time_once): a
# figure includes bash's fork and exec, the same for both of a pair.
cat >"$work/ptyrun.c" <<'EOF'
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "-i") && strcmp(argv[1], "-n"))) {
    fputs("usage: ptyrun -i|-n CMD...\n", stderr);
    return 125;
  }
  int interactive = !strcmp(argv[1], "-i");
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, NULL);
  if (pid < 0) {
    perror("ptyrun: forkpty");
    return 125;
  }
  if (pid == 0) {
    /* Both open a file onto stdin: the pty (our controlling terminal) or
       /dev/null. */
    int fd = open(interactive ? "/dev/tty" : "/dev/null", O_RDONLY);
    if (fd < 0 || dup2(fd, 0) < 0) {
      perror("ptyrun: stdin");
      _exit(126);
    }
    close(fd);
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    _exit(127);
  }
  /* Pass on what CMD writes until its last hold on the pty is closed (EIO). */
  char buf[4096];
  ssize_t n;
  while ((n = read(master, buf, sizeof buf)) > 0)
    if (write(1, buf, n) < 0)
      break;
  int status;
  if (waitpid(pid, &status, 0) < 0) {
    perror("ptyrun: waitpid");
    return 125;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
EOF
cc -O2 -Wall -o "$work/ptyrun" "$work/ptyrun.c" -lutil
ptyrun=$work/ptyrun

# Untimed: provision and unpack busybox for ch2 and ch5 (when the rows above
# were skipped), and check that both kinds of start work.
"$bin/ch2-rootfs" -q -- /bin/true </dev/null
ch5=("$bin/ch5-commit" -q)
"${ch5[@]}" run --rm busybox /bin/true </dev/null
"$ptyrun" -i "$bin/ch2-rootfs" -q -- /bin/sh -c '[ -t 0 ]' >/dev/null ||
  { echo "bench.sh: ptyrun -i did not give ch2-rootfs a terminal as stdin" >&2; exit 1; }

# shellcheck disable=SC2034  # read by name, in alternate
ch2_pty=("$ptyrun" -i "$bin/ch2-rootfs" -q -- /bin/true)
# shellcheck disable=SC2034  # read by name, in alternate
ch2_null=("$ptyrun" -n "$bin/ch2-rootfs" -q -- /bin/true)
echo "timing ch2-rootfs, stdin a pty and stdin /dev/null, $RUNS pairs..." >&2
ch2_pty_times=() ch2_null_times=()
alternate ch2_pty_times ch2_pty ch2_null_times ch2_null </dev/null
summarize "ch2-rootfs, stdin a pty" "${ch2_pty_times[@]}"
summarize "ch2-rootfs, stdin /dev/null" "${ch2_null_times[@]}"
difference "ch2-rootfs, stdin a pty" "ch2-rootfs, stdin /dev/null" 0.3
echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
  ch2_pty_times ch2_null_times) ms"

# shellcheck disable=SC2034  # read by name, in alternate
ch5_pty=("$ptyrun" -i "${ch5[@]}" run --rm busybox /bin/true)
# shellcheck disable=SC2034  # read by name, in alternate
ch5_null=("$ptyrun" -n "${ch5[@]}" run --rm busybox /bin/true)
echo "timing ch5-commit run --rm, stdin a pty and stdin /dev/null, $RUNS pairs..." >&2
ch5_pty_times=() ch5_null_times=()
alternate ch5_pty_times ch5_pty ch5_null_times ch5_null </dev/null
summarize "ch5 run --rm, stdin a pty" "${ch5_pty_times[@]}"
summarize "ch5 run --rm, stdin /dev/null" "${ch5_null_times[@]}"
difference "ch5 run --rm, stdin a pty" "ch5 run --rm, stdin /dev/null" 0.3
echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
  ch5_pty_times ch5_null_times) ms"

# Non-interactive starts are unchanged: this working tree's ch2-rootfs against
# the same chapter built from the parent of the commit that added
# common/src/terminal.rs, both with stdin /dev/null and no wrapper, the same
# flags and data root. The old revision is checked out with git worktree and
# built with a target directory of its own, both under $work.
unchanged="ch2-rootfs, stdin /dev/null ≤ 1.05 × before the terminal work"
reason='' first='' old_rev=''
if ! git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  reason="$repo is not a git checkout"
elif ! first=$(git -C "$repo" log --diff-filter=A --format=%H -- common/src/terminal.rs |
  tail -n 1) || [ -z "$first" ]; then
  reason="no commit of this checkout's history adds common/src/terminal.rs"
elif ! old_rev=$(git -C "$repo" rev-parse --verify --quiet "$first^"); then
  reason="the parent of $first, which adds common/src/terminal.rs, is not in this checkout (a shallow clone?)"
fi
if [ -z "$reason" ]; then
  old="ch2-rootfs at $(git -C "$repo" rev-parse --short "$old_rev")"
  old_bin=$work/old-target/release/ch2-rootfs
  log=$results/old-build.log
  echo "building $old (the parent of $(git -C "$repo" rev-parse --short "$first")) in a git worktree..." >&2
  old_src=$work/old-src   # set first: cleanup removes even a half-made worktree
  if ! git -C "$repo" worktree add --quiet --detach "$old_src" "$old_rev" >"$log" 2>&1; then
    reason="git worktree add $old_rev failed: $(tail -n 1 "$log")"
  elif ! (cd "$old_src" && CARGO_TARGET_DIR=$work/old-target \
    cargo build --release --quiet --bin ch2-rootfs) >>"$log" 2>&1; then
    reason="cargo build --release --bin ch2-rootfs of $old_rev failed:"$'\n'"$(tail -n 5 "$log")"
  elif ! "$old_bin" -q -- /bin/true </dev/null >>"$log" 2>&1; then
    reason="$old does not run \`-q -- /bin/true\`: $(tail -n 1 "$log")"
  fi
fi
if [ -n "$reason" ]; then
  not_measured "$unchanged: $reason"
else
  now="ch2-rootfs, this tree"
  # shellcheck disable=SC2034  # read by name, in alternate
  ch2_now=("$bin/ch2-rootfs" -q -- /bin/true)
  # shellcheck disable=SC2034  # read by name, in alternate
  ch2_old=("$old_bin" -q -- /bin/true)
  echo "timing $now and $old, both stdin /dev/null, $RUNS pairs..." >&2
  ch2_now_times=() ch2_old_times=()
  alternate ch2_now_times ch2_now ch2_old_times ch2_old </dev/null
  summarize "$now" "${ch2_now_times[@]}"
  summarize "$old" "${ch2_old_times[@]}"
  compare "$now" "$old" 1.05
  echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
    ch2_now_times ch2_old_times) ms"
fi
fi   # BENCH_ONLY=minbase, commit, ch6, ch7, crun and lowerbound skip the interactive rows

# ---------------------------------------------------------------------------
# A distro root filesystem (issue 12): the first run of ch3 on a Debian
# minbase tarball made by mmdebstrap, against `tar -xf` of the same file into
# the same filesystem, pair by pair, on disk (/var/tmp) and on tmpfs
# (/dev/shm). Each ch3 run gets an empty data root, so it unpacks the whole
# layer (hashing it as it goes) and then runs /bin/true; each tar run an
# empty directory. The tarball is made once (two minutes) and kept in the
# target directory.

if [ -z "$ONLY" ] || [ "$ONLY" = minbase ]; then
  echo
  echo "== first unpack of a Debian minbase root filesystem =="
  minbase="${CARGO_TARGET_DIR:-$repo/target}/bench/minbase.tar"
  if [ ! -s "$minbase" ]; then
    echo "making $minbase with mmdebstrap (once)..." >&2
    mkdir -p "$(dirname "$minbase")"
    mmdebstrap --quiet --variant=minbase --format=tar bookworm "$minbase.partial"
    mv "$minbase.partial" "$minbase"
  fi
  echo "  image: $minbase, $(size_of "$minbase"), $(tar -tf "$minbase" | wc -l) entries"
  for place in /var/tmp /dev/shm; do
    dir=$(mktemp -d "$place/stepbox-bench.XXXXXX")
    scratch_dirs+=("$dir")
    label=$([ "$place" = /dev/shm ] && echo tmpfs || echo disk)
    minbase_ch3=() minbase_tar=()
    for ((i = 1; i <= BIG_RUNS; i++)); do
      echo "timing the minbase first unpack on $label, run $i of $BIG_RUNS..." >&2
      mkdir "$dir/tar-$i"
      for turn in $(if ((i % 2)); then echo ch3 tar; else echo tar ch3; fi); do
        sync
        if [ "$turn" = ch3 ]; then
          time_once minbase_ch3 -- "$bin/ch3-overlay" -q --root "$dir/root-$i" \
            --image "$minbase" -- /bin/true
        else
          time_once minbase_tar -- tar -xf "$minbase" -C "$dir/tar-$i"
        fi
      done
      # On tmpfs what a run writes is memory: memory this VM has not touched
      # before costs its host's page faults (tar -xf: 300 ms into memory
      # freed by the pair before, 800 ms into fresh memory). Each pair's
      # output is removed (untimed), so that every run writes into memory
      # the guest holds. On disk it stays: see the first-run rows above.
      if [ "$label" = tmpfs ]; then
        rm -rf "$dir/root-$i" "$dir/tar-$i"
      fi
    done
    summarize "ch3 first run, minbase, $label" "${minbase_ch3[@]}"
    summarize "tar -xf, minbase, $label" "${minbase_tar[@]}"
    compare "ch3 first run, minbase, $label" "tar -xf, minbase, $label" 1.0
    rm -rf "$dir"
  done
fi

# ---------------------------------------------------------------------------
# Chapter 7 (issue 14): what three limits cost a run. ch7-cgroups run --rm
# with -m, --cpus and --pids-limit (statfs, a cgroup made in each v1 tree
# or the one v2 tree, four writes, the child in it (born there on v2, its
# thread moving itself through `tasks` on v1), a cgroup namespace, a
# read-only /sys, then kill and rmdir at exit) against ch6-security run
# --rm of the same command, pair by pair.

if [ -z "$ONLY" ] || [ "$ONLY" = ch7 ]; then
  echo
  echo "== ch7-cgroups: run --rm with three limits =="
  ch6_plain=("$bin/ch6-security" -q run --rm busybox /bin/true)
  ch7_limited=("$bin/ch7-cgroups" -q run --rm -m 64m --cpus 1 --pids-limit 64 busybox /bin/true)
  # The first run provisions busybox; a caller who may not set limits here
  # (rootless on a v1 host, or without a delegated cgroup) cannot be timed.
  "${ch6_plain[@]}" >/dev/null
  if ! "${ch7_limited[@]}" >/dev/null 2>"$results/ch7-probe.err"; then
    not_measured "ch7 run --rm with three limits: $(tail -n 1 "$results/ch7-probe.err")"
  else
    ch7_times=() ch6_times=()
    echo "timing ch7 run --rm with three limits against ch6 run --rm, $RUNS pairs..." >&2
    alternate ch7_times ch7_limited ch6_times ch6_plain </dev/null
    summarize "ch7 run --rm, three limits" "${ch7_times[@]}"
    summarize "ch6 run --rm" "${ch6_times[@]}"
    echo "  info  ch7 - ch6, median of the pairs' differences = $(paired_difference ch7_times ch6_times) ms"
    compare "ch7 run --rm, three limits" "ch6 run --rm" 1.2
    peak_rss "ch7-cgroups run --rm, three limits" -- "${ch7_limited[@]}"
    rss_target "ch7-cgroups run --rm, three limits" 4096
    # The kernel's share, for the reader (no target): a shell that moves
    # itself into a new cgroup, against one that does not, each after 50 ms
    # without a move (as between two runs). The first move of a process
    # (cgroup.procs) after a pause waits for an RCU grace period
    # (cgroup_threadgroup_rwsem); moves right after it do not, nor does a
    # thread moving itself (`0` into `tasks`, v1), which is how ch7's
    # child moves on v1. On v2 ch7 moves nothing (clone3 starts the child
    # inside), and the first pair shows what a move would cost.
    floor_tree=/sys/fs/cgroup/pids
    [ -d "$floor_tree" ] || floor_tree=/sys/fs/cgroup
    if mkdir "$floor_tree/stepbox-bench-floor" 2>/dev/null; then
      floor_dir=$floor_tree/stepbox-bench-floor
      # shellcheck disable=SC2034  # read by name, in alternate
      moved=(sh -c "sleep 0.05; echo \$\$ > $floor_dir/cgroup.procs")
      # shellcheck disable=SC2034  # read by name, in alternate
      unmoved=(sh -c 'sleep 0.05')
      # shellcheck disable=SC2034  # filled by name, in alternate
      moved_times=() unmoved_times=()
      alternate moved_times moved unmoved_times unmoved </dev/null
      echo "  info  the kernel's part: sh moving itself into a cgroup of $floor_tree after a pause - sh not moving, median of the pairs' differences = $(paired_difference moved_times unmoved_times) ms"
      if [ -e "$floor_dir/tasks" ]; then
        # shellcheck disable=SC2034  # read by name, in alternate
        thread_moved=(sh -c "sleep 0.05; echo 0 > $floor_dir/tasks")
        # shellcheck disable=SC2034  # filled by name, in alternate
        thread_times=() unmoved_times=()
        alternate thread_times thread_moved unmoved_times unmoved </dev/null
        echo "  info  the kernel's part, as ch7 moves on v1: sh's thread moving itself (0 into tasks) after a pause - sh not moving, median of the pairs' differences = $(paired_difference thread_times unmoved_times) ms"
      fi
      rmdir "$floor_dir" && floor_dir=''
    else
      echo "  info  the kernel's part: not measured: no cgroup can be made in $floor_tree"
    fi
  fi
fi

# ---------------------------------------------------------------------------
# Lower bounds (issue 15): each chapter against scripts/lower-bound.c, one C
# program that makes the same run with the chapter's system calls (its
# namespaces, mounts, directories, state files, locks, capabilities,
# seccomp filters and cgroups), less the Rust runtime's, the narration's
# and the chapter's own checks, pair by pair, in the same data root over
# the same layer. What a chapter takes beyond it is what its Rust code and
# narration cost, apart from the kernel. ch6's and ch7's lower bounds load
# the seccomp filters their chapter loads, copied out of a running
# container of that chapter (lower-bound seccomp-dump). Before the crun
# rows, whose churn slows every row after them.

if [ -z "$ONLY" ] || [ "$ONLY" = lowerbound ]; then
  echo
  echo "== each chapter against its lower bound in C =="
  if [ "$(id -u)" != 0 ]; then
    not_measured "the lower bounds: as an ordinary user the chapters add a user namespace and its id maps, which scripts/lower-bound.c does not make"
  else
    lb=$work/lower-bound
    cc -O2 -Wall -o "$lb" "$repo/scripts/lower-bound.c"
    # Untimed: provision busybox, unpack ch2's root and ch3's layer.
    "$bin/ch2-rootfs" -q -- /bin/true </dev/null
    "$bin/ch3-overlay" -q -- /bin/true </dev/null
    rootfs=$STEPBOX_ROOT/rootfs/busybox
    mkdir -p "$work/vol-a" "$work/vol-b" "$work/vol-c"
    volumes=(-v "$work/vol-a:/a" -v "$work/vol-b:/b" -v "$work/vol-c:/c")
    limits=(-m 64m --cpus 1 --pids-limit 64)
    # The same limits as the lower bound takes them: bytes, the CFS quota
    # per 100 ms period, pids.
    lb_limits=(-m 67108864 -c 100000 -p 64)
    lb_cgroup=stepbox-bench-lowerbound   # its cgroups' parent, for cleanup

    # container_filters CHAPTER FILE [FLAG...]: a detached busybox sleep of
    #   CHAPTER (run with FLAGs), its seccomp filters copied into FILE and
    #   the layer its overlay reads into $lb_layer; then it is removed.
    container_filters() {
      local chapter=$1 file=$2 name=stepbox-bench-filters pid sizes
      shift 2
      "$bin/$chapter" -q run -d --name "$name" "$@" busybox sleep 600 >/dev/null
      pid=$(jq -r .pid "$STEPBOX_ROOT/containers/$name/state.json")
      lb_layer=$(jq -r '.layers[0]' "$STEPBOX_ROOT/containers/$name/state.json")
      sizes=$("$lb" seccomp-dump "$pid" "$file")
      "$bin/$chapter" -q rm -f "$name" >/dev/null
      echo "  info  $chapter's seccomp filters, copied from its container: ${sizes//$'\n'/ and } instructions"
    }
    container_filters ch6-security "$work/ch6.filters"

    # lower_bound_row LABEL CHAPTER_CMD LB_CMD: the chapter's run (the
    #   array named CHAPTER_CMD) and its lower bound's (LB_CMD) in turns;
    #   target: the chapter ≤ 1.2 × its lower bound.
    lower_bound_row() {
      local label=$1
      echo "timing $label and its lower bound, $RUNS pairs..." >&2
      chapter_times=() lb_times=()
      alternate chapter_times "$2" lb_times "$3" </dev/null
      summarize "$label, against C" "${chapter_times[@]}"
      summarize "lower-bound ${label%%-*}" "${lb_times[@]}"
      compare "$label, against C" "lower-bound ${label%%-*}" 1.2
      echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
        chapter_times lb_times) ms"
    }

    # shellcheck disable=SC2034  # the arrays are read by name, in alternate
    {
      ch1_run=("$bin/ch1-mount-ns" -q -- /bin/true)
      ch1_lb=("$lb" ch1 -- /bin/true)
      ch2_run=("$bin/ch2-rootfs" -q --method pivot-root -- /bin/true)
      ch2_lb=("$lb" ch2 -R "$rootfs" -- /bin/true)
      ch3_run=("$bin/ch3-overlay" -q -- /bin/true)
      ch3_lb=("$lb" ch3 -r "$STEPBOX_ROOT" -l "$lb_layer" -- /bin/true)
      ch4_run=("$bin/ch4-volumes" -q "${volumes[@]}" -- /bin/true)
      ch4_lb=("$lb" ch4 -r "$STEPBOX_ROOT" -l "$lb_layer" "${volumes[@]}" -- /bin/true)
      ch5_run=("$bin/ch5-commit" -q run --rm busybox /bin/true)
      ch5_lb=("$lb" ch5 -r "$STEPBOX_ROOT" -l "$lb_layer" -- /bin/true)
      ch6_run=("$bin/ch6-security" -q run --rm busybox /bin/true)
      ch6_lb=("$lb" ch6 -r "$STEPBOX_ROOT" -l "$lb_layer" -s "$work/ch6.filters" -- /bin/true)
    }
    # Untimed: each lower bound works, and leaves nothing in the data root.
    for n in 1 2 3 4 5 6; do
      lb_check="ch${n}_lb[@]"
      "${!lb_check}" </dev/null ||
        { echo "bench.sh: lower-bound ch$n failed" >&2; exit 1; }
    done
    lower_bound_row ch1-mount-ns ch1_run ch1_lb
    lower_bound_row ch2-rootfs ch2_run ch2_lb
    lower_bound_row ch3-overlay ch3_run ch3_lb
    lower_bound_row ch4-volumes ch4_run ch4_lb
    lower_bound_row ch5-commit ch5_run ch5_lb
    lower_bound_row ch6-security ch6_run ch6_lb

    # floor_row N M: chapter N's lower bound against chapter M's, pair by
    #   pair (info): what N's steps beyond M's cost in C, the floor of the
    #   chN / chM row. No chapter beats its own system calls: where a floor
    #   is above its row's target, so is the best that chapter can do here.
    floor_row() {
      echo "timing lower-bound ch$1 and lower-bound ch$2, $RUNS pairs..." >&2
      floor_a=() floor_b=()
      alternate floor_a "ch$1_lb" floor_b "ch$2_lb" </dev/null
      summarize "ch$1's lower bound" "${floor_a[@]}"
      summarize "ch$2's lower bound" "${floor_b[@]}"
      show_ratio "ch$1's lower bound" "ch$2's lower bound"
    }
    # The floors of ch3 / ch2 (1.3x: the write layer's directories) and
    # ch4 / ch3 (1.1x: three volumes), in this data root, on disk.
    floor_row 3 2
    floor_row 4 3

    # ch7, as its own row: only where this caller may set limits; and the
    # lower bound knows cgroup v1 trees only (as on the hybrid hosts these
    # targets were set on).
    ch7_run=("$bin/ch7-cgroups" -q run --rm "${limits[@]}" busybox /bin/true)
    if ! "${ch7_run[@]}" >/dev/null 2>"$results/ch7-lb-probe.err"; then
      not_measured "ch7-cgroups against its lower bound: $(tail -n 1 "$results/ch7-lb-probe.err")"
    elif [ -z "$(findmnt -n -t cgroup -o TARGET)" ]; then
      not_measured "ch7-cgroups against its lower bound: no cgroup v1 tree here, and scripts/lower-bound.c knows no other"
    else
      container_filters ch7-cgroups "$work/ch7.filters" "${limits[@]}"
      # shellcheck disable=SC2034  # read by name, in alternate
      ch7_lb=("$lb" ch7 -r "$STEPBOX_ROOT" -l "$lb_layer" -s "$work/ch7.filters" \
        -g "$lb_cgroup" "${lb_limits[@]}" -- /bin/true)
      "${ch7_lb[@]}" </dev/null || { echo "bench.sh: lower-bound ch7 failed" >&2; exit 1; }
      lower_bound_row ch7-cgroups ch7_run ch7_lb
      # Info: ch7's lower bound against ch6's, the floor of the ch7/ch6
      # row: what ch7's cgroup work (in every v1 tree here) costs in C. A
      # ch7 cannot beat its own system calls: where this is above 1.2x,
      # so is the best ch7/ch6 can be on this host.
      floor_row 7 6
    fi
  fi
fi

# ---------------------------------------------------------------------------
# Against crun (issue 15): ch3 (layer cached) and ch5 run --rm against `crun
# run` of the plain bundle described at the top (over the busybox layer ch3
# and ch5 read), pair by pair; then 50 detached containers started one after
# another and removed by one command, ch5's batch against crun's, the
# batches taking turns ($BIG_RUNS of each, no warm-up). Last of all: its
# 500 containers churn the data root's filesystem, and ext4 then takes longer
# to find a free inode (it skips recently deleted ones), which slowed every
# row run after it (ch6's, 1.5 to 2x).

if [ -z "$ONLY" ] || [ "$ONLY" = crun ]; then
  echo
  echo "== against crun: ch3 and ch5 run --rm, 50 run -d then rm -f =="
  ch3=("$bin/ch3-overlay" -q)
  ch5=("$bin/ch5-commit" -q)
  # Untimed: provision busybox and unpack its layer; both chapters work.
  "${ch3[@]}" -- /bin/true </dev/null
  "${ch5[@]}" run --rm busybox /bin/true </dev/null
  layer=$(busybox_layer)
  crun_root=$layer   # the bundles' root, for cleanup
  plain=$work/crun-plain
  mkdir -p "$plain"
  (cd "$plain" && crun spec)
  jq --arg root "$layer" '
    .root = {path: $root, readonly: true}
    | .process.terminal = false
    | .process.args = ["/bin/true"]
    | .process.noNewPrivileges = false
    | .process.rlimits = []
    | .hostname = "stepbox-bench"
    | .mounts |= map(select(.destination != "/sys" and .destination != "/sys/fs/cgroup"))
    | .mounts += [{destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"]}]
    | .linux.namespaces = [{type: "pid"}, {type: "mount"}, {type: "uts"}, {type: "ipc"}]
    | del(.linux.maskedPaths, .linux.readonlyPaths, .linux.resources)' \
    "$plain/config.json" >"$plain/config.json.new"
  mv "$plain/config.json.new" "$plain/config.json"
  # The detached containers' config: the same, running sleep.
  jq '.process.args = ["sleep", "600"]' "$plain/config.json" >"$work/crun-plain-sleep.json"
  echo "  crun bundle: $plain over $layer (read-only), capabilities: $(jq -r \
    '.process.capabilities.bounding | join(" ")' "$plain/config.json")"
  crun_setup
  # shellcheck disable=SC2034  # read by name, in alternate
  crun_plain=("${crun_cmd[@]}" run --bundle "$plain" stepbox-bench-plain)
  check_crun="${crun_plain[*]@Q} </dev/null"
  "${in_ns[@]:-eval}" "$check_crun" ||
    { echo "bench.sh: crun run of the bundle failed: see $plain/config.json" >&2; exit 1; }

  # shellcheck disable=SC2034  # read by name, in alternate
  ch3_cached=("${ch3[@]}" -- /bin/true)
  echo "timing ch3-overlay and crun run, $RUNS pairs..." >&2
  ch3_times=() crun_times=()
  alternate_in_ns ch3_times ch3_cached crun_times crun_plain
  summarize "ch3-overlay, against crun" "${ch3_times[@]}"
  summarize "crun run, plain" "${crun_times[@]}"
  compare "ch3-overlay, against crun" "crun run, plain" 0.8
  echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
    ch3_times crun_times) ms"

  # shellcheck disable=SC2034  # read by name, in alternate
  ch5_rm=("${ch5[@]}" run --rm busybox /bin/true)
  echo "timing ch5-commit run --rm and crun run, $RUNS pairs..." >&2
  ch5_times=() crun_times=()
  alternate_in_ns ch5_times ch5_rm crun_times crun_plain
  summarize "ch5 run --rm, against crun" "${ch5_times[@]}"
  summarize "crun run, plain, against ch5" "${crun_times[@]}"
  compare "ch5 run --rm, against crun" "crun run, plain, against ch5" 0.8
  echo "  info  median of the $RUNS pairs' differences = $(paired_difference \
    ch5_times crun_times) ms"

  # Info, where the lower bounds were built (as root): ch5's lower bound
  # against crun, the floor of the two rows above on this data root. A
  # chapter cannot beat its own system calls: where this is above 0.8x,
  # so is the best ch5 can be.
  if [ -n "${lb:-}" ]; then
    # shellcheck disable=SC2034  # read by name, in alternate
    lb_rm=("$lb" ch5 -r "$STEPBOX_ROOT" -l "$layer" -- /bin/true)
    echo "timing lower-bound ch5 and crun run, $RUNS pairs..." >&2
    lb_times=() crun_times=()
    alternate_in_ns lb_times lb_rm crun_times crun_plain
    summarize "lower-bound ch5, against crun" "${lb_times[@]}"
    summarize "crun run, plain, against C" "${crun_times[@]}"
    echo "  info  lower-bound ch5 / crun run median = $(awk -v a="${MEDIAN["lower-bound ch5, against crun"]}" \
      -v b="${MEDIAN["crun run, plain, against C"]}" 'BEGIN { printf "%.2f", a / b }')x"
  else
    echo "  info  lower-bound ch5 / crun run: not measured (the lower bounds are built as root, in the full run or BENCH_ONLY=lowerbound)"
  fi

  # A batch: $batch containers running sleep, started one after another,
  # then all removed by one command (crun's by a regular expression of
  # their names). A batch that fails leaves its containers to cleanup.
  batch=50
  crun_sleep=(--bundle "$plain" --config "$work/crun-plain-sleep.json")
  ch5_batch() {
    local i names=()
    for ((i = 1; i <= batch; i++)); do
      names+=("batch$i")
      "${ch5[@]}" run -d --name "batch$i" busybox sleep 600
    done
    "${ch5[@]}" rm -f "${names[@]}"
  }
  crun_batch() {
    local i
    for ((i = 1; i <= batch; i++)); do
      "${crun_cmd[@]}" run --detach "${crun_sleep[@]}" "stepbox-bench-batch$i" </dev/null
    done
    "${crun_cmd[@]}" delete -f --regex '^stepbox-bench-batch[0-9]+$'
  }
  # shellcheck disable=SC2034  # read by name, in alternate
  ch5_batch_cmd=(ch5_batch) crun_batch_cmd=(crun_batch)
  echo "timing $batch × ch5-commit run -d + rm -f and $batch × crun run -d + delete -f, $BIG_RUNS batches each..." >&2
  ch5_batches=() crun_batches=()
  RUNS=$BIG_RUNS WARMUP=0 alternate_in_ns ch5_batches ch5_batch_cmd crun_batches crun_batch_cmd \
    ch5_batch crun_batch batch ch5 crun_cmd crun_sleep
  summarize "ch5 $batch run -d + rm -f" "${ch5_batches[@]}"
  summarize "crun $batch run -d + delete -f" "${crun_batches[@]}"
  compare "ch5 $batch run -d + rm -f" "crun $batch run -d + delete -f" 0.8
  echo "  info  per container: ch5 $(awk -v t="${MEDIAN["ch5 $batch run -d + rm -f"]}" -v n="$batch" \
    'BEGIN { printf "%.3f", t / n }') ms, crun $(awk -v t="${MEDIAN["crun $batch run -d + delete -f"]}" \
    -v n="$batch" 'BEGIN { printf "%.3f", t / n }') ms (medians)"
fi

# ---------------------------------------------------------------------------

echo
if ((unmeasured)); then
  echo "targets met: $met, missed: $missed, not measured: $unmeasured"
else
  echo "targets met: $met, missed: $missed"
fi
