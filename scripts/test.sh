#!/usr/bin/env bash
# Run the whole test suite. This is the README's test command, and CI's.
#
# Every console transcript in README.md and docs/ is run by the tests
# (tests/transcripts/), in a sandbox that needs root; as an ordinary user
# those are skipped, and counted as such.
#
# The tests provision the default busybox image exactly as the chapters do
# (a static busybox on PATH, else `apt-get download busybox-static`), which
# needs apt's package lists; a fresh machine may not have them yet. Debian 12
# stores them compressed (`*_Packages.lz4`), others plain or .gz/.xz/.zst.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  echo "test.sh: apt has no package lists yet: running apt-get update" >&2
  apt-get update -qq
fi
# Debian packages the tests use as tools: the real tools stepbox is compared
# with or that make its test images (tests/oci.rs: umoci and skopeo make OCI
# layouts and archives, xz and bzip2 the tarballs stepbox must refuse;
# tests/images.rs: podman loads what stepbox saves, in a storage of its own;
# tests/metadata.rs: mmdebstrap makes a Debian root filesystem, GNU tar and
# bsdtar (libarchive-tools) read commits back, getcap (libcap2-bin) reads file
# capabilities; tests/subids.rs: uidmap's setuid newuidmap/newgidmap for
# rootless runs with subordinate ids; tests/escape_lab.rs: gcc and libc6-dev's
# static libc build the escape lab's C program; tests/cgroup_guest.rs: qemu-system-x86
# boots the cgroup-v2 guest of scripts/guest.sh, kmod's depmod indexes its kernel's
# modules, python3-venv holds virtme-ng). As root, what is missing is installed; as an
# ordinary user, a test whose tool is missing fails with the install line.
packages=(skopeo umoci podman xz-utils bzip2 mmdebstrap libarchive-tools tar libcap2-bin uidmap
  gcc libc6-dev qemu-system-x86 kmod python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "test.sh: installing the tests' tools: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
elif [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: missing ${missing[*]}: sudo apt-get install ${missing[*]} (the tests that need them will fail)" >&2
fi
for tool in unshare dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing (Debian/Ubuntu ship it)" >&2; exit 1; }
done

# The cgroup-v2 guest's kernel, virtme-ng and busybox, cached under target/guest/ (the
# kernel is fetched with apt-get download and unpacked there, never installed). Where
# it cannot be had, scripts/guest.sh says why and tests/cgroup_guest.rs is skipped.
scripts/guest.sh provision >/dev/null || true

log=$(mktemp)
# A test that cannot run here (tests/support: skip) records itself here:
# cargo counts it as passed, this script as skipped.
export STEPBOX_SKIP_LOG
STEPBOX_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$STEPBOX_SKIP_LOG"' EXIT
status=0
# --no-fail-fast: every test binary runs, so one failure hides no other.
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

# The docs build as a book too (installs mdbook with cargo the first time).
scripts/build-docs.sh || { echo "test.sh: the book did not build" >&2; status=1; }

# Each skipped test once, with why.
if [ -s "$STEPBOX_SKIP_LOG" ]; then
  echo "skipped tests (they could not run here; cargo counted them as passed):"
  sort -u -t "$(printf '\t')" -k1,1 "$STEPBOX_SKIP_LOG" | sed 's/\t/: /; s/^/  /'
fi
skips=$(cut -f 1 "$STEPBOX_SKIP_LOG" | sort -u | wc -l)

# One closing line for the whole suite, summed over every test binary
# (cargo's ignored tests, and the transcripts left out, are skipped too).
awk -v skips="$skips" '/^test result:/ { passed += $4; failed += $6; skipped += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed - skips, failed, skipped + skips }' "$log"
exit "$status"
