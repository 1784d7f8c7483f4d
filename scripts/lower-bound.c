/* lower-bound: each chapter's `run` of one command, in plain C, making the
 * system calls that change what the kernel or the data root holds, and no
 * others. scripts/bench.sh times each chapter against it (issue 15): the
 * difference is what the Rust code and the narration machinery cost, apart
 * from the kernel's own work.
 *
 *   lower-bound ch1 -- CMD...
 *   lower-bound ch2 -R ROOTFS -- CMD...
 *   lower-bound ch3|ch5 -r ROOT -l LAYER -- CMD...
 *   lower-bound ch4 -r ROOT -l LAYER -v SRC:/DST [-v ...] -- CMD...
 *   lower-bound ch6 -r ROOT -l LAYER -s FILTERS -- CMD...
 *   lower-bound ch7 -r ROOT -l LAYER -s FILTERS -g PARENT -m BYTES
 *                   -c QUOTA_US -p PIDS -- CMD...
 *   lower-bound seccomp-dump PID FILTERS   (prints each filter's length)
 *
 * ROOT is a chapter's data root, LAYER the unpacked image layer its overlay
 * reads, ROOTFS ch2's unpacked root. Run as root only: as an ordinary user
 * the chapters add a user namespace and its id maps, which this does not.
 *
 * Seccomp: the filters are not compiled here. `seccomp-dump` copies the
 * filters of a running container's init (PTRACE_SECCOMP_GET_FILTER) into
 * FILTERS, in the order they were installed; the bench dumps those of a
 * ch6 (and a ch7) container, so ch6 and ch7 load the very programs the
 * chapters load (for Docker's profile: 162 instructions, then clone3's 9).
 *
 * Each mode makes the chapter's namespaces (same clone flags), mounts (same
 * sources, targets, flags and data), directories, files, renames, locks,
 * removals, capability drops, no_new_privs, seccomp filters and cgroups, in
 * the chapter's order, with the same fork, exec and wait, and the same two
 * pipes (the go byte, and the exec report that ends at exec). What it
 * leaves out, measured with strace -c -f against the chapters at this
 * commit:
 *   - the Rust runtime's start-up (poll, sigaltstack, sched_getaffinity,
 *     reading /proc/self/maps, SIGPIPE's rt_sigaction, getrandom), and
 *     std's statx and lseek of the exec pipe before reading it;
 *   - the data root's checks: geteuid, statx and mkdir (EEXIST) of each of
 *     its directories, listing tmp/ (the leftover sweep) and images/;
 *   - finding the image: the lookup of index.json, the statx of the image
 *     tarball and the read of its cache record under index/ (LAYER and
 *     ROOTFS are given); ch2's mountinfo read before its bind;
 *   - the random container id and name (/dev/urandom): here "lb-PID";
 *   - statx before each mount target and volume source, openat2's and
 *     fstat's extra steps in ch4's volume resolution (one openat2 kept),
 *     the layer lock's dup to fd 100 (closed again in the child), and in
 *     the recursive removal each directory's fstat, and the fchmod of
 *     overlay's mode-000 work directories (root needs none);
 *   - ch5-7: the second /proc/self/stat read; ch7: the state.json reads
 *     for the cgroup's id before the clone and before the release;
 *   - ch6-7: the PR_CAPBSET_READ probes (41 in the child, 82 in the
 *     parent) and uname (for the profile's minKernel): the capabilities to
 *     drop are known, the last one found by the drop that fails (EINVAL);
 *   - ch7: reading /sys/devices/system/cpu/online (twice, to check
 *     --cpus), statfs of /sys/fs/cgroup and unified/ (the mode), each
 *     tree's statx and statfs (a mount mountinfo lists may be hidden),
 *     /proc/self/cgroup read (every v1 hierarchy has a tree), listing
 *     /sys/fs/cgroup in the parent and in the child (a symlink to a tree,
 *     and the child's mkdir of sys/fs/cgroup that fails before sys/fs is
 *     made), the statx of each limit's file before
 *     it is written, the child cgroup's own cpuset.cpus/mems read before
 *     they are copied, the sweep for leftover cgroups (PARENT opened in
 *     every tree, and each container's cgroup looked for), and at exit
 *     each cgroup's statx (a leaf is not listed).
 * Added here, and not in the chapters: reading FILTERS (ch6, ch7: open,
 * read, close; the chapters compile Docker's profile instead).
 *
 * strace -c -f of one run of /bin/true (its busybox counted on both sides),
 * chapter / lower bound, on the 2-core VM with 9 cgroup v1 trees these
 * targets were set on: ch1 119 / 82 calls, ch2 196 / 106, ch3 287 / 159,
 * ch4 375 / 188, ch5 318 / 185, ch6 522 / 264, ch7 789 / 392. For each
 * system call, the lower bound makes at most as many as its chapter (the
 * stat family, stat, fstat and statx, counted together).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_VOLUMES 16
#define MAX_TREES 16
#define MAX_FILTERS 4

enum mode { CH1 = 1, CH2, CH3, CH4, CH5, CH6, CH7 };

/* A cgroup v1 tree: where it is mounted, and its controllers ("cpu,cpuacct",
   "name=systemd"). */
