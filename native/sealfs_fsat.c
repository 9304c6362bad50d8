/*
 * Confined calls on the cipher folder (src/vault/cipherio.ts). The storage provider controls
 * every entry there, so no call may follow a link it planted or walk out of the vault:
 *
 * - The vault root is opened once (fsatOpenRoot); every other path is taken relative to it.
 * - The folders on the way to an entry are opened with openat2(RESOLVE_BENEATH |
 *   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a symlink anywhere on the way is ELOOP, a
 *   way out is EXDEV, for that path only. Kernels before 5.6 have no openat2 (ENOSYS): the
 *   folders are then walked one component at a time with openat(O_PATH | O_NOFOLLOW) and
 *   fstat, refusing a symlink (ELOOP), anything but a folder (ENOTDIR) and "..".
 * - The last component is acted on with *at calls that never follow a link: fstatat and
 *   fchownat and utimensat with AT_SYMLINK_NOFOLLOW, openat with O_NOFOLLOW, fchmodat2 with
 *   AT_SYMLINK_NOFOLLOW (or fchmod through an O_PATH descriptor of the entry itself on
 *   kernels before 6.6), mkdirat, unlinkat, renameat (renameat2 with RENAME_NOREPLACE or
 *   RENAME_EXCHANGE when asked), linkat without AT_SYMLINK_FOLLOW,
 *   symlinkat, readlinkat; extended attributes through /proc/self/fd of an O_PATH | O_NOFOLLOW
 *   descriptor of the entry (see xattr_at). The calls on a descriptor, futimens and fallocate,
 *   take only a cipher file this process opened that way (and check it is still a regular file).
 * - Files are opened with O_NONBLOCK and checked to be regular files before and after the
 *   open, so a FIFO or device planted in place of a file is EIO, never a blocking open.
 *
 * Every call has a synchronous form (fsat) and one on libuv's pool (fsatAsync, a promise).
 * Errors are Node-style errno errors (code, errno, syscall, path), as Node's fs throws them.
 */
#define _GNU_SOURCE
#include "sealfs_fsat.h"
#include "sealfs_napi_string.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <uv.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

enum {
  OP_LSTAT = 0,
  OP_READDIR = 1,
  OP_OPEN = 2,
  OP_MKDIR = 3,
  OP_RMDIR = 4,
  OP_UNLINK = 5,
  OP_RENAME = 6,
  OP_LINK = 7,
  OP_SYMLINK = 8,
  OP_READLINK = 9,
  OP_CHMOD = 10,
  OP_LCHOWN = 11,
  OP_LUTIMES = 12,
  OP_WRITEFILE = 13,
  OP_STATFS = 14,
  OP_READFILE = 15,
  OP_LSTATMANY = 16,
  OP_MAXSIZE = 17,
  /* On a descriptor, not a path: fallocate(d, FALLOC_FL_KEEP_SIZE, a, b) on a cipher file
     that do_open gave out; the path passed is the vault root's (nothing is resolved). */
  OP_RESERVE = 18,
  OP_FUTIMENS = 19,
  OP_GETXATTR = 20,
  OP_LISTXATTR = 21,
  OP_SETXATTR = 22,
  OP_REMOVEXATTR = 23,
  OP_COUNT = 24,
};

static const char *const SYSCALLS[OP_COUNT] = {
    "lstat", "scandir", "open", "mkdir", "rmdir", "unlink", "rename", "link",
    "symlink", "readlink", "chmod", "lchown", "lutime", "open", "statfs", "open", "lstat", "lseek",
    "fallocate", "futime", "getxattr", "listxattr", "setxattr", "removexattr",
};

/* Set once openat2 answered ENOSYS, or by fsatForceWalk (tests of the older kernels' path). */
static _Atomic int g_walk = 0;

typedef struct {
  int op;
  int root;
  char *path;  /* full path, for errors; the part after `skip` bytes is relative to root */
  char *path2; /* second full path (rename, link) or the link's target (symlink) */
  size_t skip;
  int64_t a, b, c, d;
  uint8_t *data;
  size_t data_len;
  /* results */
  int err;
  const char *syscall;
  bool err_on_path2;
  int64_t num;
  struct stat st;
  struct statfs sfs;
  char *text;      /* readlink target; readdir names, each NUL-terminated */
  size_t text_len;
  uint8_t *types;  /* readdir: one UV_DIRENT-style type per name */
  double *stats;   /* lstatMany: STAT_NUMBERS per name, the first one 0 or -errno */
  size_t count;
  napi_async_work work;
  napi_deferred deferred;
} fsat_req;

/* ---------------------------------------------------------------- path resolution */

static const char *relative_of(const char *full, size_t skip) {
  const char *rel = full + skip;
  while (*rel == '/') rel++;
  return rel;
}

