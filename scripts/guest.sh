#!/usr/bin/env bash
# A throwaway guest with cgroup v2 as its only hierarchy, for the tests of
# chapter 7 on hosts that are hybrid or v1 (as this project's machines are).
#
#   scripts/guest.sh provision      fetch what the guest needs (idempotent)
#   scripts/guest.sh run 'COMMAND'  boot it, run COMMAND (busybox sh) there as root in
#                                   this repository, print its output, exit with its status
#
# The guest is Debian's kernel (linux-image-amd64) booted by virtme-ng over
# QEMU, seeing this machine's files read-only (its /tmp, /etc, /var... are
# writable overlays that vanish with it), with software emulation: a KVM
# guest hangs here (nested virtualization). STEPBOX_GUEST_KVM=1 tries KVM.
#
# Everything is cached under target/guest/ (STEPBOX_GUEST_CACHE): virtme-ng
# in a venv, the kernel unpacked with dpkg-deb -x (nothing on the host's
# /boot or /lib/modules changes), a static busybox. Only QEMU and kmod
# (depmod) are installed with apt, as root.
#
# When the guest cannot be had, one line on stderr says why, starting
# "guest: unavailable:", and the exit status is 3, so that a test can count
# itself skipped. Timings go to stderr as "guest: booted in ...".
set -eEuo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
cache=${STEPBOX_GUEST_CACHE:-$repo/target/guest}
virtme_ng_version=1.42
timeout_s=${STEPBOX_GUEST_TIMEOUT:-300}

unavailable() {
  echo "guest: unavailable: $*" >&2
  exit 3
}
# Any other failure of this script (not of the command) is told the same way.
trap 'unavailable "scripts/guest.sh failed at line $LINENO: $BASH_COMMAND"' ERR

as_root_apt_install() {
  [ "$(id -u)" = 0 ] || unavailable "$1 is missing: sudo apt-get install $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1; } ||
    unavailable "apt-get install $2 failed"
}

# A .deb's files unpacked into $2 (made only when complete).
unpack_deb() {
  local package=$1 into=$2 debs=$cache/debs
  mkdir -p "$debs"
  rm -f "$debs/${package}"_*.deb
  (cd "$debs" && apt-get download "$package" >/dev/null 2>&1) ||
    unavailable "apt-get download $package failed (run apt-get update?)"
  rm -rf "$into.part"
  dpkg-deb -x "$debs/${package}"_*.deb "$into.part" || unavailable "dpkg-deb -x $package failed"
  rm -f "$debs/${package}"_*.deb
  mv "$into.part" "$into"
}

provision() {
  [ "$(uname -m)" = x86_64 ] || unavailable "the guest is x86_64 only, this machine is $(uname -m)"
  mkdir -p "$cache" 2>/dev/null || unavailable "cannot make the cache directory $cache"
  # One provisioning at a time (two test binaries may ask at once).
  exec 9>"$cache/.lock"
  flock 9
  command -v qemu-system-x86_64 >/dev/null || as_root_apt_install qemu-system-x86_64 qemu-system-x86
  # virtme-ng runs depmod over the unpacked kernel's modules.
  command -v depmod >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v depmod >/dev/null ||
    as_root_apt_install depmod kmod
  if [ ! -x "$cache/venv/bin/vng" ]; then
    rm -rf "$cache/venv"
    python3 -m venv "$cache/venv" >/dev/null 2>&1 || unavailable "python3 -m venv failed (apt-get install python3-venv)"
    "$cache/venv/bin/pip" install -q "virtme-ng==$virtme_ng_version" >/dev/null 2>&1 ||
      { rm -rf "$cache/venv"; unavailable "pip install virtme-ng==$virtme_ng_version failed"; }
  fi
  if ! compgen -G "$cache/kernel/boot/vmlinuz-*" >/dev/null; then
    # linux-image-amd64 is a metapackage: the kernel is the package it depends on.
    local image
    image=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$image" ] || unavailable "apt-cache knows no linux-image-amd64 (run apt-get update)"
    unpack_deb "$image" "$cache/kernel"
  fi
  if [ ! -x "$cache/busybox/bin/busybox" ]; then
    unpack_deb busybox-static "$cache/busybox"
  fi
  write_guest_init
  flock -u 9
}