struct tree {
  char mount_point[256];
  char options[128];
};

/* One run: the arguments, and what the parent works out before the clone
   (the child gets a copy). */
static struct run {
  enum mode mode;
  const char *root, *layer, *rootfs, *filters_path, *cgroup_parent;
  const char *volume_src[MAX_VOLUMES], *volume_dst[MAX_VOLUMES];
  int volumes;
  long long memory, cpu_quota, pids;
  char **argv;
  char name[64], id[16], dir[4096], merged[4096], hostname[64];
  struct sock_fprog filters[MAX_FILTERS];
  int nfilters;
  struct tree trees[MAX_TREES];
  int ntrees;
  char cgroups[MAX_TREES][512];
} run;

static pid_t child_pid;

/* ------------------------------------------------------------------------ */
/* Failing: the call, its path and the errno, once, then exit 125.           */

static void die(const char *call, const char *path) {
  fprintf(stderr, "lower-bound: %s(\"%s\") failed: %s\n", call, path ? path : "", strerror(errno));
  exit(125);
}

static void usage(void) {
  fputs("usage: lower-bound ch1|ch2|ch3|ch4|ch5|ch6|ch7 [-R ROOTFS] [-r ROOT] [-l LAYER]\n"
        "         [-v SRC:/DST]... [-s FILTERS] [-g PARENT -m BYTES -c QUOTA_US -p PIDS] -- CMD...\n"
        "       lower-bound seccomp-dump PID FILTERS\n",
        stderr);
  exit(125);
}

/* A path made with printf, that must fit. */
static void fmt(char *buf, size_t size, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(buf, size, format, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    die("snprintf", format);
  }
}

/* ------------------------------------------------------------------------ */
/* Files: written whole, written by temp file + rename, read whole.           */

static void write_file(const char *path, int flags, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0666);
  if (fd < 0)
    die("open", path);
  size_t len = strlen(data);
  if (len && write(fd, data, len) != (ssize_t)len)
    die("write", path);
  close(fd);
}

/* As the chapters' state files: NAME.tmp.PID (state.json: state.tmp.PID),
   then rename over NAME, so a reader sees the old file or the new one. */
static void write_replacing(const char *dir, const char *tmp_stem, const char *name,
                            const char *data) {
  char tmp[4200], path[4200];
  fmt(tmp, sizeof tmp, "%s/%s.tmp.%d", dir, tmp_stem, (int)getpid());
  fmt(path, sizeof path, "%s/%s", dir, name);
  write_file(tmp, O_CREAT | O_TRUNC, data);
  if (rename(tmp, path) != 0)
    die("rename", tmp);
}

/* Read up to size - 1 bytes of PATH into BUF, NUL-terminated; the length. */
static ssize_t read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("open", path);
  ssize_t n = read(fd, buf, size - 1);
  if (n < 0)
    die("read", path);
  buf[n] = '\0';
  close(fd);
  return n;
}

/* A process's start time (field 22 of /proc/PID/stat, in clock ticks): with
   the pid, it names the process even after the pid is reused. */
static unsigned long long start_time(pid_t pid) {
  char path[64], buf[1024];
  fmt(path, sizeof path, "/proc/%d/stat", (int)pid);
  read_file(path, buf, sizeof buf);
  char *p = strrchr(buf, ')');
  /* Fields 3 to 21 follow the name: skip 19 spaces. */
  for (int field = 2; p && field < 22; field++)
    p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* rm -r DIRFD/NAME, depth first, without following symlinks (the entries
   read with getdents64 into a buffer on the stack: no opendir's malloc). */
static void remove_tree(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) {
      if (unlinkat(dirfd, name, 0) != 0)
        die("unlinkat", name);
      return;
    }
    die("openat", name);
  }
  char buf[4096];
  ssize_t n;
  while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
    for (ssize_t at = 0; at < n;) {
      struct dirent64 *entry = (struct dirent64 *)(buf + at);
      at += entry->d_reclen;
      if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
        continue;
      if (entry->d_type == DT_DIR)
        remove_tree(fd, entry->d_name);
      else if (unlinkat(fd, entry->d_name, 0) != 0)
        die("unlinkat", entry->d_name);
    }
  }
  if (n < 0)
    die("getdents64", name);
  close(fd);
  if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
    die("unlinkat", name);
}

/* ------------------------------------------------------------------------ */
/* Mounts (common/src/mount.rs, rootfs.rs).                                   */

static void do_mount(const char *source, const char *target, const char *fstype,
                     unsigned long flags, const char *data) {
  if (mount(source, target, fstype, flags, data) != 0)
    die("mount", target);
}