/* Opens folder `rel` (may be "") beneath `root`: O_PATH unless `readable`. */
static int open_dir_beneath(int root, const char *rel, bool readable) {
  int flags = (readable ? O_RDONLY : O_PATH) | O_DIRECTORY | O_CLOEXEC;
  if (*rel == '\0') rel = ".";
  if (!g_walk) {
    struct open_how how = {.flags = (uint64_t)flags, .mode = 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, root, rel, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    if (errno != ENOSYS) return -errno;
    g_walk = 1;
  }
  /* No openat2: one component at a time, refusing links, non-folders and "..". */
  char *copy = strdup(rel);
  if (copy == NULL) return -ENOMEM;
  int fd = -1; /* -1: root itself (not ours to close) */
  int result = 0;
  char *save = NULL;
  for (char *part = strtok_r(copy, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save)) {
    if (strcmp(part, ".") == 0) continue;
    if (strcmp(part, "..") == 0) { result = -EXDEV; break; }
    int next = openat(fd < 0 ? root : fd, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) { result = -errno; break; }
    struct stat st;
    if (fstat(next, &st) != 0) { result = -errno; close(next); break; }
    if (!S_ISDIR(st.st_mode)) { result = S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR; close(next); break; }
    if (fd >= 0) close(fd);
    fd = next;
  }
  free(copy);
  if (result != 0) {
    if (fd >= 0) close(fd);
    return result;
  }
  if (!readable && fd >= 0) return fd;
  /* Reopen the folder reached (O_PATH, or root) for reading, still without following. */
  int opened = openat(fd < 0 ? root : fd, ".", flags);
  int saved = errno;
  if (fd >= 0) close(fd);
  return opened >= 0 ? opened : -saved;
}

/*
 * The folder holding `rel`'s last component, and that component. `*dir` is closed by the
 * caller when it is not `root`. The leaf is "" for the vault root itself; "." and ".." are
 * refused, as they would name another entry than the one asked for.
 */
static int resolve_leaf(int root, const char *rel, int *dir, const char **leaf) {
  const char *slash = strrchr(rel, '/');
  *leaf = slash ? slash + 1 : rel;
  if (strcmp(*leaf, ".") == 0 || strcmp(*leaf, "..") == 0 || (slash && **leaf == '\0')) return -EINVAL;
  if (!slash) {
    *dir = root;
    return 0;
  }
  char *parent = strndup(rel, (size_t)(slash - rel));
  if (parent == NULL) return -ENOMEM;
  int fd = open_dir_beneath(root, parent, false);
  free(parent);
  if (fd < 0) return fd;
  *dir = fd;
  return 0;
}

static void release_dir(int root, int dir) {
  if (dir >= 0 && dir != root) close(dir);
}

/* ---------------------------------------------------------------- the calls */

static double ms_of(struct timespec ts) {
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * What JavaScript gets of a stat (read by CipherStats in src/vault/cipherio.ts). The times come
 * twice: in ms (a double, as Node's Stats has them) and as seconds and nanoseconds, exact (a
 * double holds ms since the epoch only to about a quarter of a microsecond).
 */
#define STAT_NUMBERS 19
static void stat_numbers(const struct stat *s, double *out) {
  const double fields[STAT_NUMBERS] = {(double)s->st_dev, (double)s->st_ino, (double)s->st_mode, (double)s->st_nlink,
                                       (double)s->st_uid, (double)s->st_gid, (double)s->st_rdev, (double)s->st_size,
                                       (double)s->st_blksize, (double)s->st_blocks, ms_of(s->st_atim), ms_of(s->st_mtim),
                                       ms_of(s->st_ctim),
                                       (double)s->st_atim.tv_sec, (double)s->st_atim.tv_nsec,
                                       (double)s->st_mtim.tv_sec, (double)s->st_mtim.tv_nsec,
                                       (double)s->st_ctim.tv_sec, (double)s->st_ctim.tv_nsec};
  memcpy(out, fields, sizeof fields);
}

/*
 * futimens on a cipher file this process opened (confined, by do_open): `data` holds the two
 * timespecs as four little-endian int64 (atime sec, nsec, mtime sec, nsec); a nsec of
 * UTIME_OMIT leaves that time, UTIME_NOW sets it to now. Through the descriptor, so the file
 * whose data was written gets the time, whatever its name has become.
 */
static int do_futimens(fsat_req *r) {
  if (r->data_len != 4 * sizeof(int64_t)) return -EINVAL;
  int64_t v[4];
  memcpy(v, r->data, sizeof v);
  struct timespec ts[2] = {{.tv_sec = (time_t)v[0], .tv_nsec = (long)v[1]}, {.tv_sec = (time_t)v[2], .tv_nsec = (long)v[3]}};
  struct stat st;
  /* Only a regular file: a descriptor number that was closed and reused for something else
     is refused rather than given a time. */
  if (fstat((int)r->a, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EBADF;
  return futimens((int)r->a, ts) == 0 ? 0 : -errno;
}

/*
 * The entries `data` (names, each NUL-terminated) of one folder, in one call: what a listing
 * with attributes needs, without a trip through the pool per name. A name with '/' or that is
 * "." or ".." is EINVAL (it would name another entry).
 */
static int do_lstat_many(fsat_req *r, const char *rel) {
  int fd = open_dir_beneath(r->root, rel, false);
  if (fd < 0) return fd;
  size_t count = 0;
  for (size_t i = 0; i < r->data_len; i++) count += r->data[i] == '\0';
  r->stats = malloc((count ? count : 1) * (1 + STAT_NUMBERS) * sizeof(double));
  if (r->stats == NULL) {
    close(fd);
    return -ENOMEM;
  }
  const char *name = (const char *)r->data;
  for (size_t k = 0; k < count; k++) {
    double *out = r->stats + k * (1 + STAT_NUMBERS);
    struct stat st;
    memset(out, 0, (1 + STAT_NUMBERS) * sizeof(double));
    if (strchr(name, '/') != NULL || *name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) out[0] = -EINVAL;
    else if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) out[0] = -errno;
    else stat_numbers(&st, out + 1);
    name += strlen(name) + 1;
  }
  r->count = count;
  close(fd);
  return 0;
}

static uint8_t dirent_type(unsigned char t, mode_t mode, bool by_mode) {
  if (by_mode) {
    if (S_ISREG(mode)) return 1;
    if (S_ISDIR(mode)) return 2;
    if (S_ISLNK(mode)) return 3;
    if (S_ISFIFO(mode)) return 4;
    if (S_ISSOCK(mode)) return 5;
    if (S_ISCHR(mode)) return 6;
    if (S_ISBLK(mode)) return 7;
    return 0;
  }
  switch (t) {
    case DT_REG: return 1;
    case DT_DIR: return 2;
    case DT_LNK: return 3;
    case DT_FIFO: return 4;
    case DT_SOCK: return 5;
    case DT_CHR: return 6;
    case DT_BLK: return 7;
    default: return 0;
  }
}

/* Whether s[0..len) is well-formed UTF-8 (no overlong form, surrogate or code point past U+10FFFF). */
static bool utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
    else return false;
    if (len - i <= n) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k <= n; k++) if (s[i + k] < 0x80 || s[i + k] > 0xbf) return false;
    i += n + 1;
  }
  return true;
}

