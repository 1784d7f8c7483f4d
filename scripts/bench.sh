#!/usr/bin/env bash
# Benchmark: how much does each chapter cost compared with the tool it imitates?
#
# Builds release binaries, then, for each chapter, measures
#   * wall time to start a container and run /bin/true in it (hyperfine, no
#     shell in between: median, min and max of many runs), and
#   * peak resident memory (/usr/bin/time -f %M, the largest of several runs).
#
# Targets (a missed target is reported as FAIL, but the script still exits 0;
# it exits non-zero only if something breaks):
#   ch1-mount-ns   median ≤ 1.5 × `unshare -m /bin/true`   peak RSS ≤ 4 MiB
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
#
# Run as root, it installs what it lacks with apt-get (hyperfine, time).
# It never touches /var/lib/stepbox: every chapter gets a temporary data root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

RUNS=${BENCH_RUNS:-300}
WARMUP=${BENCH_WARMUP:-20}
RSS_RUNS=${BENCH_RSS_RUNS:-20}

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# command → Debian package that provides it
declare -A PACKAGE=(
  [hyperfine]=hyperfine
  [/usr/bin/time]=time
  [unshare]=util-linux
  [awk]=mawk
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

STEPBOX_ROOT='' results=''
trap 'rm -rf "$STEPBOX_ROOT" "$results"' EXIT
STEPBOX_ROOT=$(mktemp -d)   # the chapters' data root: images, containers
export STEPBOX_ROOT
results=$(mktemp -d)        # hyperfine's and time's raw output

# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

# Results, in milliseconds and KiB, keyed by the row's NAME.
declare -A MEDIAN MIN MAX RSS
met=0
missed=0

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

# rss_target NAME LIMIT_KIB
#   Target: NAME's peak RSS ≤ LIMIT_KIB.
rss_target() {
  local name=$1 limit=$2
  verdict "$((RSS[$name] <= limit))" "$name peak RSS = ${RSS[$name]} KiB (target ≤ $limit KiB)"
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

# ---------------------------------------------------------------------------
# Chapter rows are added below, one block per chapter. A block times the
# chapter and the tool it imitates, then states its targets:
#
#   time_cmd TOOL -- TOOL-COMMAND...         time_cmd CHAPTER -- "$bin/CHAPTER" -q ...
#   peak_rss CHAPTER -- "$bin/CHAPTER" -q ...
#   compare CHAPTER TOOL RATIO               rss_target CHAPTER KIB
# ---------------------------------------------------------------------------

echo
echo "== ch1: a new mount namespace with a private /tmp =="
time_cmd "${unshare_m[*]}" -- "${unshare_m[@]}" /bin/true
time_cmd ch1-mount-ns -- "$bin/ch1-mount-ns" -q -- /bin/true
peak_rss "${unshare_m[*]}" -- "${unshare_m[@]}" /bin/true
peak_rss ch1-mount-ns -- "$bin/ch1-mount-ns" -q -- /bin/true
compare ch1-mount-ns "${unshare_m[*]}" 1.5
rss_target ch1-mount-ns 4096

# ---------------------------------------------------------------------------

echo
echo "targets met: $met, missed: $missed"