static void mkdir_in(const char *parent, const char *name, mode_t mode, char *path,
                     size_t size) {
  fmt(path, size, "%s/%s", parent, name);
  if (mkdir(path, mode) != 0)
    die("mkdir", path);
}

/* ch2 step 5 (rootfs::mount_proc_dev_tmp), ch3-7 the same: /proc of our pid
   namespace, a small /dev (a tmpfs, the host's harmless devices bound in,
   the fd symlinks, devpts, shm, mqueue) and a fresh /tmp, mounted while
   the host's /dev can still be named. */
static void mount_proc_dev_tmp(const char *root) {
  static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
  static const char *const links[][2] = {{"/proc/self/fd", "fd"},
                                         {"/proc/self/fd/0", "stdin"},
                                         {"/proc/self/fd/1", "stdout"},
                                         {"/proc/self/fd/2", "stderr"}};
  char path[4200], dev[4200], host[64];
  fmt(path, sizeof path, "%s/proc", root);
  do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  fmt(dev, sizeof dev, "%s/dev", root);
  do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
    fmt(path, sizeof path, "%s/%s", dev, devices[i]);
    write_file(path, O_CREAT | O_TRUNC, "");
    fmt(host, sizeof host, "/dev/%s", devices[i]);
    do_mount(host, path, NULL, MS_BIND, NULL);
  }
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    fmt(path, sizeof path, "%s/%s", dev, links[i][1]);
    if (symlink(links[i][0], path) != 0)
      die("symlink", path);
  }
  mkdir_in(dev, "pts", 0777, path, sizeof path);
  do_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  fmt(path, sizeof path, "%s/ptmx", dev);
  if (symlink("pts/ptmx", path) != 0)
    die("symlink", path);
  mkdir_in(dev, "shm", 0777, path, sizeof path);
  do_mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  mkdir_in(dev, "mqueue", 0777, path, sizeof path);
  do_mount("mqueue", path, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  fmt(path, sizeof path, "%s/tmp", root);
  do_mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, NULL);
}

/* ch4 step 5 (volume::mount_in): the target made and opened inside the new
   root (openat2 RESOLVE_IN_ROOT: an image's symlink cannot point it at the
   host), then the source bound onto it through its fd. */
static void mount_volumes(const char *root) {
  if (!run.volumes)
    return;
  int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    die("open", root);
  for (int i = 0; i < run.volumes; i++) {
    const char *target = run.volume_dst[i] + 1; /* below the root: no leading '/' */
    if (mkdirat(root_fd, target, 0755) != 0 && errno != EEXIST)
      die("mkdirat", target);
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, root_fd, target, &how, sizeof how);
    if (fd < 0)
      die("openat2", target);
    char proc_fd[64];
    fmt(proc_fd, sizeof proc_fd, "/proc/self/fd/%d", fd);
    do_mount(run.volume_src[i], proc_fd, NULL, MS_BIND | MS_REC, NULL);
    close(fd);
  }
  close(root_fd);
}

/* ch7 step 7 (cgroup::container::mount_sys, v1): /sys a tmpfs holding
   each of our trees read-only at /sys/fs/cgroup/NAME (our cgroup, through
   the cgroup namespace), then the tmpfs itself made read-only. */
static void mount_sys(const char *root) {
  char sys[4200], path[4200];
  fmt(sys, sizeof sys, "%s/sys", root);
  do_mount("tmpfs", sys, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755");
  mkdir_in(sys, "fs", 0777, path, sizeof path);
  mkdir_in(sys, "fs/cgroup", 0777, path, sizeof path);
  for (int i = 0; i < run.ntrees; i++) {
    const char *base = strrchr(run.trees[i].mount_point, '/') + 1;
    fmt(path, sizeof path, "%s/fs/cgroup/%s", sys, base);
    if (mkdir(path, 0777) != 0)
      die("mkdir", path);
    do_mount("cgroup", path, "cgroup", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
             run.trees[i].options);
  }
  do_mount(NULL, sys, NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT,
           "size=64k,mode=755");
}

/* ch2 step 6 (rootfs::pivot_root): into the new root, with put_old the new
   root itself: the old root is stacked on top of it, then detached. */
static void pivot_into(const char *root) {
  if (chdir(root) != 0)
    die("chdir", root);
  if (syscall(SYS_pivot_root, ".", ".") != 0)
    die("pivot_root", root);
  if (umount2(".", MNT_DETACH) != 0)
    die("umount2", ".");
  if (chdir("/") != 0)
    die("chdir", "/");
}

static void set_attr(const char *path, unsigned int flags, uint64_t attr) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    die("open", path);
  struct mount_attr set = {.attr_set = attr};
  if (mount_setattr(fd, "", AT_EMPTY_PATH | flags, &set, sizeof set) != 0)
    die("mount_setattr", path);
  close(fd);
}