static int do_readdir(fsat_req *r, const char *rel) {
  int fd = open_dir_beneath(r->root, rel, true);
  if (fd < 0) return fd;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    close(fd);
    return -e;
  }
  size_t cap = 4096, types_cap = 64;
  r->text = malloc(cap);
  r->types = malloc(types_cap);
  int result = 0;
  if (r->text == NULL || r->types == NULL) result = -ENOMEM;
  while (result == 0) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0) result = -errno;
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t len = strlen(e->d_name) + 1;
    if (r->text_len + len > cap || r->count == types_cap) {
      while (r->text_len + len > cap) cap *= 2;
      if (r->count == types_cap) types_cap *= 2;
      char *text = realloc(r->text, cap);
      if (text) r->text = text;
      uint8_t *types = realloc(r->types, types_cap);
      if (types) r->types = types;
      if (!text || !types) { result = -ENOMEM; break; }
    }
    memcpy(r->text + r->text_len, e->d_name, len);
    r->text_len += len;
    struct stat st;
    bool by_mode = e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    r->types[r->count++] = dirent_type(e->d_type, by_mode ? st.st_mode : 0, by_mode);
  }
  closedir(d);
  return result;
}

/* A cipher file: regular, opened without following and without blocking on a FIFO. */
static int do_open(fsat_req *r, int dir, const char *leaf, int flags, mode_t mode) {
  struct stat st;
  /* O_CREAT | O_EXCL never follows and never opens an existing entry: EEXIST says it all. */
  if ((flags & O_EXCL) && (flags & O_CREAT)) {
  } else if (fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return -ELOOP;
    if (!S_ISREG(st.st_mode)) return -EIO;
  } else if (errno != ENOENT || !(flags & O_CREAT)) {
    return -errno;
  }
  int fd = openat(dir, leaf, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
  if (fd < 0) return errno == EISDIR || errno == ENXIO || errno == ENODEV ? -EIO : -errno;
  int e = fstat(fd, &st) != 0 ? errno : S_ISREG(st.st_mode) ? 0 : EIO;
  if (e != 0) {
    close(fd);
    return -e;
  }
  /* Regular files ignore O_NONBLOCK; cleared anyway so the descriptor is plain. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

static int do_chmod(int dir, const char *leaf, mode_t mode) {
  if (!g_walk) {
    if (syscall(SYS_fchmodat2, dir, leaf, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
    if (errno != ENOSYS) return -errno;
  }
  /* Kernels before 6.6: the entry itself through an O_PATH descriptor, never its target. */
  int fd = openat(dir, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int result = 0;
  if (fstat(fd, &st) != 0) result = -errno;
  else if (S_ISLNK(st.st_mode)) result = -EOPNOTSUPP;
  else {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (chmod(proc, mode) != 0) result = -errno;
  }
  close(fd);
  return result;
}

/* `a`: the new file's mode (0: 0666), before the umask. */
static int do_writefile(fsat_req *r, int dir, const char *leaf) {
  int fd = do_open(r, dir, leaf, O_WRONLY | O_CREAT | O_TRUNC, r->a > 0 ? (mode_t)(r->a & 07777) : 0666);
  if (fd < 0) return fd;
  size_t done = 0;
  int result = 0;
  while (done < r->data_len) {
    ssize_t n = write(fd, r->data + done, r->data_len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = -errno;
      break;
    }
    done += (size_t)n;
  }
  if (close(fd) != 0 && result == 0) result = -errno;
  return result;
}

/* At most `max` bytes of a regular file (a caller asks for one more than it accepts). */
static int do_readfile(fsat_req *r, int dir, const char *leaf) {
  int64_t max = r->a;
  int fd = do_open(r, dir, leaf, O_RDONLY, 0);
  if (fd < 0) return fd;
  r->text = malloc((size_t)max + 1);
  int result = 0;
  if (r->text == NULL) result = -ENOMEM;
  while (result == 0 && r->text_len < (size_t)max) {
    ssize_t n = read(fd, r->text + r->text_len, (size_t)max - r->text_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = -errno;
    } else if (n == 0) {
      break;
    } else {
      r->text_len += (size_t)n;
    }
  }
  close(fd);
  return result;
}

/*
 * The largest size a file can have on the file system holding the regular file `leaf` (its
 * s_maxbytes): there is no call that tells it, but lseek(SEEK_SET) refuses (EINVAL) an offset
 * past it on every file system (generic_file_llseek and its kin), without changing the file.
 * Found by bisection over [0, 2^63 - 1]; the file is only opened for reading.
 */
static int do_maxsize(fsat_req *r, int dir, const char *leaf) {
  int fd = do_open(r, dir, leaf, O_RDONLY, 0);
  if (fd < 0) return fd;
  int64_t lo = 0, hi = INT64_MAX; /* lo: accepted; the answer is in [lo, hi] */
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2 + 1;
    if (lseek(fd, (off_t)mid, SEEK_SET) == (off_t)mid) lo = mid;
    else if (errno == EINVAL || errno == EOVERFLOW) hi = mid - 1;
    else {
      int e = errno;
      close(fd);
      return -e;
    }
  }
  close(fd);
  r->num = lo;
  return 0;
}

/*
 * Allocates the blocks of [a, a + b) of the open cipher file `fd` (from do_open) without
 * changing its size (FALLOC_FL_KEEP_SIZE): what a write beyond the end will need, so that a
 * full disk is told before the write is acknowledged (src/crypto/sealedfile.ts). Only a
 * regular file is accepted: a descriptor number the caller got wrong is never acted on.
 * EOPNOTSUPP (a file system without fallocate) is the caller's to handle.
 */
static int do_reserve(fsat_req *r) {
  int fd = (int)r->d;
  struct stat st;
  if (r->a < 0 || r->b <= 0) return -EINVAL;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EBADF;
  int res;
  do {
    res = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)r->a, (off_t)r->b);
  } while (res != 0 && errno == EINTR);
  return res == 0 ? 0 : -errno;
}

