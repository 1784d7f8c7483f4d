/*
 * The escape lab (docs/ch6-security.md#the-escape-lab): known ways out of a
 * container, each tried from inside, none of them destructive. Files are
 * only opened for writing, never written; devices are only read; what is
 * mounted is unmounted again; capabilities are looked at, never used.
 *
 * Built by tests/escape_lab.rs with `gcc -static` (a busybox image has no
 * C library) and run inside a container from a volume:
 *
 *   escapes VOLUME HANDLE_TYPE HANDLE_HEX BLOCK_DEV HOST_PID
 *
 * VOLUME      the volume the program runs from (mounted :ro)
 * HANDLE_*    a file handle (name_to_handle_at(2)) of a host file outside the
 *             volume, on the same filesystem: shocker guessed it by brute
 *             force, the test hands it over to keep the lab quick
 * BLOCK_DEV   MAJOR:MINOR of the host's disk holding the volume, or -
 * HOST_PID    a host process outside the container (the test itself)
 *
 * Prints one line per escape: NAME <tab> ESCAPED|CONTAINED|NOT-RUN <tab> proof.
 *
 * On the host, `escapes --handle PATH` prints PATH's handle: TYPE HEX.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void verdict(const char *name, const char *verdict, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void verdict(const char *name, const char *what, const char *fmt, ...)
{
    char proof[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(proof, sizeof proof, fmt, ap);
    va_end(ap);
    /* Never a raw control byte on the terminal. */
    for (char *p = proof; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '.';
    printf("%s\t%s\t%s\n", name, what, proof);
    fflush(stdout);
}

/* The file-open escapes: opened for writing means the hole is open. */
static void open_for_writing(const char *name, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        verdict(name, "ESCAPED", "open(%s, O_WRONLY) = %d (nothing written)", path, fd);
    } else if (errno == ENOENT) {
        verdict(name, "NOT-RUN", "%s: this kernel has no such file", path);
    } else {
        verdict(name, "CONTAINED", "open(%s, O_WRONLY): %s", path, strerror(errno));
    }
}

/* CVE-2014-3519's shocker: open_by_handle_at reaches any file of the
 * volume's filesystem, outside the volume too, given its handle. */
static void shocker(const char *volume, const char *type, const char *hex)
{
    struct {
        struct file_handle handle;
        unsigned char bytes[128];
    } h;
    size_t n = strlen(hex) / 2;
    if (n > sizeof h.bytes) {
        verdict("open_by_handle_at", "NOT-RUN", "the handle is too long");
        return;
    }
    h.handle.handle_bytes = n;
    h.handle.handle_type = atoi(type);
    for (size_t i = 0; i < n; i++)
        sscanf(hex + 2 * i, "%2hhx", &h.handle.f_handle[i]);
    int mount_fd = open(volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mount_fd < 0) {
        verdict("open_by_handle_at", "NOT-RUN", "open(%s): %s", volume, strerror(errno));
        return;
    }
    int fd = open_by_handle_at(mount_fd, &h.handle, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        verdict("open_by_handle_at", "CONTAINED", "open_by_handle_at(%s, handle): %s", volume,
                strerror(errno));
        return;
    }
    char buf[64] = {0};
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    verdict("open_by_handle_at", "ESCAPED", "read %zd bytes of a host file outside the volume: %s",
            got, buf);
}

/* Make a device node where the container can write, and open it. */
static int made_device(const char *name, mode_t type, dev_t dev, int flags, char *err, size_t len)
{
    const char *dirs[] = {"/dev", "/", "/tmp"};
    err[0] = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/.escape-%s", strcmp(dirs[i], "/") ? dirs[i] : "", name);
        unlink(path);
        if (mknod(path, type | 0600, dev) != 0) {
            snprintf(err + strlen(err), len - strlen(err), "%smknod(%s): %s", err[0] ? "; " : "",
                     path, strerror(errno));
            continue;
        }
        int fd = open(path, flags | O_CLOEXEC);
        int saved = errno;
        unlink(path);
        if (fd >= 0)
            return fd;
        snprintf(err + strlen(err), len - strlen(err), "%smknod(%s) = 0, open: %s",
                 err[0] ? "; " : "", path, strerror(saved));
    }
    return -1;
}

static void block_device(const char *spec)
{
    unsigned major_no, minor_no;
    if (sscanf(spec, "%u:%u", &major_no, &minor_no) != 2) {
        verdict("mknod-block-device", "NOT-RUN", "the volume is on no block device");
        return;
    }
    char err[400];
    int fd = made_device("disk", S_IFBLK, makedev(major_no, minor_no), O_RDONLY, err, sizeof err);
    if (fd < 0) {
        verdict("mknod-block-device", "CONTAINED", "%s", err);
        return;
    }
    unsigned char magic[2] = {0};
    ssize_t got = pread(fd, magic, 2, 1080);
    close(fd);
    verdict("mknod-block-device", "ESCAPED",
            "read the host's disk %u:%u: %zd bytes at 1080 = %02x%02x%s", major_no, minor_no, got,
            magic[1], magic[0],
            magic[0] == 0x53 && magic[1] == 0xef ? " (the ext4 superblock's magic)" : "");
}