/* ch6 step 7 (security::masks): Docker's masked paths (a directory under an
   empty read-only tmpfs, a file under /dev/null, a missing one skipped),
   its read-only paths (bound onto themselves, made read-only), ch7's /sys
   read-only too, and nodev on the root and /dev. */
static void restrict_mounts(void) {
  static const char *const masked[] = {
      "/proc/acpi",        "/proc/asound",     "/proc/interrupts",
      "/proc/kcore",       "/proc/keys",       "/proc/latency_stats",
      "/proc/sched_debug", "/proc/scsi",       "/proc/timer_list",
      "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"};
  static const char *const read_only[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger"};
  struct stat st;
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
    if (stat(masked[i], &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode))
      do_mount("tmpfs", masked[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0");
    else
      do_mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
  }
  for (size_t i = 0; i < sizeof read_only / sizeof *read_only; i++) {
    if (lstat(read_only[i], &st) != 0)
      continue;
    do_mount(read_only[i], read_only[i], NULL, MS_BIND | MS_REC, NULL);
    set_attr(read_only[i], AT_RECURSIVE, MOUNT_ATTR_RDONLY);
  }
  if (run.mode == CH7)
    set_attr("/sys", AT_RECURSIVE, MOUNT_ATTR_RDONLY);
  set_attr("/", 0, MOUNT_ATTR_NODEV);
  set_attr("/dev", 0, MOUNT_ATTR_NODEV);
}

/* ch6 steps 9-11 (security::Restrictions::exec): no_new_privs (so an
   unprivileged filter may be installed and no setuid program gains
   anything), every capability but Docker's 14 out of the bounding set,
   the 14 in the effective, permitted and inheritable sets, no ambient;
   then the filters, last before exec, or they would filter our set-up. */
static void restrict_process(void) {
  static const int kept[] = {CAP_CHOWN,        CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID,
                             CAP_KILL,         CAP_SETGID,       CAP_SETUID, CAP_SETPCAP,
                             CAP_NET_BIND_SERVICE, CAP_NET_RAW,  CAP_SYS_CHROOT, CAP_MKNOD,
                             CAP_AUDIT_WRITE,  CAP_SETFCAP};
  uint64_t keep = 0;
  for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
    keep |= 1ULL << kept[i];
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    die("prctl", "PR_SET_NO_NEW_PRIVS");
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) /* past the kernel's last capability */
        break;
      die("prctl", "PR_CAPBSET_DROP");
    }
  }
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2] = {
      {.effective = (uint32_t)keep, .permitted = (uint32_t)keep, .inheritable = (uint32_t)keep},
      {.effective = (uint32_t)(keep >> 32),
       .permitted = (uint32_t)(keep >> 32),
       .inheritable = (uint32_t)(keep >> 32)}};
  if (syscall(SYS_capset, &header, data) != 0)
    die("capset", "");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    die("prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
  for (int i = 0; i < run.nfilters; i++)
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &run.filters[i]) != 0)
      die("seccomp", run.filters_path);
}

/* ------------------------------------------------------------------------ */
/* The child (process::spawn's child, then each chapter's story).            */

static int go_pipe[2], exec_pipe[2];
static void enter_cgroups(void);

static int child_main(void) {
  char byte;
  /* process::spawn: only our ends of the pipes; die with the parent; wait
     for the go byte (the parent's set-up: ch7's cgroups made) before anything
     else; not dumpable; a session of our own. */
  close(go_pipe[1]);
  close(exec_pipe[0]);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    die("prctl", "PR_SET_PDEATHSIG");
  if (read(go_pipe[0], &byte, 1) != 1)
    die("read", "go pipe");
  if (prctl(PR_SET_DUMPABLE, 0) != 0)
    die("prctl", "PR_SET_DUMPABLE");
  if (setsid() < 0)
    die("setsid", "");

  if (run.mode == CH1) {
    /* ch1 steps 1-2: a private mount table, then a fresh /tmp. */
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    do_mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
  } else {
    /* ch7 steps 0-1: into our cgroup, then our own cgroup namespace,
       rooted there. */
    if (run.mode == CH7)
      enter_cgroups();
    if (run.mode == CH7 && unshare(CLONE_NEWCGROUP) != 0)
      die("unshare", "CLONE_NEWCGROUP");
    /* ch2-7 steps 1-2: a private mount table; our hostname. */
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (sethostname(run.hostname, strlen(run.hostname)) != 0)
      die("sethostname", run.hostname);
    if (run.mode == CH2) {
      /* ch2 step 4: the root a mount point of its own, for pivot_root. */
      do_mount(run.rootfs, run.rootfs, NULL, MS_BIND | MS_REC, NULL);
    } else {
      /* ch3 step 3: the layer under our upper directory, on merged. */
      char options[12800];
      fmt(options, sizeof options, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work,volatile",
          run.layer, run.dir, run.dir);
      do_mount("overlay", run.merged, "overlay", 0, options);
    }
    /* ch2 step 5, ch3 step 4: /proc, /dev, /tmp. */
    mount_proc_dev_tmp(run.merged);
    /* ch7 step 7: a read-only /sys with our cgroups. */
    if (run.mode == CH7)
      mount_sys(run.merged);
    /* ch4 step 5: the volumes. */
    mount_volumes(run.merged);
    /* ch2 step 6: into the new root. */
    pivot_into(run.merged);
    /* ch6 step 7: masked and read-only paths, nodev. */
    if (run.mode >= CH6)
      restrict_mounts();
  }
  /* ch1 step 3: only stdin, stdout and stderr reach the command (our exec
     pipe, close-on-exec, tells the parent the exec happened). */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    die("close_range", "");
  /* ch6 steps 9-11: no_new_privs, capabilities, seccomp. */
  if (run.mode >= CH6)
    restrict_process();
  /* ch1 step 4: become the command; from ch2 on, in an environment of its
     own. */
  if (run.mode == CH1) {
    execvp(run.argv[0], run.argv);
  } else {
    char hostname[80];
    fmt(hostname, sizeof hostname, "HOSTNAME=%s", run.hostname);
    char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   hostname, "HOME=/root", NULL};
    execvpe(run.argv[0], run.argv, env);
  }
  die("execvp", run.argv[0]);
  return 127;
}