/*
 * Extended attributes of an entry (a regular file or a folder; never a link, which is not
 * followed, nor a FIFO or device). The entry is opened O_PATH | O_NOFOLLOW, which needs no
 * permission and never blocks, its type checked on that descriptor, and the *xattr call made
 * on /proc/self/fd/N: the magic link names exactly that inode, so nothing is resolved again.
 * Values and lists are read into a buffer of XATTR_SIZE_MAX (64 KiB), the most Linux stores
 * or lists, so a provider cannot make a read unbounded.
 */
#define XATTR_BOUND 65536

static int xattr_at(fsat_req *r, int dir, const char *leaf) {
  int fd = *leaf == '\0' ? -1 : openat(dir, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (*leaf != '\0' && fd < 0) return -errno;
  struct stat st;
  int res = fstat(fd < 0 ? r->root : fd, &st) != 0 ? -errno : 0;
  /* A link is never acted on (ELOOP); a FIFO, socket or device is not one of the vault's (EIO). */
  if (res == 0 && S_ISLNK(st.st_mode)) res = -ELOOP;
  else if (res == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) res = -EIO;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd < 0 ? r->root : fd);
  if (res == 0) {
    ssize_t n = 0;
    switch (r->op) {
      case OP_GETXATTR:
      case OP_LISTXATTR:
        if ((r->text = malloc(XATTR_BOUND)) == NULL) {
          res = -ENOMEM;
          break;
        }
        n = r->op == OP_GETXATTR ? getxattr(proc, r->path2, r->text, XATTR_BOUND) : listxattr(proc, r->text, XATTR_BOUND);
        if (n < 0) res = -errno;
        else r->text_len = (size_t)n;
        break;
      case OP_SETXATTR:
        /* a: 0 create or replace, 1 only create (EEXIST), 2 only replace (ENODATA). */
        res = setxattr(proc, r->path2, r->data, r->data_len, r->a == 1 ? XATTR_CREATE : r->a == 2 ? XATTR_REPLACE : 0) == 0 ? 0 : -errno;
        break;
      case OP_REMOVEXATTR:
        res = removexattr(proc, r->path2) == 0 ? 0 : -errno;
        break;
      default:
        res = -EINVAL;
    }
  }
  if (fd >= 0) close(fd);
  return res;
}