static void kmsg(void)
{
    char err[400];
    int fd = made_device("kmsg", S_IFCHR, makedev(1, 11), O_RDONLY | O_NONBLOCK, err, sizeof err);
    if (fd < 0) {
        verdict("mknod-dev-kmsg", "CONTAINED", "%s", err);
        return;
    }
    char record[256] = {0};
    ssize_t got = read(fd, record, sizeof record - 1);
    close(fd);
    if (got < 0) {
        verdict("mknod-dev-kmsg", "CONTAINED", "opened, but read: %s", strerror(errno));
        return;
    }
    record[got > 60 ? 60 : got] = 0;
    verdict("mknod-dev-kmsg", "ESCAPED", "read the host's kernel log: %s", record);
}

static void try_mount(const char *name, const char *fstype, const char *proof_file)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/.escape-%s", fstype);
    mkdir(dir, 0700);
    if (mount(fstype, dir, fstype, 0, NULL) != 0) {
        verdict(name, "CONTAINED", "mount(\"%s\", \"%s\", \"%s\", 0, NULL): %s", fstype, dir,
                fstype, strerror(errno));
        rmdir(dir);
        return;
    }
    char path[128], line[160] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, proof_file);
    DIR *listing = opendir(path);
    FILE *f = listing ? NULL : fopen(path, "r");
    if (listing) {
        /* A directory: its first few names. */
        struct dirent *entry;
        while ((entry = readdir(listing)) && strlen(line) < 100)
            if (entry->d_name[0] != '.')
                snprintf(line + strlen(line), sizeof line - strlen(line), "%s ", entry->d_name);
        closedir(listing);
    } else if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
    }
    line[strcspn(line, "\n")] = 0;
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    verdict(name, "ESCAPED", "mounted %s on %s (unmounted again): %s: %s", fstype, dir, proof_file,
            line);
}

static void remount_rw(const char *volume)
{
    struct statvfs before, after;
    if (statvfs(volume, &before) != 0 || !(before.f_flag & ST_RDONLY)) {
        verdict("remount-ro-volume", "NOT-RUN", "%s is not mounted read-only", volume);
        return;
    }
    if (mount(NULL, volume, NULL, MS_REMOUNT | MS_BIND, NULL) != 0) {
        verdict("remount-ro-volume", "CONTAINED",
                "mount(NULL, \"%s\", NULL, MS_REMOUNT|MS_BIND, NULL): %s", volume,
                strerror(errno));
        return;
    }
    statvfs(volume, &after);
    verdict("remount-ro-volume", after.f_flag & ST_RDONLY ? "CONTAINED" : "ESCAPED",
            "mount(NULL, \"%s\", NULL, MS_REMOUNT|MS_BIND, NULL) = 0: %s", volume,
            after.f_flag & ST_RDONLY ? "still read-only" : "read-write now (nothing written)");
}

static void host_caps(void)
{
    char line[256];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        sscanf(line, "CapEff: %llx", &eff);
    if (f)
        fclose(f);
    /* 0 0 4294967295: the host's own user namespace. */
    int host_ns = 0;
    f = fopen("/proc/self/uid_map", "r");
    unsigned long inside, outside, count;
    if (f && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
        host_ns = inside == 0 && outside == 0 && count == 4294967295UL;
    if (f)
        fclose(f);
    const struct { int bit; const char *name; } caps[] = {
        {16, "CAP_SYS_MODULE"}, {25, "CAP_SYS_TIME"}, {12, "CAP_NET_ADMIN"}};
    char held[128] = "";
    for (size_t i = 0; i < 3; i++)
        if (eff & (1ULL << caps[i].bit))
            snprintf(held + strlen(held), sizeof held - strlen(held), " %s", caps[i].name);
    if (held[0] && host_ns)
        verdict("host-capabilities", "ESCAPED", "CapEff %016llx in the host's user namespace:%s",
                eff, held);
    else if (held[0])
        verdict("host-capabilities", "CONTAINED",
                "CapEff %016llx, but in a user namespace of its own: none counts on the host",
                eff);
    else
        verdict("host-capabilities", "CONTAINED",
                "CapEff %016llx: no CAP_SYS_MODULE, CAP_SYS_TIME or CAP_NET_ADMIN", eff);
}

static void tiocsti(void)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        verdict("tiocsti", "CONTAINED", "open(/dev/tty): %s (no controlling terminal)",
                strerror(errno));
        return;
    }
    /* Never injected: whose terminal is it? */
    char name[64] = "?";
    ttyname_r(fd, name, sizeof name);
    close(fd);
    verdict("tiocsti", strncmp(name, "/dev/pts/", 9) == 0 ? "CONTAINED" : "ESCAPED",
            "the controlling terminal is %s", name);
}