/* ------------------------------------------------------------------------ */
/* The parent's side: the write layer, the state files, the cgroups.         */

/* ch5's state.json (lifecycle's State), with the chapter's fields, so that
   a chapter's `rm -f` can read one left behind. */
static void write_state(const char *status, pid_t pid, unsigned long long pid_start,
                        unsigned long long creator_start, long long created) {
  char chapter[512] = "", pid_s[32] = "null", start_s[32] = "null", creator[128] = "";
  if (run.mode == CH6)
    fmt(chapter, sizeof chapter,
        "  \"chapter\": {\n    \"cap_add\": [],\n    \"cap_drop\": [],\n"
        "    \"privileged\": false,\n    \"security_opt\": []\n  },\n");
  else if (run.mode == CH7)
    fmt(chapter, sizeof chapter,
        "  \"chapter\": {\n    \"cap_add\": [],\n    \"cap_drop\": [],\n"
        "    \"cpu_shares\": null,\n    \"cpus\": \"%lld\",\n    \"cpuset_cpus\": null,\n"
        "    \"memory\": \"%lld\",\n    \"pids_limit\": \"%lld\",\n"
        "    \"privileged\": false,\n    \"security_opt\": []\n  },\n",
        run.cpu_quota / 100000, run.memory, run.pids);
  if (pid) {
    fmt(pid_s, sizeof pid_s, "%d", (int)pid);
    fmt(start_s, sizeof start_s, "%llu", pid_start);
  } else {
    fmt(creator, sizeof creator, ",\n  \"creator\": {\n    \"pid\": %d,\n    \"start_time\": %llu\n  }",
        (int)getpid(), creator_start);
  }
  /* run --rm: who removes it, should that run be killed. */
  char remover[128];
  fmt(remover, sizeof remover,
      ",\n  \"remove_on_exit\": {\n    \"pid\": %d,\n    \"start_time\": %llu\n  }",
      (int)getpid(), creator_start);
  char state[4096];
  fmt(state, sizeof state,
      "{\n  \"id\": \"%s\",\n  \"name\": \"%s\",\n  \"image\": \"busybox\",\n"
      "  \"layers\": [\n    \"%s\"\n  ],\n  \"command\": [\n    \"%s\"\n  ],\n"
      "  \"volumes\": [],\n  \"env\": [],\n  \"init\": false,\n%s  \"created\": %lld,\n"
      "  \"status\": \"%s\",\n  \"pid\": %s,\n  \"pid_start_time\": %s,\n"
      "  \"monitor_pid\": null,\n  \"exit_code\": null,\n  \"finished\": null,\n"
      "  \"rootless\": false,\n  \"made_by\": %d%s%s\n}",
      run.id, run.name, run.layer, run.argv[0], chapter, created, status, pid_s, start_s,
      (int)run.mode, creator, remover);
  write_replacing(run.dir, "state", "state.json", state);
}

/* ch5's lock, flock(2) on the container's directory, taken while
   state.json is read and rewritten. */
static int lock_state(void) {
  char path[4200], buf[8192];
  int fd = open(run.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    die("open", run.dir);
  if (flock(fd, LOCK_EX) != 0)
    die("flock", run.dir);
  fmt(path, sizeof path, "%s/state.json", run.dir);
  read_file(path, buf, sizeof buf);
  return fd;
}

static void unlock_state(int fd) {
  flock(fd, LOCK_UN);
  close(fd);
}

/* Does the comma-separated LIST name CONTROLLER? */
static int has_controller(const char *list, const char *controller) {
  size_t n = strlen(controller);
  for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, controller, n) && (p[n] == ',' || p[n] == '\0'))
      return 1;
  return 0;
}

