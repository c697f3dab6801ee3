/*
 * hoist-sandbox: the few things hoist cannot do from Node.
 *
 *   hoist-sandbox enter -- CMD...
 *     Runs CMD as root of a new user namespace whose maps cover the caller's /etc/subuid and
 *     /etc/subgid ranges (set by newuidmap/newgidmap), in a private mount namespace. Without a
 *     range, only the caller's own ids are mapped (one warning). Where the kernel refuses the
 *     user namespace, CMD runs as the caller, with HOIST_USERNS_REFUSED saying why.
 *
 *   hoist-sandbox probe
 *     Exits 0 when `run` could set a step up here, else prints the setup step refused.
 *
 *   hoist-sandbox xattrs DIR
 *     Lists the extended attributes of everything under DIR (not following symlinks, not crossing
 *     into other mounts) as
 *     NUL-terminated fields: path, name, value in hex; Node has no call for them.
 *
 *   hoist-sandbox xattrs-of
 *     The same for the paths read from standard input (NUL-terminated), and nothing below them.
 *
 *   hoist-sandbox setxattrs
 *     Sets extended attributes read from standard input in the same form.
 *
 *   hoist-sandbox run [OPTIONS] -- CMD...
 *     Runs one RUN step: new mount, pid, ipc and uts namespaces (and net with --network none);
 *     the root an overlay of the --lower DIR dirs (one option each, topmost first) under a fresh
 *     --upper (or, with --copied-root, the --rootfs directory itself, which hoist filled); /proc, a
 *     minimal /dev, then the mounts in the order given: --bind SRC DST, --ro-bind SRC DST (files or
 *     directories) and --tmpfs DST BYTES (0: the kernel's default size); pivot_root; then the
 *     user, the --group GID groups (one option each), directory and environment; no_new_privs
 *     when the user is root. --shm-size BYTES sizes /dev/shm (64 MiB by default, as Docker's);
 *     --rlimit NAME=SOFT:HARD (one option each; NAME as ulimit's: nofile, nproc, core, ...; -1
 *     for unlimited) sets a resource limit of the step. Every path is an argument of its own, so any character may appear in
 *     it. The step's end is written to --status-fd as "exit N", "signal N", or "no-overlay" when
 *     overlay is unavailable.
 *     Every other descriptor the helper inherits is closed first, and pid 1 holds none of hoist's.
 *     The step's environment is read from --env-fd (NUL-terminated KEY=VALUE entries until end of
 *     file), never from the command line: every local user can read a process's command line, and
 *     the environment holds secrets. The command is found on the step's own PATH.
 *     With --in-place yes (no --rootfs, mounts or network): no namespaces and no mounts, the step
 *     runs in this process's own root, as a locked-down container allows; the helper is the
 *     step's subreaper and kills what it leaves behind.
 *
 * Setup is a list of steps applied in order; every call is checked, and a failure ends the
 * program with the step that failed and why.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <ftw.h>
#include <unistd.h>

/* The mount API of Linux 5.2 (open_tree, move_mount) and 5.12 (mount_setattr), for C libraries
 * older than glibc 2.36, which declare none of it. */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
struct mount_attr {
  unsigned long long attr_set, attr_clr, propagation, userns_fd;
};
#endif

__attribute__((noreturn)) static void die(const char *format, ...) {
  va_list args;
  int saved = errno;
  va_start(args, format);
  fputs("hoist-sandbox: ", stderr);
  vfprintf(stderr, format, args);
  if (saved) fprintf(stderr, ": %s", strerror(saved));
  fputc('\n', stderr);
  va_end(args);
  exit(125);
}

/* Makes room for one more item in a list of `count` items (of `size` bytes) that has room for `*capacity`. */
static void *make_room(void *items, size_t count, size_t *capacity, size_t size, const char *what) {
  if (count < *capacity) return items;
  *capacity = *capacity ? 2 * *capacity : 16;
  items = reallocarray(items, *capacity, size);
  if (!items) die("allocate %s", what);
  return items;
}

static void write_file(const char *path, const char *content) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", path);
  if (write(fd, content, strlen(content)) != (ssize_t)strlen(content)) die("write %s", path);
  close(fd);
}

/* ---- enter ------------------------------------------------------------------------------- */

/* Finds the caller's range in /etc/subuid or /etc/subgid (by name or by number). */
static int find_range(const char *file, const char *name, unsigned long id, unsigned long *start, unsigned long *count) {
  FILE *f = fopen(file, "re");
  char line[512];
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    char who[256];
    unsigned long s, c;
    if (sscanf(line, "%255[^:]:%lu:%lu", who, &s, &c) != 3) continue;
    char *end;
    unsigned long numeric = strtoul(who, &end, 10);
    if (strcmp(who, name) == 0 || (*end == '\0' && numeric == id)) {
      *start = s;
      *count = c;
      fclose(f);
      return 1;
    }
  }
  fclose(f);
  return 0;
}