static void run(fsat_req *r) {
  const char *rel = relative_of(r->path, r->skip);
  int dir = -1;
  const char *leaf = NULL;
  int res = 0;
  r->syscall = SYSCALLS[r->op];
  if (r->op >= OP_GETXATTR && r->op <= OP_REMOVEXATTR) {
    if (*rel == '\0') {
      r->err = xattr_at(r, r->root, "");
      return;
    }
    res = resolve_leaf(r->root, rel, &dir, &leaf);
    if (res == 0) res = xattr_at(r, dir, leaf);
    release_dir(r->root, dir);
    r->err = res;
    return;
  }
  if (r->op == OP_READDIR) {
    r->err = do_readdir(r, rel);
    return;
  }
  if (r->op == OP_LSTATMANY) {
    r->err = do_lstat_many(r, rel);
    return;
  }
  if (r->op == OP_RESERVE) {
    r->err = do_reserve(r);
    return;
  }
  if (r->op == OP_FUTIMENS) {
    r->err = do_futimens(r);
    return;
  }
  if (r->op == OP_STATFS) {
    int fd = open_dir_beneath(r->root, rel, false);
    if (fd < 0) { r->err = fd; return; }
    r->err = fstatfs(fd, &r->sfs) == 0 ? 0 : -errno;
    close(fd);
    return;
  }
  if (*rel == '\0') {
    /*
     * The vault root itself (the mount's root folder): its attributes only. It is our own
     * descriptor, opened once without following links, so its /proc/self/fd name is it.
     */
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", r->root);
    switch (r->op) {
      case OP_LSTAT:
        r->err = fstat(r->root, &r->st) == 0 ? 0 : -errno;
        break;
      case OP_CHMOD:
        r->err = chmod(self, (mode_t)r->a) == 0 ? 0 : -errno;
        break;
      case OP_LCHOWN:
        r->err = fchownat(r->root, "", (uid_t)r->a, (gid_t)r->b, AT_EMPTY_PATH) == 0 ? 0 : -errno;
        break;
      case OP_LUTIMES: {
        struct timespec ts[2] = {{.tv_sec = r->a, .tv_nsec = r->b}, {.tv_sec = r->c, .tv_nsec = r->d}};
        r->err = utimensat(AT_FDCWD, self, ts, 0) == 0 ? 0 : -errno;
        break;
      }
      default:
        r->err = -EINVAL;
    }
    return;
  }
  res = resolve_leaf(r->root, rel, &dir, &leaf);
  if (res != 0) { r->err = res; return; }
  switch (r->op) {
    case OP_LSTAT:
      res = fstatat(dir, leaf, &r->st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
      break;
    case OP_OPEN:
      res = do_open(r, dir, leaf, (int)r->a, (mode_t)r->b);
      if (res >= 0) { r->num = res; res = 0; }
      break;
    case OP_MKDIR:
      res = mkdirat(dir, leaf, (mode_t)r->a) == 0 ? 0 : -errno;
      break;
    case OP_RMDIR:
      res = unlinkat(dir, leaf, AT_REMOVEDIR) == 0 ? 0 : -errno;
      break;
    case OP_UNLINK:
      res = unlinkat(dir, leaf, 0) == 0 ? 0 : -errno;
      break;
    case OP_RENAME:
    case OP_LINK: {
      int dir2 = -1;
      const char *leaf2 = NULL;
      res = resolve_leaf(r->root, relative_of(r->path2, r->skip), &dir2, &leaf2);
      if (res != 0) {
        r->err_on_path2 = true;
        break;
      }
      /* rename's `a`: renameat2 flags, RENAME_NOREPLACE or RENAME_EXCHANGE only (no whiteouts). */
      if (r->op == OP_RENAME && (r->a & ~(int64_t)(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) res = -EINVAL;
      else if (r->op == OP_RENAME && r->a != 0) res = renameat2(dir, leaf, dir2, leaf2, (unsigned int)r->a) == 0 ? 0 : -errno;
      else if (r->op == OP_RENAME) res = renameat(dir, leaf, dir2, leaf2) == 0 ? 0 : -errno;
      else res = linkat(dir, leaf, dir2, leaf2, 0) == 0 ? 0 : -errno;
      release_dir(r->root, dir2);
      break;
    }
    case OP_SYMLINK:
      res = symlinkat(r->path2, dir, leaf) == 0 ? 0 : -errno;
      break;
    case OP_READLINK: {
      char buf[PATH_MAX];
      ssize_t n = readlinkat(dir, leaf, buf, sizeof buf);
      if (n < 0) res = -errno;
      else if ((size_t)n >= sizeof buf) res = -ENAMETOOLONG;
      else if ((r->text = malloc((size_t)n + 1)) == NULL) res = -ENOMEM;
      else {
        memcpy(r->text, buf, (size_t)n);
        r->text_len = (size_t)n;
      }
      break;
    }
    case OP_CHMOD:
      res = do_chmod(dir, leaf, (mode_t)r->a);
      break;
    case OP_LCHOWN:
      res = fchownat(dir, leaf, (uid_t)r->a, (gid_t)r->b, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
      break;
    case OP_LUTIMES: {
      struct timespec ts[2] = {{.tv_sec = r->a, .tv_nsec = r->b}, {.tv_sec = r->c, .tv_nsec = r->d}};
      res = utimensat(dir, leaf, ts, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
      break;
    }
    case OP_WRITEFILE:
      res = do_writefile(r, dir, leaf);
      break;
    case OP_READFILE:
      res = do_readfile(r, dir, leaf);
      break;
    case OP_MAXSIZE:
      res = do_maxsize(r, dir, leaf);
      break;
    default:
      res = -EINVAL;
  }
  release_dir(r->root, dir);
  r->err = res;
}

/* ---------------------------------------------------------------- JavaScript side */

static void free_req(fsat_req *r) {
  free(r->path);
  free(r->path2);
  free(r->data);
  free(r->text);
  free(r->types);
  free(r->stats);
  free(r);
}

static bool set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok && napi_set_named_property(env, obj, key, n) == napi_ok;
}

static napi_value make_error(napi_env env, fsat_req *r) {
  int uverr = r->err; /* libuv's error numbers are negated errno values on Linux */
  const char *path = r->err_on_path2 ? r->path2 : r->path;
  const char *code = uv_err_name(uverr);
  char message[PATH_MAX + 256];
  if ((r->op == OP_RENAME || r->op == OP_LINK) && !r->err_on_path2)
    snprintf(message, sizeof message, "%s: %s, %s '%s' -> '%s'", code, uv_strerror(uverr), r->syscall, r->path, r->path2);
  else
    snprintf(message, sizeof message, "%s: %s, %s '%s'", code, uv_strerror(uverr), r->syscall, path);
  napi_value msg, err, v;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_create_int32(env, uverr, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "code", v);
  napi_create_string_utf8(env, r->syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "path", v);
  if ((r->op == OP_RENAME || r->op == OP_LINK) && !r->err_on_path2) {
    napi_create_string_utf8(env, r->path2, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "dest", v);
  }
  return err;
}


/* The result of a successful call, as JavaScript sees it. */
static napi_value make_result(napi_env env, fsat_req *r) {
  napi_value out;
  switch (r->op) {
    case OP_LSTAT: {
      /* One Float64Array, cheaper than an object. */
      void *data = NULL;
      napi_value buffer;
      napi_create_arraybuffer(env, STAT_NUMBERS * sizeof(double), &data, &buffer);
      stat_numbers(&r->st, data);
      napi_create_typedarray(env, napi_float64_array, STAT_NUMBERS, buffer, 0, &out);
      return out;
    }
    case OP_LSTATMANY: {
      /* One Float64Array: per name, 0 or -errno, then the stat numbers. */
      const size_t length = r->count * (1 + STAT_NUMBERS);
      void *data = NULL;
      napi_value buffer;
      napi_create_arraybuffer(env, length * sizeof(double), &data, &buffer);
      if (length) memcpy(data, r->stats, length * sizeof(double));
      napi_create_typedarray(env, napi_float64_array, length, buffer, 0, &out);
      return out;
    }
    case OP_STATFS: {
      napi_create_object(env, &out);
      set_num(env, out, "type", (double)r->sfs.f_type);
      set_num(env, out, "bsize", (double)r->sfs.f_bsize);
      set_num(env, out, "blocks", (double)r->sfs.f_blocks);
      set_num(env, out, "bfree", (double)r->sfs.f_bfree);
      set_num(env, out, "bavail", (double)r->sfs.f_bavail);
      set_num(env, out, "files", (double)r->sfs.f_files);
      set_num(env, out, "ffree", (double)r->sfs.f_ffree);
      return out;
    }
    case OP_READDIR: {
      napi_value names, types, item;
      napi_create_array_with_length(env, r->count, &names);
      napi_create_array_with_length(env, r->count, &types);
      size_t at = 0;
      for (size_t i = 0; i < r->count; i++) {
        size_t len = strlen(r->text + at);
        /* A name that is not UTF-8 comes as its bytes: a string would decode it lossily, and
           two names would become one (docs/FORMAT.md §10.4). */
        if (utf8_valid((const uint8_t *)r->text + at, len)) napi_create_string_utf8(env, r->text + at, len, &item);
        else napi_create_buffer_copy(env, len, r->text + at, NULL, &item);
        napi_set_element(env, names, (uint32_t)i, item);
        napi_create_uint32(env, r->types[i], &item);
        napi_set_element(env, types, (uint32_t)i, item);
        at += len + 1;
      }
      napi_create_object(env, &out);
      napi_set_named_property(env, out, "names", names);
      napi_set_named_property(env, out, "types", types);
      return out;
    }
    case OP_OPEN:
    case OP_MAXSIZE:
      /* A size past 2^53 comes as the nearest double: callers only compare it with smaller sizes. */
      napi_create_double(env, (double)r->num, &out);
      return out;
    case OP_READLINK:
      napi_create_string_utf8(env, r->text, r->text_len, &out);
      return out;
    case OP_GETXATTR:
    case OP_LISTXATTR:
    case OP_READFILE: {
      void *bytes = NULL;
      napi_create_buffer_copy(env, r->text_len, r->text_len ? r->text : "", &bytes, &out);
      return out;
    }
    default:
      napi_get_undefined(env, &out);
      return out;
  }
}

static int64_t get_int(napi_env env, napi_value v) {
  int64_t n = 0;
  napi_get_value_int64(env, v, &n);
  return n;
}

/* (op, root, skip, path, path2|null, a, b, c, d, data|null) */
static fsat_req *parse(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 10) {
    napi_throw_type_error(env, NULL, "fsat: expected 10 arguments");
    return NULL;
  }
  fsat_req *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, NULL, "fsat: out of memory");
    return NULL;
  }
  r->op = (int)get_int(env, argv[0]);
  r->root = (int)get_int(env, argv[1]);
  r->skip = (size_t)get_int(env, argv[2]);
  r->path = sealfs_napi_string(env, argv[3]);
  napi_valuetype t2;
  napi_typeof(env, argv[4], &t2);
  if (t2 == napi_string) r->path2 = sealfs_napi_string(env, argv[4]);
  r->a = get_int(env, argv[5]);
  r->b = get_int(env, argv[6]);
  r->c = get_int(env, argv[7]);
  r->d = get_int(env, argv[8]);
  bool is_buffer = false;
  napi_is_buffer(env, argv[9], &is_buffer);
  if (is_buffer) {
    void *data = NULL;
    size_t len = 0;
    napi_get_buffer_info(env, argv[9], &data, &len);
    r->data = malloc(len ? len : 1);
    if (r->data) {
      memcpy(r->data, data, len);
      r->data_len = len;
    }
  }
  bool needs2 = r->op == OP_RENAME || r->op == OP_LINK || r->op == OP_SYMLINK || r->op == OP_GETXATTR || r->op == OP_SETXATTR ||
                r->op == OP_REMOVEXATTR;
  if (r->op < 0 || r->op >= OP_COUNT || r->path == NULL || r->skip > strlen(r->path) || (needs2 && r->path2 == NULL) ||
      ((r->op == OP_WRITEFILE || r->op == OP_LSTATMANY || r->op == OP_FUTIMENS || r->op == OP_SETXATTR) && r->data == NULL) || (r->op == OP_READFILE && (r->a < 0 || r->a > (1 << 24)))) {
    free_req(r);
    napi_throw_type_error(env, NULL, "fsat: invalid arguments");
    return NULL;
  }
  return r;
}

static napi_value js_fsat(napi_env env, napi_callback_info info) {
  fsat_req *r = parse(env, info);
  if (r == NULL) return NULL;
  run(r);
  napi_value out = NULL;
  if (r->err != 0) napi_throw(env, make_error(env, r));
  else out = make_result(env, r);
  free_req(r);
  return out;
}

static void async_execute(napi_env env, void *data) {
  run((fsat_req *)data);
}

static void async_complete(napi_env env, napi_status status, void *data) {
  fsat_req *r = data;
  if (status != napi_ok && r->err == 0) r->err = -ECANCELED;
  if (r->err != 0) napi_reject_deferred(env, r->deferred, make_error(env, r));
  else napi_resolve_deferred(env, r->deferred, make_result(env, r));
  napi_delete_async_work(env, r->work);
  free_req(r);
}

static napi_value js_fsat_async(napi_env env, napi_callback_info info) {
  fsat_req *r = parse(env, info);
  if (r == NULL) return NULL;
  napi_value promise, name;
  napi_create_string_utf8(env, "sealfs:fsat", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &r->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, async_execute, async_complete, r, &r->work) != napi_ok ||
      napi_queue_async_work(env, r->work) != napi_ok) {
    free_req(r);
    napi_throw_error(env, NULL, "fsat: could not queue the call");
    return NULL;
  }
  return promise;
}