/* The cgroup v1 trees, from /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT
   MOUNT_POINT OPTIONS ... - cgroup SOURCE SUPER_OPTIONS". */
static void find_trees(void) {
  static char buf[65536];
  read_file("/proc/self/mountinfo", buf, sizeof buf);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char *dash = strstr(line, " - cgroup ");
    if (!dash || run.ntrees == MAX_TREES)
      continue;
    char mount_point[256], super[256];
    if (sscanf(line, "%*s %*s %*s %*s %255s", mount_point) != 1 ||
        sscanf(dash, " - cgroup %*s %255s", super) != 1)
      continue;
    struct tree *tree = &run.trees[run.ntrees++];
    fmt(tree->mount_point, sizeof tree->mount_point, "%s", mount_point);
    /* The controllers, without the read-write flag. */
    const char *options = super;
    if (!strncmp(options, "rw,", 3) || !strncmp(options, "ro,", 3))
      options += 3;
    fmt(tree->options, sizeof tree->options, "%s", options);
  }
  if (!run.ntrees) {
    errno = ENOENT;
    die("find cgroup v1 trees in", "/proc/self/mountinfo");
  }
}

static void write_limit(const char *cgroup, const char *file, long long value, int optional) {
  char path[700], text[32];
  fmt(path, sizeof path, "%s/%s", cgroup, file);
  fmt(text, sizeof text, "%lld", value);
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0 && optional && errno == ENOENT)
    return;
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
    die("write", path);
  close(fd);
}

/* ch7 before_clone (cgroup::container::create, v1): in every tree, PARENT
   and PARENT/NAME (cpuset's cpus and mems copied down: a new cpuset has
   none), then the limits where their controller is; the first directory
   locked (flock shared) for the run. Returns the lock's fd. */