static void ptrace_outside(const char *host_pid)
{
    char path[64], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/%s/comm", host_pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
    }
    comm[strcspn(comm, "\n")] = 0;
    if (strncmp(comm, "escape_lab", 10) == 0)
        verdict("ptrace-outside", "ESCAPED", "%s is the host's test process: %s", path, comm);
    else
        verdict("ptrace-outside", "CONTAINED",
                "host pid %s is not in this pid namespace (%s)", host_pid,
                comm[0] ? comm : "no such process");
}

/* On the host: the handle of `path`, as shocker would have guessed it. */
static int print_handle(const char *path)
{
    struct {
        struct file_handle handle;
        unsigned char bytes[128];
    } h;
    int mount_id;
    h.handle.handle_bytes = sizeof h.bytes;
    if (name_to_handle_at(AT_FDCWD, path, &h.handle, &mount_id, 0) != 0) {
        perror("name_to_handle_at");
        return 1;
    }
    printf("%d ", h.handle.handle_type);
    for (unsigned i = 0; i < h.handle.handle_bytes; i++)
        printf("%02x", h.handle.f_handle[i]);
    printf("\n");
    return 0;
}

/* `escapes --syscalls`: the calls Docker's profile filters by argument,
 * each tried once: NAME <tab> 0 or the errno's name. */
static void report(const char *name, long rc)
{
    printf("%s\t%s\n", name, rc >= 0 ? "ok" : strerrorname_np(errno));
}

static int syscalls(void)
{
    report("personality(0xffffffff)", syscall(SYS_personality, 0xffffffffUL));
    report("personality(ADDR_NO_RANDOMIZE)", syscall(SYS_personality, 0x0040000UL));
    long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    report("socket(AF_UNIX)", fd);
    if (fd >= 0)
        close(fd);
    report("socket(AF_VSOCK)", syscall(SYS_socket, 40, SOCK_STREAM, 0));
    /* The same family with bit 32 set: the kernel reads an int (AF_VSOCK),
     * a filter that compares all 64 bits sees a family above 40. */
    report("socket(2^32 + AF_VSOCK)", syscall(SYS_socket, (1UL << 32) | 40, SOCK_STREAM, 0));
    /* Would make a child: flags that make clone fail first if it is allowed. */
    report("clone(CLONE_NEWNS|CLONE_NEWUSER|CLONE_THREAD)",
           syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWUSER | CLONE_THREAD, 0, 0, 0, 0));
    report("clone3(NULL, 0)", syscall(SYS_clone3, 0, 0));
    report("unshare(CLONE_NEWUSER)", syscall(SYS_unshare, CLONE_NEWUSER));
    report("keyctl(KEYCTL_GET_KEYRING_ID)", syscall(SYS_keyctl, 0, -1, 0));
    report("mkdir(/tmp/made)", syscall(SYS_mkdir, "/tmp/made", 0755));
    /* The same call by its x32 number (bit 30 set). */
    report("x32 mkdir(/tmp/made32)", syscall(0x40000000 | SYS_mkdir, "/tmp/made32", 0755));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--syscalls") == 0)
        return syscalls();
    /* clone3 alone: under a profile whose default kills, nothing else. */
    if (argc == 2 && strcmp(argv[1], "--clone3") == 0) {
        report("clone3(NULL, 0)", syscall(SYS_clone3, 0, 0));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--handle") == 0)
        return print_handle(argv[2]);
    if (argc != 6) {
        fprintf(stderr, "usage: %s VOLUME HANDLE_TYPE HANDLE_HEX BLOCK_DEV HOST_PID\n", argv[0]);
        return 2;
    }
    const char *volume = argv[1];
    shocker(volume, argv[2], argv[3]);
    block_device(argv[4]);
    kmsg();
    open_for_writing("core_pattern", "/proc/sys/kernel/core_pattern");
    open_for_writing("sysrq-trigger", "/proc/sysrq-trigger");
    open_for_writing("drop_caches", "/proc/sys/vm/drop_caches");
    try_mount("mount-sysfs", "sysfs", "block");
    try_mount("mount-cgroup2", "cgroup2", "cgroup.controllers");
    try_mount("mount-proc", "proc", "sys/kernel/core_pattern");
    host_caps();
    tiocsti();
    ptrace_outside(argv[5]);
    /* Last: it makes the volume read-write for the rest of this container. */
    remount_rw(volume);
    return 0;
}