static void run_tool(char *const argv[]) {
  pid_t pid = fork();
  int status;
  if (pid < 0) die("fork for %s", argv[0]);
  if (pid == 0) {
    execvp(argv[0], argv);
    die("exec %s (is the uidmap package installed?)", argv[0]);
  }
  if (waitpid(pid, &status, 0) < 0) die("wait for %s", argv[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = 0;
    die("%s failed: check the ranges in /etc/subuid and /etc/subgid", argv[0]);
  }
}

static int enter(char **command) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  struct passwd *pw = getpwuid(uid);
  const char *name = pw ? pw->pw_name : "";
  unsigned long uid_start, uid_count, gid_start, gid_count;
  int ranged = find_range("/etc/subuid", name, uid, &uid_start, &uid_count) && find_range("/etc/subgid", name, uid, &gid_start, &gid_count);
  int ready[2];
  char c;

  if (pipe2(ready, O_CLOEXEC) < 0) die("pipe");
  pid_t helper = fork();
  if (helper < 0) die("fork");
  if (helper == 0) {
    /* The child maps the parent once it has its new user namespace. */
    pid_t parent = getppid();
    char pid_text[32], uid_text[32], gid_text[32], us[32], uc[32], gs[32], gc[32];
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1) _exit(1);
    snprintf(pid_text, sizeof pid_text, "%d", parent);
    snprintf(uid_text, sizeof uid_text, "%u", uid);
    snprintf(gid_text, sizeof gid_text, "%u", gid);
    if (ranged) {
      snprintf(us, sizeof us, "%lu", uid_start);
      snprintf(uc, sizeof uc, "%lu", uid_count);
      snprintf(gs, sizeof gs, "%lu", gid_start);
      snprintf(gc, sizeof gc, "%lu", gid_count);
      char *uidmap[] = {"newuidmap", pid_text, "0", uid_text, "1", "1", us, uc, NULL};
      char *gidmap[] = {"newgidmap", pid_text, "0", gid_text, "1", "1", gs, gc, NULL};
      run_tool(uidmap);
      run_tool(gidmap);
    } else {
      char path[64], map[64];
      snprintf(path, sizeof path, "/proc/%d/setgroups", parent);
      write_file(path, "deny");
      snprintf(path, sizeof path, "/proc/%d/uid_map", parent);
      snprintf(map, sizeof map, "0 %u 1\n", uid);
      write_file(path, map);
      snprintf(path, sizeof path, "/proc/%d/gid_map", parent);
      snprintf(map, sizeof map, "0 %u 1\n", gid);
      write_file(path, map);
    }
    _exit(0);
  }

  close(ready[0]);
  if (unshare(CLONE_NEWUSER) < 0) {
    /* Refused (a locked-down container, a sysctl): hoist runs as the user, without RUN, and says why. */
    char reason[160];
    snprintf(reason, sizeof reason, "unshare(CLONE_NEWUSER): %s", strerror(errno));
    close(ready[1]);
    waitpid(helper, NULL, 0);
    setenv("HOIST_USERNS_REFUSED", reason, 1);
    execvp(command[0], command);
    die("exec %s", command[0]);
  }
  if (write(ready[1], "x", 1) != 1) die("signal the mapper");
  close(ready[1]);
  int status;
  if (waitpid(helper, &status, 0) < 0) die("wait for the mapper");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = 0;
    die("mapping ids into the user namespace failed");
  }
  if (!ranged) {
    fprintf(stderr, "hoist: warning: no range for %s in /etc/subuid and /etc/subgid: only your own ids are mapped, so files owned by other users cannot be made\n", *name ? name : "you");
  }
  if (setresgid(0, 0, 0) < 0) die("setresgid 0");
  if (setresuid(0, 0, 0) < 0) die("setresuid 0");
  if (ranged && setgroups(0, NULL) < 0) die("setgroups");
  if (unshare(CLONE_NEWNS) < 0) die("unshare mount namespace");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
  setenv("HOIST_USERNS", "1", 1);
  execvp(command[0], command);
  die("exec %s", command[0]);
  return 125;
}

/* ---- run --------------------------------------------------------------------------------- */

/* A --bind, --ro-bind or --tmpfs. */
struct mount_item {
  enum { BIND, READ_ONLY_BIND, TMPFS } kind;
  const char *source, *target;
  /* Of a tmpfs, in bytes; 0 for the kernel's default. */
  unsigned long size;
};

/* A --rlimit: which resource, and its soft and hard limits. */
struct step_limit {
  int resource;
  struct rlimit value;
};