static int create_cgroups(void) {
  int lock = -1;
  for (int i = 0; i < run.ntrees; i++) {
    struct tree *tree = &run.trees[i];
    char parent[512], root_file[512], value[256];
    fmt(parent, sizeof parent, "%s/%s", tree->mount_point, run.cgroup_parent);
    fmt(run.cgroups[i], sizeof run.cgroups[i], "%s/%s", parent, run.name);
    if (mkdir(parent, 0755) != 0 && errno != EEXIST)
      die("mkdir", parent);
    int cpuset = has_controller(tree->options, "cpuset");
    static const char *const cpuset_files[] = {"cpuset.cpus", "cpuset.mems"};
    char copied[2][256];
    if (cpuset) {
      for (int f = 0; f < 2; f++) {
        fmt(root_file, sizeof root_file, "%s/%s", tree->mount_point, cpuset_files[f]);
        read_file(root_file, value, sizeof value);
        value[strcspn(value, "\n")] = '\0';
        fmt(copied[f], sizeof copied[f], "%s", value);
        fmt(root_file, sizeof root_file, "%s/%s", parent, cpuset_files[f]);
        write_file(root_file, O_TRUNC, copied[f]);
      }
    }
    if (mkdir(run.cgroups[i], 0755) != 0)
      die("mkdir", run.cgroups[i]);
    if (cpuset) {
      for (int f = 0; f < 2; f++) {
        fmt(root_file, sizeof root_file, "%s/%s", run.cgroups[i], cpuset_files[f]);
        write_file(root_file, O_TRUNC, copied[f]);
      }
    }
  }
  for (int i = 0; i < run.ntrees; i++) {
    const char *options = run.trees[i].options;
    if (has_controller(options, "memory")) {
      write_limit(run.cgroups[i], "memory.limit_in_bytes", run.memory, 0);
      write_limit(run.cgroups[i], "memory.memsw.limit_in_bytes", run.memory, 1);
    }
    if (has_controller(options, "cpu")) {
      write_limit(run.cgroups[i], "cpu.cfs_period_us", 100000, 0);
      write_limit(run.cgroups[i], "cpu.cfs_quota_us", run.cpu_quota, 0);
    }
    if (has_controller(options, "pids"))
      write_limit(run.cgroups[i], "pids.max", run.pids, 0);
  }
  lock = open(run.cgroups[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock < 0 || flock(lock, LOCK_SH) != 0)
    die("flock", run.cgroups[0]);
  return lock;
}

/* ch7 step 0, in the child (cgroup::container::enter, v1): this thread,
   the process's only one, moves itself into every tree's cgroup: 0 written
   to its tasks file. */
static void enter_cgroups(void) {
  char path[700];
  for (int i = 0; i < run.ntrees; i++) {
    fmt(path, sizeof path, "%s/tasks", run.cgroups[i]);
    write_file(path, O_TRUNC, "0");
  }
}

/* ch7 after_exit: the empty cgroups removed, then PARENT where no other
   container is left in it. */
static void remove_cgroups(void) {
  for (int i = 0; i < run.ntrees; i++)
    if (rmdir(run.cgroups[i]) != 0)
      die("rmdir", run.cgroups[i]);
  for (int i = 0; i < run.ntrees; i++) {
    char parent[512];
    fmt(parent, sizeof parent, "%s/%s", run.trees[i].mount_point, run.cgroup_parent);
    if (rmdir(parent) != 0 && errno != EBUSY)
      die("rmdir", parent);
  }
}

/* The filters seccomp-dump wrote: for each, its length (uint32) and its
   instructions. */
static void read_filters(void) {
  static char buf[1 << 16];
  int fd = open(run.filters_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("open", run.filters_path);
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0)
    die("read", run.filters_path);
  close(fd);
  for (ssize_t at = 0; at + 4 <= n && run.nfilters < MAX_FILTERS;) {
    uint32_t len;
    memcpy(&len, buf + at, 4);
    at += 4;
    if (at + (ssize_t)(len * sizeof(struct sock_filter)) > n)
      break;
    run.filters[run.nfilters].len = (unsigned short)len;
    run.filters[run.nfilters].filter = (struct sock_filter *)(buf + at);
    run.nfilters++;
    at += len * sizeof(struct sock_filter);
  }
  if (!run.nfilters) {
    errno = EINVAL;
    die("read seccomp filters from", run.filters_path);
  }
}

/* seccomp-dump PID FILE: the filters of PID, oldest first. The tracee must
   be stopped for PTRACE_SECCOMP_GET_FILTER: seized, interrupted, let go. */
static int seccomp_dump(pid_t pid, const char *path) {
  static struct sock_filter insns[BPF_MAXINSNS];
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0)
    die("ptrace(PTRACE_SEIZE)", "");
  if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0 || waitpid(pid, NULL, __WALL) != pid)
    die("ptrace(PTRACE_INTERRUPT)", "");
  FILE *out = fopen(path, "w");
  if (!out)
    die("fopen", path);
  int count = 0;
  for (long i = 0;; i++) {
    long len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, NULL);
    if (len < 0 && errno == ENOENT)
      break;
    if (len < 0 || len > BPF_MAXINSNS ||
        ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)i, insns) != len)
      die("ptrace(PTRACE_SECCOMP_GET_FILTER)", path);
    uint32_t n = (uint32_t)len;
    if (fwrite(&n, 4, 1, out) != 1 || fwrite(insns, sizeof *insns, n, out) != n)
      die("fwrite", path);
    printf("%ld\n", len); /* one line per filter: its length */
    count++;
  }
  if (fclose(out) != 0)
    die("fclose", path);
  ptrace(PTRACE_DETACH, pid, 0, 0);
  if (!count) {
    errno = ENOENT;
    die("find a seccomp filter of pid", "");
  }
  return 0;
}