/*
 * The folder named by the one string argument, opened by the caller's path (the user's own
 * choice, so links count): its descriptor, or -1 after throwing (a bad argument, open failed).
 */
static int open_folder_arg(napi_env env, napi_callback_info info, const char *fn) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fsat_req r = {.op = OP_OPEN, .syscall = "open"};
  r.path = argc == 1 ? sealfs_napi_string(env, argv[0]) : NULL;
  if (r.path == NULL) {
    char message[96];
    snprintf(message, sizeof message, "%s: path must be a string", fn);
    napi_throw_type_error(env, NULL, message);
    return -1;
  }
  int fd = open(r.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    r.err = -errno;
    napi_throw(env, make_error(env, &r));
  }
  free(r.path);
  return fd;
}

/* The vault root, opened once by the caller's path. */
static napi_value js_open_root(napi_env env, napi_callback_info info) {
  int fd = open_folder_arg(env, info, "fsatOpenRoot");
  if (fd < 0) return NULL;
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/*
 * fsatLockFolder(path): takes the vault's lock, an exclusive flock(2) on the vault folder
 * itself (opened by the caller's path, as fsatOpenRoot), without waiting. Nothing is written
 * anywhere, so no sync client carries the lock to another machine; the kernel drops it when
 * the last descriptor goes, that is when the holder ends however it ends; and it is the
 * folder's inode that is locked, whatever path (a symlink, a bind mount) reached it.
 * Returns { fd, busy, error, major, minor, ino }: fd >= 0 holds the lock (close it to let
 * go); busy: another descriptor holds it; error: the code of another failure of flock (a
 * file system that has no locks), the folder is then not locked. /proc/locks names a lock's
 * file as major:minor:inode, hence those.
 */
static napi_value js_lock_folder(napi_env env, napi_callback_info info) {
  int fd = open_folder_arg(env, info, "fsatLockFolder");
  if (fd < 0) return NULL;
  napi_value out;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    fsat_req r = {.op = OP_OPEN, .syscall = "fstat", .err = -errno};
    close(fd);
    napi_throw(env, make_error(env, &r));
    return NULL;
  }
  const char *error = NULL;
  bool busy = false;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    busy = errno == EWOULDBLOCK;
    if (!busy) error = uv_err_name(-errno);
    close(fd);
    fd = -1;
  }
  napi_value v;
  napi_create_object(env, &out);
  set_num(env, out, "fd", fd);
  napi_get_boolean(env, busy, &v);
  napi_set_named_property(env, out, "busy", v);
  if (error != NULL) {
    napi_create_string_utf8(env, error, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, out, "error", v);
  }
  set_num(env, out, "major", (double)major(st.st_dev));
  set_num(env, out, "minor", (double)minor(st.st_dev));
  set_num(env, out, "ino", (double)st.st_ino);
  return out;
}

/* The wall clock in ns since the epoch (a BigInt): the time a write is given (src/vault/cipherio.ts now()). */
static napi_value js_now(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  napi_value out;
  napi_create_bigint_int64(env, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, &out);
  return out;
}

static napi_value js_force_walk(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  bool on = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc == 1) napi_get_value_bool(env, argv[0], &on);
  g_walk = on ? 1 : 0;
  napi_get_undefined(env, &out);
  return out;
}

bool sealfs_fsat_register(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"fsat", NULL, js_fsat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsatAsync", NULL, js_fsat_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsatOpenRoot", NULL, js_open_root, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsatForceWalk", NULL, js_force_walk, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsatLockFolder", NULL, js_lock_folder, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsatNow", NULL, js_now, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