struct run_options {
  const char *rootfs, *upper, *work, *cwd, *hostname, *network;
  const char **lowers;
  size_t lower_count, lower_capacity;
  int copied_root;
  /* No namespaces and no mounts: the step runs in this process's own root (a locked-down container). */
  int in_place;
  /* In the order given: a mount inside another's target comes after it. */
  struct mount_item *mounts;
  size_t mount_count, mount_capacity;
  char **env;
  gid_t *groups;
  size_t group_count, group_capacity;
  uid_t uid;
  gid_t gid;
  int status_fd;
  /* Only one gid is mapped (see mapped_ids): setgroups is then denied. */
  int single_gid;
  unsigned long long shm_size;
  struct step_limit *limits;
  size_t limit_count, limit_capacity;
};

/* Reads the step's environment from `fd` (see run above) into a NULL-terminated array, and closes it. */
static char **read_env(int fd) {
  size_t count = 0, capacity = 0;
  char **env = NULL;
  FILE *input = fdopen(fd, "r");
  if (!input) die("open --env-fd %d", fd);
  for (;;) {
    char *entry = NULL;
    size_t size = 0;
    if (getdelim(&entry, &size, '\0', input) < 0) {
      if (!feof(input)) die("read --env-fd %d", fd);
      free(entry);
      break;
    }
    /* The entry itself is not shown: it may be a secret. */
    if (!strchr(entry, '=')) {
      errno = 0;
      die("environment entry %zu has no '='", count + 1);
    }
    env = make_room(env, count, &capacity, sizeof *env, "the environment");
    env[count++] = entry;
  }
  if (fclose(input) != 0) die("close --env-fd %d", fd);
  env = make_room(env, count, &capacity, sizeof *env, "the environment");
  env[count] = NULL;
  return env;
}

static void make_file(const char *path, mode_t mode) {
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) die("create %s", path);
  close(fd);
}

/* Opens `path` inside `root` as if root were "/": symlinks cannot lead out of it. */
static int open_in_root(int root, const char *path, int flags) {
  struct open_how how = {.flags = (unsigned long long)(flags | O_PATH | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/') path++;
  return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

/* The mount point `target` inside the root, found once (O_PATH). A target under /dev (the step's
 * own tmpfs) is made first when missing, with its directories: that is where heredoc scripts go. */
static int mount_point(int root, const char *rootfs, const char *target) {
  int fd = open_in_root(root, target, 0);
  if (fd < 0 && errno == ENOENT && !strncmp(target, "/dev/", 5) && !strstr(target, "..")) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", rootfs, target);
    for (char *slash = strchr(path + strlen(rootfs) + 5, '/'); slash; slash = strchr(slash + 1, '/')) {
      *slash = '\0';
      if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir %s", path);
      *slash = '/';
    }
    make_file(path, 0755);
    fd = open_in_root(root, target, 0);
  }
  if (fd < 0) die("find mount point %s in the root filesystem", target);
  return fd;
}

/* Bind-mounts `source` onto `target` inside the root, read-only if asked (recursively, as
 * BuildKit's are). The mount is made whole, detached, and then moved onto the mount point found
 * once: nothing looks the target's path up a second time, which a step sharing a cache could
 * meanwhile point elsewhere with a symlink (BuildKit CVE-2024-23651). */
static void bind_in_root(int root, const char *rootfs, const char *source, const char *target, int read_only) {
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) die("bind %s to %s", source, target);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
  if (read_only && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) die("make %s read-only", target);
  int fd = mount_point(root, rootfs, target);
  if (syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) die("bind %s to %s", source, target);
  close(fd);
  close(tree);
}

static void mount_in_root(int root, const char *type, const char *target, unsigned long flags, const char *data) {
  char fd_path[64];
  int fd = open_in_root(root, target, O_DIRECTORY);
  if (fd < 0) die("find mount point %s in the root filesystem", target);
  snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
  if (mount(type, fd_path, type, flags, data) < 0) die("mount %s on %s", type, target);
  close(fd);
}

static void apply_mount(int root, const char *rootfs, const struct mount_item *mount) {
  if (mount->kind == TMPFS) {
    char data[64] = "mode=1777";
    if (mount->size) snprintf(data, sizeof data, "mode=1777,size=%lu", mount->size);
    mount_in_root(root, "tmpfs", mount->target, MS_NOSUID | MS_NODEV, data);
    return;
  }
  bind_in_root(root, rootfs, mount->source, mount->target, mount->kind == READ_ONLY_BIND);
}

/* Writes `path` as overlayfs reads a directory in its options: ':', ',' and '\' escaped by a '\'. */
static void put_overlay_path(FILE *out, const char *path) {
  for (; *path; path++) {
    if (strchr(":,\\", *path)) fputc('\\', out);
    fputc(*path, out);
  }
}

/* The overlay's mount options, which the kernel reads one page of at most (it cuts the rest). */
static char *overlay_options(const struct run_options *o) {
  char *data = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&data, &size);
  if (!out) die("open_memstream for the overlay options");
  fputs("lowerdir=", out);
  for (size_t i = 0; i < o->lower_count; i++) {
    if (i > 0) fputc(':', out);
    put_overlay_path(out, o->lowers[i]);
  }
  fputs(",upperdir=", out);
  put_overlay_path(out, o->upper);
  fputs(",workdir=", out);
  put_overlay_path(out, o->work);
  fputs(",userxattr", out);
  if (fclose(out) != 0) die("write the overlay options");
  if (size >= (size_t)sysconf(_SC_PAGESIZE)) {
    errno = 0;
    die("too many lower layers for one overlay mount");
  }
  return data;
}