/* Ctrl-C and friends go to the child, as the chapters pass them on. */
static void forward(int signal) {
  if (child_pid > 0)
    kill(child_pid, signal);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "seccomp-dump"))
    return seccomp_dump((pid_t)atoi(argv[2]), argv[3]);
  if (argc < 2 || strncmp(argv[1], "ch", 2) || argv[1][2] < '1' || argv[1][2] > '7' || argv[1][3])
    usage();
  run.mode = (enum mode)(argv[1][2] - '0');
  int opt;
  optind = 2;
  while ((opt = getopt(argc, argv, "+R:r:l:v:s:g:m:c:p:")) != -1) {
    switch (opt) {
    case 'R': run.rootfs = optarg; break;
    case 'r': run.root = optarg; break;
    case 'l': run.layer = optarg; break;
    case 's': run.filters_path = optarg; break;
    case 'g': run.cgroup_parent = optarg; break;
    case 'm': run.memory = atoll(optarg); break;
    case 'c': run.cpu_quota = atoll(optarg); break;
    case 'p': run.pids = atoll(optarg); break;
    case 'v': {
      char *colon = strchr(optarg, ':');
      if (!colon || colon[1] != '/' || run.volumes == MAX_VOLUMES)
        usage();
      *colon = '\0';
      run.volume_src[run.volumes] = optarg;
      run.volume_dst[run.volumes++] = colon + 1;
      break;
    }
    default: usage();
    }
  }
  if (optind >= argc)
    usage();
  run.argv = argv + optind;
  if ((run.mode == CH2 && !run.rootfs) || (run.mode >= CH3 && (!run.root || !run.layer)) ||
      (run.mode >= CH6 && !run.filters_path) ||
      (run.mode == CH7 && (!run.cgroup_parent || !run.memory || !run.cpu_quota || !run.pids)))
    usage();

  pid_t self = getpid();
  fmt(run.name, sizeof run.name, "lb-%d", (int)self);
  fmt(run.id, sizeof run.id, "%012x", (unsigned)self);
  fmt(run.hostname, sizeof run.hostname, "%s", run.mode >= CH5 ? run.name : "stepbox");
  int layer_lock = -1, cgroup_lock = -1;
  unsigned long long my_start = 0;
  long long created = (long long)time(NULL);

  if (run.mode == CH2)
    fmt(run.merged, sizeof run.merged, "%s", run.rootfs);
  if (run.mode >= CH3) {
    /* ch3 step 1: the layer read-locked (flock shared) while we run, so no
       `rmi` removes it under our overlay. */
    layer_lock = open(run.layer, O_RDONLY | O_CLOEXEC);
    if (layer_lock < 0 || flock(layer_lock, LOCK_SH) != 0)
      die("flock", run.layer);
    fmt(run.dir, sizeof run.dir, "%s/containers/%s", run.root, run.name);
    fmt(run.merged, sizeof run.merged, "%s/merged", run.dir);
    char path[4200];
    if (run.mode <= CH4) {
      /* ch3 step 2: the write layer made under tmp/, with run.json (who
         runs it), then renamed into containers/ whole. */
      char tmp[4200], text[128];
      fmt(tmp, sizeof tmp, "%s/tmp/run-%d-0", run.root, (int)self);
      if (mkdir(tmp, 0700) != 0)
        die("mkdir", tmp);
      mkdir_in(tmp, "upper", 0755, path, sizeof path);
      mkdir_in(tmp, "work", 0755, path, sizeof path);
      mkdir_in(tmp, "merged", 0755, path, sizeof path);
      my_start = start_time(self);
      fmt(text, sizeof text, "{\"pid\":%d,\"start_time\":%llu}", (int)self, my_start);
      fmt(path, sizeof path, "%s/run.json", tmp);
      write_file(path, O_CREAT | O_TRUNC, text);
      if (rename(tmp, run.dir) != 0)
        die("rename", tmp);
    } else {
      /* ch5 create: containers/NAME, state.json ("created", and run --rm's
         remover), then the write layer. */
      if (mkdir(run.dir, 0700) != 0)
        die("mkdir", run.dir);
      my_start = start_time(self);
      write_state("created", 0, 0, my_start, created);
      mkdir_in(run.dir, "upper", 0755, path, sizeof path);
      mkdir_in(run.dir, "work", 0755, path, sizeof path);
      mkdir_in(run.dir, "merged", 0755, path, sizeof path);
    }
  }
  /* ch2 step 2: stdin no terminal, so no pty. */
  isatty(0);
  if (run.mode >= CH6)
    read_filters();
  if (run.mode == CH7) {
    find_trees();
    cgroup_lock = create_cgroups();
  }

  /* process::spawn: the go pipe and the exec report, then the clone into
     the chapter's namespaces. */
  unsigned long flags = CLONE_NEWNS;
  if (run.mode >= CH2)
    flags |= CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
  if (pipe2(go_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0)
    die("pipe2", "");
  pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
  if (pid < 0)
    die("clone", "");
  if (pid == 0)
    _exit(child_main());
  child_pid = pid;
  close(go_pipe[0]);
  close(exec_pipe[1]);
  struct sigaction forwarding = {.sa_handler = forward, .sa_flags = SA_RESTART};
  sigaction(SIGINT, &forwarding, NULL);
  sigaction(SIGTERM, &forwarding, NULL);
  sigaction(SIGHUP, &forwarding, NULL);
  if (write(go_pipe[1], "g", 1) != 1)
    die("write", "go pipe");
  /* The exec report: end of file once the child has exec'd (or died). */
  char report[32];
  while (read(exec_pipe[0], report, sizeof report) > 0) {
  }
  close(exec_pipe[0]);
  close(go_pipe[1]);
  if (run.mode >= CH5) {
    /* ch5 start: state.json "running", with the command's pid and start
       time, under the lock. */
    unsigned long long child_start = start_time(pid);
    int lock = lock_state();
    write_state("running", pid, child_start, my_start, created);
    unlock_state(lock);
  }

  /* ch1 step 3: wait; exit with its code. */
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      die("waitpid", "");
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  if (run.mode >= CH5) {
    /* ch5 exit (run --rm): state.json read under the lock; ch7's cgroups
       removed; then the container's directory. */
    int lock = lock_state();
    if (run.mode == CH7) {
      remove_cgroups();
      close(cgroup_lock);
    }
    unlock_state(lock);
  }
  if (run.mode >= CH3) {
    /* ch3 step 3: the write layer thrown away. */
    char containers[4200];
    fmt(containers, sizeof containers, "%s/containers", run.root);
    int dir = open(containers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
      die("open", containers);
    remove_tree(dir, run.name);
    close(dir);
    close(layer_lock);
  }
  return code;
}