# PID 1 of the guest, run by the static busybox's sh (virtme-ng's own init
# waits ~30 s for udev under software emulation, and every dynamically
# linked program costs about a second read over 9p there): the smallest
# set-up our tests need, then the command. The root is this machine's /,
# read-only (9p); /tmp, /run and /dev are fresh; cgroup2 is mounted alone
# at /sys/fs/cgroup, as on a v2 distro. The command comes base64-encoded in
# stepbox.exec=... on the kernel's command line; its output and exit status
# go out through virtme-ng's virtio serial ports; then the guest powers off.
write_guest_init() {
  local init=$cache/init.sh
  {
    echo "bb=$cache/busybox/bin/busybox"
    echo "kernel_modules=$cache/kernel/lib/modules"
    cat <<'INIT'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev 2>/dev/null
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
$bb mount -t tmpfs tmpfs /dev/shm
# A tmpfs on /tmp, unless the checkout (and this cache) lives there: then
# the guest uses the host's /tmp as the 9p root shows it, and TMPDIR a tmpfs.
$bb mount -t tmpfs tmpfs /run
tmp=/tmp
case $bb in
  /tmp/*) tmp=/run/tmp; $bb mkdir -p $tmp; $bb chmod 1777 $tmp ;;
  *) $bb mount -t tmpfs tmpfs /tmp ;;
esac
$bb mount -t cgroup2 cgroup2 /sys/fs/cgroup
out=/dev/console err=/dev/console ret=
for port in /sys/class/virtio-ports/*; do
  name=
  read -r name <"$port/name"
  case $name in
    virtme.stdout) out=/dev/${port##*/} ;;
    virtme.stderr) err=/dev/${port##*/} ;;
    virtme.ret) ret=/dev/${port##*/} ;;
  esac
done
# overlayfs is a module in Debian's kernel: loaded from the unpacked package.
for module in "$kernel_modules"/*/kernel/fs/overlayfs/overlay.ko; do
  $bb insmod "$module" 2>/dev/null
done
read -r cmdline </proc/cmdline
encoded=
for word in $cmdline; do
  case $word in
    stepbox.exec=*) encoded=${word#stepbox.exec=} ;;
  esac
done
echo "$encoded" | $bb base64 -d >/run/command
cd /
HOME=/root TMPDIR=$tmp $bb sh /run/command </dev/null >"$out" 2>"$err"
status=$?
[ -n "$ret" ] && echo "$status" >"$ret"
$bb sync
echo o >/proc/sysrq-trigger
$bb sleep 10
INIT
  } >"$init.part"
  if cmp -s "$init.part" "$init"; then rm -f "$init.part"; else mv "$init.part" "$init"; fi
}

kernel_image() {
  compgen -G "$cache/kernel/boot/vmlinuz-*" | head -n 1
}

run() {
  [ $# -ge 1 ] || { echo "usage: scripts/guest.sh run 'COMMAND'" >&2; exit 2; }
  provision
  [ -r /dev/null ] || unavailable "no /dev/null"
  local kvm=--disable-kvm
  [ "${STEPBOX_GUEST_KVM:-0}" = 1 ] && kvm=
  local started ended up
  # Global: the EXIT trap reads it after this function is gone.
  log=$(mktemp)
  trap 'rm -f "$log" "$log.up"' EXIT
  # The guest prints a mark as soon as it runs our command, with its own
  # uptime: so a guest that never booted is told apart from a command that failed.
  local script="read -r up _ </proc/uptime; echo @@guest-up@@ \$up; cd '$repo' && export STEPBOX_IN_GUEST=1 && $1"
  started=$(date +%s.%N)
  # Each line is stamped as it comes, so that the boot (until the mark) and
  # the command (after it) are timed apart, on the host's clock.
  local status=0 booted=
  set +e
  trap - ERR
  # virtme-run (virtme-ng's runner) builds the initramfs that mounts this
  # machine's / over 9p, and the serial ports; our -append, the last, makes
  # busybox's sh running $cache/init.sh the guest's init (see write_guest_init).
  local encoded
  encoded=$(printf '%s' "$script" | base64 -w0)
  PATH=$cache/venv/bin:$PATH:/usr/sbin:/sbin timeout --kill-after=10 "$timeout_s" \
    virtme-run $kvm --kimg "$(kernel_image)" --mods auto --busybox "$cache/busybox/bin/busybox" \
    --memory 1G --cpus 2 --script-sh true \
    --qemu-opts -append "init=$cache/busybox/bin/busybox stepbox.exec=$encoded quiet loglevel=1 panic=-1 -- sh $cache/init.sh" \
    </dev/null 2>&1 |
    while IFS= read -r line; do
      if [ -z "$booted" ] && [[ $line == @@guest-up@@* ]]; then
        booted=1
        echo "$(date +%s.%N) ${line#@@guest-up@@ }" >"$log.up"
        continue
      fi
      printf '%s\n' "$line"
      printf '%s\n' "$line" >>"$log"
    done
  status=${PIPESTATUS[0]}
  set -e
  trap 'unavailable "scripts/guest.sh failed at line $LINENO: $BASH_COMMAND"' ERR
  ended=$(date +%s.%N)
  if [ ! -s "$log.up" ]; then
    local last
    last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-200 || true)
    rm -f "$log.up"
    [ "$status" = 124 ] && unavailable "the guest did not boot within ${timeout_s}s"
    unavailable "the guest did not boot (vng exited $status${last:+: $last})"
  fi
  read -r up_at up <"$log.up"
  rm -f "$log.up"
  awk -v s="$started" -v u="$up_at" -v e="$ended" -v up="$up" \
    'BEGIN { printf "guest: booted in %.1f s (its kernel up %.1f s), the command took %.1f s, %.1f s in all\n", u - s, up, e - u, e - s }' >&2
  [ "$status" = 124 ] && echo "guest: the command did not finish within ${timeout_s}s" >&2
  # The command's status is the script's: no ERR trap for it.
  trap - ERR
  exit "$status"
}

case "${1:-}" in
  provision) provision; echo "guest: ready: $(kernel_image)" ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/guest.sh provision | run 'COMMAND'" >&2; exit 2 ;;
esac