/* A minimal /dev: a tmpfs with the host's harmless devices bound in, a private devpts and shm. */
static void setup_dev(const char *rootfs, unsigned long long shm_size) {
  static const char *devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
  char path[4096], source[64], shm_options[64];
  snprintf(path, sizeof path, "%s/dev", rootfs);
  if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k") < 0) die("mount tmpfs on /dev");
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
    snprintf(path, sizeof path, "%s/dev/%s", rootfs, devices[i]);
    snprintf(source, sizeof source, "/dev/%s", devices[i]);
    make_file(path, 0666);
    if (mount(source, path, NULL, MS_BIND, NULL) < 0) die("bind %s", source);
  }
  snprintf(path, sizeof path, "%s/dev/pts", rootfs);
  if (mkdir(path, 0755) < 0) die("mkdir /dev/pts");
  if (mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620") < 0) die("mount devpts");
  snprintf(path, sizeof path, "%s/dev/shm", rootfs);
  if (mkdir(path, 01777) < 0) die("mkdir /dev/shm");
  snprintf(shm_options, sizeof shm_options, "mode=1777,size=%llu", shm_size);
  if (mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV, shm_options) < 0) die("mount /dev/shm");
  static const char *links[][2] = {{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    snprintf(path, sizeof path, "%s/dev/%s", rootfs, links[i][1]);
    if (symlink(links[i][0], path) < 0) die("symlink /dev/%s", links[i][1]);
  }
}

/* A new network namespace has only a loopback device, and it starts down. */
static void bring_up_loopback(void) {
  struct ifreq request = {0};
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket for loopback");
  strcpy(request.ifr_name, "lo");
  if (ioctl(sock, SIOCGIFFLAGS, &request) < 0) die("read loopback flags");
  request.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &request) < 0) die("bring loopback up");
  close(sock);
}

/* mkdir -p, as root of the step: a RUN's working directory is made when missing, as BuildKit does. */
static void make_directories(const char *path) {
  char partial[4096];
  size_t length = strlen(path);
  if (length >= sizeof partial) die("working directory too long");
  for (size_t i = 1; i <= length; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    memcpy(partial, path, i);
    partial[i] = '\0';
    if (mkdir(partial, 0755) < 0 && errno != EEXIST) die("mkdir %s", partial);
  }
}

/* Whether the other end of pipe `fd` is gone: no reader of a write end (hoist), no writer of a read end. */
static int other_end_gone(int fd) {
  struct pollfd p = {.fd = fd, .events = 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

static pid_t command_pid;
/* A pipe whose write end only the helper's first process holds (see run). */
static int alive[2];

/* In place, a signal (hoist stopping the build, or dying: see run) ends the step at once. */
static int kill_on_signal;

static void forward_signal(int sig) {
  if (command_pid > 0) kill(command_pid, kill_on_signal ? SIGKILL : sig);
}

/* Closes every descriptor above 2 but `keep` (-1: none); one by one where a seccomp profile refuses close_range (Docker's before 20.10.7). */
static void close_inherited(int keep) {
  int closed = keep > 2 ? (keep == 3 || close_range(3, keep - 1, 0) == 0) && close_range(keep + 1, ~0U, 0) == 0 : close_range(3, ~0U, 0) == 0;
  if (closed) return;
  if (errno != ENOSYS && errno != EPERM) die("close inherited descriptors");
  DIR *fds = opendir("/proc/self/fd");
  if (!fds) die("open /proc/self/fd");
  struct dirent *entry;
  while ((entry = readdir(fds))) {
    int fd = (int)strtol(entry->d_name, NULL, 10);
    if (fd > 2 && fd != keep && fd != dirfd(fds)) close(fd);
  }
  closedir(fds);
}

/*
 * How the step ended, as its status line says it ("exit N", "signal N", "no-overlay"). Pid 1 writes
 * it into memory shared with the process that started it, which writes the line once pid 1 is
 * gone: pid 1 so holds no descriptor of hoist's, which the step could reach through /proc/1/fd.
 */
static char *step_end;
enum { STEP_END_SIZE = 32 };

__attribute__((format(printf, 1, 2))) static void set_step_end(const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(step_end, STEP_END_SIZE, format, args);
  va_end(args);
}

/* Writes the status line, if pid 1 (or, in place, this process) set one. */
static void write_step_end(int status_fd) {
  if (*step_end) dprintf(status_fd, "%s\n", step_end);
}

/*
 * Makes the step's working directory when missing and enters it, then checks that it lies inside
 * the step's root: a path through /proc (`WORKDIR /proc/self/fd/N`) could lead out of it (runc's
 * CVE-2024-21626), and getcwd names no path for a directory outside the root.
 */
static void enter_workdir(const char *cwd) {
  char here[4096];
  if (cwd) make_directories(cwd);
  if (chdir(cwd ? cwd : "/") < 0) die("chdir %s", cwd ? cwd : "/");
  if (!getcwd(here, sizeof here) || here[0] != '/') {
    errno = 0;
    die("the working directory %s is not inside the step's root", cwd ? cwd : "/");
  }
}

/* The pid in /proc/PID/stat's parent field, or -1. */
static pid_t parent_of(pid_t pid) {
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t length = read(fd, text, sizeof text - 1);
  close(fd);
  if (length <= 0) return -1;
  text[length] = '\0';
  /* "PID (COMM) STATE PPID ...": the name may hold spaces and parentheses, so from the last ')'. */
  char *end = strrchr(text, ')');
  int parent;
  return end && sscanf(end + 1, " %*c %d", &parent) == 1 ? parent : -1;
}

/*
 * In place there is no pid namespace whose end ends the step's processes: this process is their
 * subreaper (what they leave behind becomes its child), so it kills its children until none is left.
 */
static void end_descendants(void) {
  pid_t self = getpid();
  for (;;) {
    DIR *proc = opendir("/proc");
    if (!proc) die("open /proc");
    struct dirent *entry;
    while ((entry = readdir(proc))) {
      pid_t pid = (pid_t)strtol(entry->d_name, NULL, 10);
      if (pid > 0 && parent_of(pid) == self) kill(pid, SIGKILL);
    }
    closedir(proc);
    pid_t reaped = waitpid(-1, NULL, WNOHANG);
    if (reaped < 0 && errno == ECHILD) return;
    if (reaped < 0 && errno != EINTR) die("wait for what the step left");
    if (reaped == 0) usleep(1000);
  }
}

/* As pid 1 of the step (or its subreaper, in place): start the command, reap everything; returns the exit code to end with. */
static int init_and_exec(struct run_options *o, char **command) {
  signal(SIGINT, forward_signal);
  signal(SIGTERM, forward_signal);
  signal(SIGHUP, forward_signal);
  command_pid = fork();
  if (command_pid < 0) die("fork the command");
  if (command_pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* With only the caller's ids mapped, setgroups is denied: the step keeps no extra groups. */
    if (setgroups(o->group_count, o->groups) < 0 && !(errno == EPERM && o->single_gid)) die("setgroups");
    if (setgid(o->gid) < 0) die("setgid %u", o->gid);
    if (setuid(o->uid) < 0) die("setuid %u", o->uid);
    /* A step as root holds every privilege of the namespace already: with no_new_privs, setuid and
       file-capability exec cannot give any back to a process that dropped them (sudo after
       `su user -c` fails). A step with a non-root USER keeps them (sudo, su, ping work), as under
       BuildKit, which sets no_new_privs for no step. */
    if (o->uid == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl NO_NEW_PRIVS");
    for (size_t i = 0; i < o->limit_count; i++) {
      /* In a user namespace a hard limit can be lowered, never raised. */
      if (setrlimit(o->limits[i].resource, &o->limits[i].value) < 0) die("--ulimit: setting resource %d to %llu:%llu", o->limits[i].resource, (unsigned long long)o->limits[i].value.rlim_cur, (unsigned long long)o->limits[i].value.rlim_max);
    }
    /* The step gets stdin, stdout and stderr only: not the status fd (in place; a stray write to it
       would end the step as it chose), nor any descriptor hoist happened to inherit. */
    close_inherited(-1);
    /* The step's PATH finds the command: the helper's own environment is empty. */
    environ = o->env;
    execvp(command[0], command);
    die("exec %s", command[0]);
  }
  int status = 0;
  for (;;) {
    int reaped_status;
    pid_t reaped = waitpid(-1, &reaped_status, 0);
    if (reaped < 0 && errno == EINTR) continue;
    if (reaped < 0) break;
    if (reaped == command_pid) {
      status = reaped_status;
      break;
    }
  }
  /* Leaving pid 1 ends every other process of the step; in place, they are ended here. */
  if (o->in_place) end_descendants();
  if (WIFSIGNALED(status)) {
    set_step_end("signal %d", WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  set_step_end("exit %d", WEXITSTATUS(status));
  return WEXITSTATUS(status);
}

static void setup_and_run(struct run_options *o, char **command) {
  /* The step dies with hoist: bound first, then checked, as its parent may have died before. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl PDEATHSIG");
  if (other_end_gone(alive[0])) _exit(125);
  close(alive[0]);
  if (o->status_fd > 2) close(o->status_fd);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
  if (o->copied_root) {
    /* pivot_root needs a mount point. */
    if (mount(o->rootfs, o->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind the root filesystem");
  } else {
    char *data = overlay_options(o);
    if (mount("overlay", o->rootfs, "overlay", 0, data) < 0) {
      if (errno == EPERM || errno == EINVAL || errno == ENODEV || errno == ENOTSUP) {
        set_step_end("no-overlay");
        _exit(125);
      }
      die("mount the overlay root filesystem");
    }
  }
  int root = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die("open %s", o->rootfs);
  mount_in_root(root, "proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  setup_dev(o->rootfs, o->shm_size);
  for (size_t i = 0; i < o->mount_count; i++) apply_mount(root, o->rootfs, &o->mounts[i]);
  close(root);
  if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0) die("sethostname");
  if (chdir(o->rootfs) < 0) die("chdir %s", o->rootfs);
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) die("detach the old root");
  if (o->network && !strcmp(o->network, "none")) bring_up_loopback();
  enter_workdir(o->cwd);
  _exit(init_and_exec(o, command));
}

static unsigned long parse_number(const char *text, const char *what) {
  char *end;
  errno = 0;
  /* Digits only: strtoul would take a sign or spaces and wrap a negative number round. */
  unsigned long value = strtoul(text, &end, 10);
  if (*text < '0' || *text > '9' || *end != '\0' || errno) die("bad %s: %s", what, text);
  return value;
}

/* How many ids a map of this process's user namespace holds: /proc/self/uid_map or gid_map. */
static unsigned long long mapped_ids(const char *map) {
  unsigned long long inside, outside, count, total = 0;
  FILE *f = fopen(map, "re");
  if (!f) die("open %s", map);
  while (fscanf(f, "%llu %llu %llu", &inside, &outside, &count) == 3) total += count;
  if (ferror(f)) die("read %s", map);
  fclose(f);
  return total;
}

/* An --rlimit value, NAME=SOFT:HARD, as `docker --ulimit` names them; -1 is unlimited. */
static struct step_limit parse_limit(const char *text) {
  static const struct { const char *name; int resource; } names[] = {
    {"core", RLIMIT_CORE}, {"cpu", RLIMIT_CPU}, {"data", RLIMIT_DATA}, {"fsize", RLIMIT_FSIZE}, {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE}, {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC}, {"rss", RLIMIT_RSS}, {"rtprio", RLIMIT_RTPRIO}, {"rttime", RLIMIT_RTTIME},
    {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
  };
  const char *equals = strchr(text, '='), *colon = equals ? strchr(equals, ':') : NULL;
  errno = 0;
  if (!equals || !colon) die("--rlimit %s: expected NAME=SOFT:HARD", text);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    if (strlen(names[i].name) != (size_t)(equals - text) || strncmp(text, names[i].name, equals - text) != 0) continue;
    char soft[32], hard[32];
    if ((size_t)(colon - equals - 1) >= sizeof soft || strlen(colon + 1) >= sizeof hard) die("--rlimit %s: a limit is too long", text);
    snprintf(soft, sizeof soft, "%.*s", (int)(colon - equals - 1), equals + 1);
    snprintf(hard, sizeof hard, "%s", colon + 1);
    struct step_limit limit = {.resource = names[i].resource};
    limit.value.rlim_cur = strcmp(soft, "-1") ? parse_number(soft, "soft limit") : RLIM_INFINITY;
    limit.value.rlim_max = strcmp(hard, "-1") ? parse_number(hard, "hard limit") : RLIM_INFINITY;
    return limit;
  }
  die("--rlimit %s: unknown resource", text);
}

static int run(int argc, char **argv) {
  static char *no_env[] = {NULL};
  struct run_options o = {.status_fd = 2, .env = no_env, .shm_size = 64ULL << 20};
  int env_fd = -1;
  int i = 0;
  /* The step dies with hoist: bound first, then checked, as hoist may have died before. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl PDEATHSIG");
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *key = argv[i];
    /* A mount takes two values, every other option one. */
    int is_mount = !strcmp(key, "--bind") || !strcmp(key, "--ro-bind") || !strcmp(key, "--tmpfs");
    if (i + 1 + is_mount >= argc) die("%s needs %s", key, is_mount ? "two values" : "a value");
    const char *value = argv[++i], *second = is_mount ? argv[++i] : NULL;
    if (!strcmp(key, "--rootfs")) o.rootfs = value;
    else if (!strcmp(key, "--lower")) {
      o.lowers = make_room(o.lowers, o.lower_count, &o.lower_capacity, sizeof *o.lowers, "the lower dirs");
      o.lowers[o.lower_count++] = value;
    }
    else if (!strcmp(key, "--upper")) o.upper = value;
    else if (!strcmp(key, "--work")) o.work = value;
    else if (!strcmp(key, "--cwd")) o.cwd = value;
    else if (!strcmp(key, "--hostname")) o.hostname = value;
    else if (!strcmp(key, "--network")) o.network = value;
    else if (!strcmp(key, "--copied-root")) o.copied_root = !strcmp(value, "yes");
    else if (!strcmp(key, "--in-place")) o.in_place = !strcmp(value, "yes");
    else if (!strcmp(key, "--uid")) o.uid = (uid_t)parse_number(value, "uid");
    else if (!strcmp(key, "--gid")) o.gid = (gid_t)parse_number(value, "gid");
    else if (!strcmp(key, "--status-fd")) o.status_fd = (int)parse_number(value, "fd");
    else if (!strcmp(key, "--env-fd")) env_fd = (int)parse_number(value, "fd");
    else if (!strcmp(key, "--shm-size")) o.shm_size = parse_number(value, "shm size");
    else if (!strcmp(key, "--rlimit")) {
      o.limits = make_room(o.limits, o.limit_count, &o.limit_capacity, sizeof *o.limits, "the limits");
      o.limits[o.limit_count++] = parse_limit(value);
    }
    else if (!strcmp(key, "--group")) {
      o.groups = make_room(o.groups, o.group_count, &o.group_capacity, sizeof *o.groups, "the groups");
      o.groups[o.group_count++] = (gid_t)parse_number(value, "group");
    }
    else if (is_mount) {
      o.mounts = make_room(o.mounts, o.mount_count, &o.mount_capacity, sizeof *o.mounts, "the mounts");
      struct mount_item *mount = &o.mounts[o.mount_count++];
      if (!strcmp(key, "--tmpfs")) *mount = (struct mount_item){.kind = TMPFS, .target = value, .size = parse_number(second, "tmpfs size")};
      else *mount = (struct mount_item){.kind = !strcmp(key, "--bind") ? BIND : READ_ONLY_BIND, .source = value, .target = second};
    }
    else die("unknown option %s", key);
  }
  if (i >= argc - 1) die("usage: hoist-sandbox run OPTIONS -- COMMAND...");
  if (!o.in_place && (!o.rootfs || (!o.copied_root && (!o.lower_count || !o.upper || !o.work)))) die("run needs --rootfs, and --lower, --upper and --work for an overlay");
  o.single_gid = mapped_ids("/proc/self/gid_map") == 1;
  if (env_fd >= 0) o.env = read_env(env_fd);
  /* What hoist's caller left open (a directory, as runc's CVE-2024-21626 leaked one) is closed
     before anything else: pid 1, and the step through /proc/1/fd, would otherwise hold it. */
  close_inherited(o.status_fd);
  step_end = mmap(NULL, STEP_END_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (step_end == MAP_FAILED) die("map the step's status");
  if (o.in_place) {
    if (o.mount_count > 0 || (o.network && strcmp(o.network, "host") != 0)) die("--in-place takes no mounts and no network of its own");
    /* Told of hoist's death by a signal it can act on: the step and all it started are killed
       (end_descendants) rather than left running with nothing to end them. */
    kill_on_signal = 1;
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) die("prctl PDEATHSIG");
    if (other_end_gone(o.status_fd)) _exit(125);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("prctl CHILD_SUBREAPER");
    enter_workdir(o.cwd);
    int code = init_and_exec(&o, argv + i + 1);
    write_step_end(o.status_fd);
    return code;
  }
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (o.network && !strcmp(o.network, "none")) flags |= CLONE_NEWNET;
  if (other_end_gone(o.status_fd)) _exit(125);
  if (unshare(flags) < 0) die("unshare namespaces");
  /* Open while this process lives: pid 1 sees it close if this process dies before pid 1 is bound to it. */
  if (pipe2(alive, O_CLOEXEC) < 0) die("pipe");
  pid_t init = fork();
  if (init < 0) die("fork pid 1");
  if (init == 0) {
    close(alive[1]);
    setup_and_run(&o, argv + i + 1);
  }
  close(alive[0]);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  int status;
  while (waitpid(init, &status, 0) < 0) {
    if (errno != EINTR) die("wait for the step");
  }
  write_step_end(o.status_fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- probe ------------------------------------------------------------------------------- */

/*
 * Whether `run` could set a step up here: its namespaces, a private mount table, a tmpfs and a
 * /proc, tried in a child so nothing here changes. A container's seccomp profile or missing
 * CAP_SYS_ADMIN fails one of them; the first refused is printed.
 */
static int probe(void) {
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) < 0) die("unshare namespaces");
    pid_t init = fork();
    if (init < 0) die("fork pid 1");
    if (init == 0) {
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
      if (mount("hoist-probe", "/tmp", "tmpfs", 0, NULL) < 0) die("mount a tmpfs");
      if (mkdir("/tmp/proc", 0755) < 0) die("mkdir /tmp/proc");
      if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
      _exit(0);
    }
    int status;
    if (waitpid(init, &status, 0) < 0) die("wait");
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
  }
  int status;
  if (waitpid(child, &status, 0) < 0) die("wait");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

/* ---- xattrs ------------------------------------------------------------------------------ */

static int print_xattrs(const char *path, const struct stat *info, int type, struct FTW *ftw) {
  char names[65536], value[65536];
  (void)info, (void)type, (void)ftw;
  ssize_t length = llistxattr(path, names, sizeof names);
  if (length < 0) {
    if (errno == ENOTSUP || errno == ENODATA) return 0;
    die("list xattrs of %s", path);
  }
  for (char *name = names; name < names + length; name += strlen(name) + 1) {
    ssize_t size = lgetxattr(path, name, value, sizeof value);
    if (size < 0) die("read xattr %s of %s", name, path);
    fputs(path, stdout);
    fputc('\0', stdout);
    fputs(name, stdout);
    fputc('\0', stdout);
    for (ssize_t i = 0; i < size; i++) printf("%02x", (unsigned char)value[i]);
    fputc('\0', stdout);
  }
  return 0;
}

/* Reads one NUL-terminated field; returns 0 at the end of input. */
static int read_field(char **field, size_t *size) {
  ssize_t length = getdelim(field, size, '\0', stdin);
  if (length <= 0) return 0;
  return 1;
}

static int set_xattrs(void) {
  char *path = NULL, *name = NULL, *hex = NULL;
  size_t path_size = 0, name_size = 0, hex_size = 0;
  while (read_field(&path, &path_size)) {
    if (!read_field(&name, &name_size) || !read_field(&hex, &hex_size)) die("setxattrs: a record is cut short");
    size_t length = strlen(hex) / 2;
    unsigned char *value = malloc(length + 1);
    if (!value) die("setxattrs: out of memory");
    for (size_t i = 0; i < length; i++) {
      unsigned int byte;
      if (sscanf(hex + 2 * i, "%2x", &byte) != 1) die("setxattrs: bad value for %s", path);
      value[i] = (unsigned char)byte;
    }
    if (lsetxattr(path, name, value, length, 0) < 0) die("set xattr %s on %s", name, path);
    free(value);
  }
  free(path), free(name), free(hex);
  return 0;
}

/* Lists the extended attributes of the paths read from standard input (NUL-terminated), as xattrs does. */
static int list_xattrs_of(void) {
  char *path = NULL;
  size_t size = 0;
  while (read_field(&path, &size)) print_xattrs(path, NULL, 0, NULL);
  free(path);
  return fflush(stdout) == 0 ? 0 : 125;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "setxattrs")) return set_xattrs();
  if (argc == 2 && !strcmp(argv[1], "xattrs-of")) return list_xattrs_of();
  if (argc == 3 && !strcmp(argv[1], "xattrs")) {
    if (nftw(argv[2], print_xattrs, 64, FTW_PHYS | FTW_MOUNT) < 0) die("walk %s", argv[2]);
    return fflush(stdout) == 0 ? 0 : 125;
  }
  if (argc >= 4 && !strcmp(argv[1], "enter") && !strcmp(argv[2], "--")) return enter(argv + 3);
  if (argc >= 2 && !strcmp(argv[1], "run")) return run(argc - 2, argv + 2);
  if (argc == 2 && !strcmp(argv[1], "probe")) return probe();
  fprintf(stderr, "usage: hoist-sandbox enter -- CMD... | run OPTIONS -- CMD... | probe | xattrs DIR | xattrs-of | setxattrs\n");
  return 2;
}
