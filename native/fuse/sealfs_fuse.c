/*
 * sealfs_fuse: the kernel side of a sealfs mount, on libfuse3's low-level API, served on
 * Node's own event loop.
 *
 * Why not fuse-native (libfuse2's high-level API): there every request is read on a libfuse
 * thread, handed to the JavaScript thread and handed back, so each of the ~12 calls a small
 * file costs wakes two sleeping threads more than necessary. On a VM that is ~45 µs a wake
 * and dominated `tar x` of small files. Here the /dev/fuse descriptor is non-blocking and
 * polled by libuv on the JavaScript thread: a request is read, decoded by libfuse and passed
 * to one JavaScript handler in the same turn, and the answer is written to the kernel from
 * JavaScript as soon as it is known. No thread is involved, and one kernel request is one
 * handler call (the low-level API answers lookup/create/setattr with attributes directly).
 *
 * This file only translates: requests become (opcode, request id, arguments...) calls of the
 * handler; reply functions take the request id. The requests it answers itself are one
 * naming an entry in bytes that are not UTF-8 (EILSEQ: see is_utf8), and a getxattr of an
 * attribute outside user.* (ENODATA: see ll_getxattr). It exports its opcode, stat-layout and
 * setattr-bit tables by name, so that src/fs/kernel.ts reads them instead of copying them.
 * Paths and inodes live in src/fs (kernel.ts, nodetable.ts).
 */
#define _GNU_SOURCE /* RENAME_NOREPLACE, RENAME_EXCHANGE (stdio.h) */
#define FUSE_USE_VERSION 35
#define NAPI_VERSION 8

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <math.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <uv.h>

#include "../sealfs_napi_string.h"

/* Opcodes of the handler's first argument, exported as `opcodes` (name -> number). */
#define OPCODES(X)                                                                                  \
  X(END) X(LOOKUP) X(FORGET) X(GETATTR) X(SETATTR) X(READLINK) X(MKDIR) X(UNLINK) X(RMDIR) X(SYMLINK) \
  X(RENAME) X(LINK) X(OPEN) X(READ) X(WRITE) X(FLUSH) X(RELEASE) X(FSYNC) X(OPENDIR) X(READDIR)      \
  X(RELEASEDIR) X(STATFS) X(CREATE) X(READDIRPLUS)                                                  \
  X(MKNOD) X(SETXATTR) X(GETXATTR) X(LISTXATTR) X(REMOVEXATTR) X(FALLOCATE)

/* The stat layout shared with JavaScript (a Float64Array), exported as `statFields`. */
#define STAT_FIELDS(X)                                                                                  \
  X(INO) X(MODE) X(NLINK) X(UID) X(GID) X(RDEV) X(SIZE) X(BLKSIZE) X(BLOCKS) X(ATIME_S) X(ATIME_NS) \
  X(MTIME_S) X(MTIME_NS) X(CTIME_S) X(CTIME_NS)

/* The statfs layout of replyStatfs's Float64Array, exported as `statfsFields`. */
#define STATFS_FIELDS(X) X(BSIZE) X(FRSIZE) X(BLOCKS) X(BFREE) X(BAVAIL) X(FILES) X(FFREE) X(NAMEMAX)

#define AS_OP(name) OP_##name,
#define AS_ST(name) ST_##name,
#define AS_SF(name) SF_##name,
#define AS_NAME(name) #name,
enum { OPCODES(AS_OP) OP_COUNT };
enum { STAT_FIELDS(AS_ST) ST_FIELDS };
enum { STATFS_FIELDS(AS_SF) SF_FIELDS };
static const char *const OP_NAMES[] = {OPCODES(AS_NAME)};
static const char *const ST_NAMES[] = {STAT_FIELDS(AS_NAME)};
static const char *const SF_NAMES[] = {STATFS_FIELDS(AS_NAME)};

/* Directory entries carry no inode number (as libfuse's high-level API without use_ino). */
#define UNKNOWN_INO 0xffffffffu
/* Requests read per poll wake-up before libuv gets a turn. */
#define MAX_REQUESTS_PER_WAKE 64
/*
 * After the last request is answered, keep reading for this long before sleeping in epoll. A program
 * working through many files sends its next request some tens of µs after our answer; on a
 * VM, waking a vCPU that went idle costs ~45 µs, about what the request itself costs. Polling
 * a little (only while requests keep coming) took `tar x` of 2,000 small files from 3.2 s to
 * 2.7 s on tmpfs and `ls -lR` from 0.7 to 0.5 s; at most this much CPU is spent per burst.
 */
#define IDLE_POLL_NS 100000
/* Most arguments any operation passes after (opcode, request id). */
#define MAX_ARGS 11

typedef struct session {
  struct fuse_session *se;
  uv_poll_t poll;
  struct fuse_buf buf;
  napi_env env;
  napi_ref handler;
  napi_async_context async;
  unsigned max_write;
  bool polling, ended, closed;
  /* Freed once both libuv is done with the poll handle and JavaScript with the session. */
  bool handle_closed, finalized;
  /*
   * Write data goes into slots of max_write bytes in a buffer JavaScript handed over
   * (`arena`), each lent out until releaseWrite(slot): no new buffer for every write, which
   * only the garbage collector would free (the mount's memory grew by tens of MiB during a
   * large copy). A write finding every slot taken gets a buffer of its own.
   */
  napi_ref arena_ref;
  uint8_t *arena;
  uint32_t slots;
  uint64_t free_slots; /* bit i set: slot i is free */
} session_t;

#define MAX_WRITE_SLOTS 64

/* ------------------------------------------------------------------------------------ */
/* Outstanding requests, by id: a stale or repeated reply is refused instead of answering */
/* a request that libfuse has already freed (or reused for another).                      */

typedef struct {
  fuse_req_t req;
  uint32_t gen;
} slot_t;

static slot_t *g_slots;
static uint32_t *g_next_free;
static uint32_t g_slot_count, g_slot_cap, g_free_head = UINT32_MAX;
/* Requests handed to JavaScript and not answered yet. */
static uint32_t g_outstanding;

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define GEN_MASK ((1u << 29) - 1) /* slot + generation stay below 2^53 */

static bool grow_slots(void) {
  const uint32_t cap = g_slot_cap == 0 ? 256 : g_slot_cap * 2;
  if (cap > SLOT_MASK) return false;
  slot_t *slots = realloc(g_slots, cap * sizeof *slots);
  if (slots == NULL) return false;
  g_slots = slots;
  uint32_t *next = realloc(g_next_free, cap * sizeof *next);
  if (next == NULL) return false;
  g_next_free = next;
  g_slot_cap = cap;
  return true;
}

/* A new id for `req`, or -1 when the table cannot grow. */
static double request_id(fuse_req_t req) {
  uint32_t i;
  if (g_free_head != UINT32_MAX) {
    i = g_free_head;
    g_free_head = g_next_free[i];
  } else {
    if (g_slot_count == g_slot_cap && !grow_slots()) return -1;
    i = g_slot_count++;
    g_slots[i].gen = 0;
  }
  g_slots[i].req = req;
  g_slots[i].gen = (g_slots[i].gen + 1) & GEN_MASK;
  g_outstanding++;
  return (double)g_slots[i].gen * (double)(1u << SLOT_BITS) + (double)i;
}

/* The slot of an outstanding request; NULL when `id` names none (any more). */
static slot_t *find_slot(double id) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  const uint64_t v = (uint64_t)id;
  const uint32_t i = (uint32_t)(v & SLOT_MASK), gen = (uint32_t)(v >> SLOT_BITS);
  if (i >= g_slot_count || g_slots[i].req == NULL || g_slots[i].gen != gen) return NULL;
  return &g_slots[i];
}

/* Takes the request out of the table; NULL when the id is not an outstanding request. */
static fuse_req_t take_request(double id) {
  slot_t *slot = find_slot(id);
  if (slot == NULL) return NULL;
  const uint32_t i = (uint32_t)(slot - g_slots);
  fuse_req_t req = slot->req;
  slot->req = NULL;
  g_next_free[i] = g_free_head;
  g_free_head = i;
  g_outstanding--;
  return req;
}

/* ------------------------------------------------------------------------------------ */
/* Calling the handler.                                                                 */

/* Runs inside the handle scope of its caller: on_readable's per request, or end_session's. */
static void call_handler(session_t *s, int op, fuse_req_t req, size_t argc, napi_value *args) {
  napi_env env = s->env;
  napi_value argv[2 + MAX_ARGS], handler, global, id;
  double rid = 0;
  if (req) {
    rid = request_id(req);
    if (rid < 0) {
      fuse_reply_err(req, ENOMEM);
      return;
    }
  }
  napi_create_uint32(env, (uint32_t)op, &argv[0]);
  napi_create_double(env, rid, &id);
  argv[1] = id;
  if (argc > MAX_ARGS) argc = MAX_ARGS;
  for (size_t i = 0; i < argc; i++) argv[2 + i] = args[i];
  napi_get_reference_value(env, s->handler, &handler);
  napi_get_global(env, &global);
  napi_value result;
  /* make_callback runs the microtasks queued by the handler, as any libuv callback does. */
  if (napi_make_callback(env, s->async, global, handler, 2 + argc, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
}

#define S(req) ((session_t *)fuse_req_userdata(req))

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static napi_value str(napi_env env, const char *s) {
  napi_value r;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

/*
 * Whether a name from the kernel is strict UTF-8 (no overlong forms, no surrogates, nothing
 * past U+10FFFF). JavaScript strings cannot hold other bytes: converted, `x\xff` and `x\xfe`
 * would both become "x\uFFFD", one file under two names. Such names are refused here with
 * EILSEQ, before any handler sees them.
 */
static bool is_utf8(const char *text) {
  const unsigned char *p = (const unsigned char *)text;
  while (*p) {
    const unsigned char c = *p;
    int more;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the first continuation byte */
    if (c < 0x80) {
      p++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) lo = 0xA0;      /* overlong */
      else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) lo = 0x90;      /* overlong */
      else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
      return false;
    }
    p++;
    if (*p < lo || *p > hi) return false;
    for (int i = 1; i < more; i++) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += more;
  }
  return true;
}

/* Answers EILSEQ and returns false when a name (or a second one, if not NULL) is not UTF-8. */
static bool names_ok(fuse_req_t req, const char *name, const char *other) {
  if (is_utf8(name) && (other == NULL || is_utf8(other))) return true;
  fuse_reply_err(req, EILSEQ);
  return false;
}

/* fh of a request that has one, else -1: file handles are small positive integers. */
static double fh_of(const struct fuse_file_info *fi) {
  return fi ? (double)fi->fh : -1;
}

/* ------------------------------------------------------------------------------------ */
/* Low-level operations: each passes its arguments on.                                  */

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  session_t *s = userdata;
  if (s->max_write > 0) conn->max_write = s->max_write;
  /* The kernel truncates through setattr first, as before: open() never truncates. */
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  /*
   * Every listing carries its entries' attributes: `ls -l`, `find`, `rm -r` then need no
   * lookup per name (100,000 names: 100,000 round trips less). With the kernel's "auto"
   * choice only a listing's first page would carry them, as programs read a whole folder
   * before they stat its entries.
   */
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name)};
  call_handler(s, OP_LOOKUP, req, 2, a);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)nlookup)};
  call_handler(s, OP_FORGET, NULL, 2, a);
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  session_t *s = S(req);
  for (size_t i = 0; i < count; i++) {
    napi_handle_scope scope;
    napi_open_handle_scope(s->env, &scope);
    napi_value a[] = {num(s->env, (double)forgets[i].ino), num(s->env, (double)forgets[i].nlookup)};
    call_handler(s, OP_FORGET, NULL, 2, a);
    napi_close_handle_scope(s->env, scope);
  }
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, fh_of(fi))};
  call_handler(s, OP_GETATTR, req, 2, a);
}

/*
 * A setattr time, exact: its seconds since the epoch (NaN for a time not to set) or, with
 * `nsec`, its nanoseconds. "Now" (UTIME_NOW) is read here, once for both times.
 */
static double ts_part(const struct timespec *ts, const struct timespec *now, int now_flag, int set_flag, int to_set, bool nsec) {
  if (to_set & now_flag) ts = now;
  else if (!(to_set & set_flag)) return NAN;
  return nsec ? (double)ts->tv_nsec : (double)ts->tv_sec;
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_env env = s->env;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  napi_value a[] = {
      num(env, (double)ino),
      num(env, (double)to_set),
      num(env, (double)attr->st_mode),
      num(env, (to_set & FUSE_SET_ATTR_UID) ? (double)attr->st_uid : -1),
      num(env, (to_set & FUSE_SET_ATTR_GID) ? (double)attr->st_gid : -1),
      num(env, (double)attr->st_size),
      num(env, ts_part(&attr->st_atim, &now, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_ATIME, to_set, false)),
      num(env, ts_part(&attr->st_mtim, &now, FUSE_SET_ATTR_MTIME_NOW, FUSE_SET_ATTR_MTIME, to_set, false)),
      num(env, fh_of(fi)),
      num(env, ts_part(&attr->st_atim, &now, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_ATIME, to_set, true)),
      num(env, ts_part(&attr->st_mtim, &now, FUSE_SET_ATTR_MTIME_NOW, FUSE_SET_ATTR_MTIME, to_set, true)),
  };
  call_handler(s, OP_SETATTR, req, 11, a);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino)};
  call_handler(s, OP_READLINK, req, 1, a);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name), num(s->env, (double)mode)};
  call_handler(s, OP_MKDIR, req, 3, a);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name)};
  call_handler(s, OP_UNLINK, req, 2, a);
}

/*
 * mkfifo, mknod and bind() of a Unix socket. The kernel asks for a device only for a caller
 * with CAP_MKNOD (vfs_mknod checks it before the request is sent).
 */
static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name), num(s->env, (double)mode), num(s->env, (double)rdev)};
  call_handler(s, OP_MKNOD, req, 4, a);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name)};
  call_handler(s, OP_RMDIR, req, 2, a);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  if (!names_ok(req, name, link)) return;
  session_t *s = S(req);
  napi_value a[] = {str(s->env, link), num(s->env, (double)parent), str(s->env, name)};
  call_handler(s, OP_SYMLINK, req, 3, a);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags) {
  if (!names_ok(req, name, newname)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name), num(s->env, (double)newparent), str(s->env, newname),
                    num(s->env, (double)flags)};
  call_handler(s, OP_RENAME, req, 5, a);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  if (!names_ok(req, newname, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)newparent), str(s->env, newname)};
  call_handler(s, OP_LINK, req, 3, a);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)fi->flags)};
  call_handler(s, OP_OPEN, req, 2, a);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)size), num(s->env, (double)off), num(s->env, fh_of(fi))};
  call_handler(s, OP_READ, req, 4, a);
}

/* A free write slot holding a copy of `buf` as a Uint8Array in *data, or -1 when none is free. */
static int lend_slot(session_t *s, const char *buf, size_t size, napi_value *data) {
  if (s->free_slots == 0 || size > s->max_write) return -1;
  const int slot = __builtin_ctzll(s->free_slots);
  napi_value arena;
  if (napi_get_reference_value(s->env, s->arena_ref, &arena) != napi_ok ||
      napi_create_typedarray(s->env, napi_uint8_array, size, arena, (size_t)slot * s->max_write, data) != napi_ok) {
    return -1;
  }
  memcpy(s->arena + (size_t)slot * s->max_write, buf, size);
  s->free_slots &= ~(1ull << slot);
  return slot;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value data;
  void *copy;
  /* libfuse reuses its buffer for the next request: the data must outlive this call. */
  const int slot = lend_slot(s, buf, size, &data);
  if (slot < 0 && napi_create_buffer_copy(s->env, size, buf, &copy, &data) != napi_ok) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  napi_value a[] = {num(s->env, (double)ino), data, num(s->env, (double)off), num(s->env, fh_of(fi)), num(s->env, slot)};
  call_handler(s, OP_WRITE, req, 5, a);
}

#define FH_OP(fn, opcode)                                                      \
  static void fn(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { \
    session_t *s = S(req);                                                     \
    napi_value a[] = {num(s->env, (double)ino), num(s->env, fh_of(fi))};       \
    call_handler(s, opcode, req, 2, a);                                        \
  }

FH_OP(ll_flush, OP_FLUSH)
FH_OP(ll_release, OP_RELEASE)
FH_OP(ll_releasedir, OP_RELEASEDIR)

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino)};
  call_handler(s, OP_OPENDIR, req, 1, a);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)datasync), num(s->env, fh_of(fi))};
  call_handler(s, OP_FSYNC, req, 3, a);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)size), num(s->env, (double)off), num(s->env, fh_of(fi))};
  call_handler(s, OP_READDIR, req, 4, a);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)size), num(s->env, (double)off), num(s->env, fh_of(fi))};
  call_handler(s, OP_READDIRPLUS, req, 4, a);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino)};
  call_handler(s, OP_STATFS, req, 1, a);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  if (!names_ok(req, name, NULL)) return;
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)parent), str(s->env, name), num(s->env, (double)mode), num(s->env, (double)fi->flags)};
  call_handler(s, OP_CREATE, req, 4, a);
}

/*
 * Extended attributes. Names and values are bytes (a name need not be UTF-8), passed as
 * Buffers. These requests are never answered ENOSYS: the kernel would take that as "no
 * extended attributes here" until unmount (kernel.ts answers every one of them).
 */
static napi_value bytes(napi_env env, const void *data, size_t length) {
  napi_value r;
  void *copy;
  napi_create_buffer_copy(env, length, length ? data : "", &copy, &r);
  return r;
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), bytes(s->env, name, strlen(name)), bytes(s->env, value, size), num(s->env, (double)flags)};
  call_handler(s, OP_SETXATTR, req, 4, a);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  /*
   * Only user.* attributes are stored (src/vault/xattrs.ts); any other is absent, which is
   * what PlainFs.getxattr answers too. Answered here because the kernel asks for
   * security.capability before every write() to a file (file_remove_privs), and `ls -l` for
   * system.posix_acl_access of every entry: a trip through JavaScript each would cost more.
   */
  if (strncmp(name, "user.", 5) != 0) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), bytes(s->env, name, strlen(name)), num(s->env, (double)size)};
  call_handler(s, OP_GETXATTR, req, 3, a);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)size)};
  call_handler(s, OP_LISTXATTR, req, 2, a);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), bytes(s->env, name, strlen(name))};
  call_handler(s, OP_REMOVEXATTR, req, 2, a);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  session_t *s = S(req);
  napi_value a[] = {num(s->env, (double)ino), num(s->env, (double)mode), num(s->env, (double)offset), num(s->env, (double)length),
                    num(s->env, fh_of(fi))};
  call_handler(s, OP_FALLOCATE, req, 5, a);
}

static const struct fuse_lowlevel_ops LL_OPS = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .readlink = ll_readlink,
    .mkdir = ll_mkdir,
    .unlink = ll_unlink,
    .rmdir = ll_rmdir,
    .mknod = ll_mknod,
    .symlink = ll_symlink,
    .rename = ll_rename,
    .link = ll_link,
    .open = ll_open,
    .read = ll_read,
    .write = ll_write,
    .flush = ll_flush,
    .release = ll_release,
    .fsync = ll_fsync,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .readdirplus = ll_readdirplus,
    .releasedir = ll_releasedir,
    .statfs = ll_statfs,
    .create = ll_create,
    .setxattr = ll_setxattr,
    .getxattr = ll_getxattr,
    .listxattr = ll_listxattr,
    .removexattr = ll_removexattr,
    .fallocate = ll_fallocate,
};

/* ------------------------------------------------------------------------------------ */
/* The session on the event loop.                                                       */

static void end_session(session_t *s) {
  if (s->ended) return;
  s->ended = true;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = false;
  }
  napi_handle_scope scope;
  napi_open_handle_scope(s->env, &scope);
  call_handler(s, OP_END, NULL, 0, NULL);
  napi_close_handle_scope(s->env, scope);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  session_t *s = poll->data;
  if (status < 0) {
    end_session(s);
    return;
  }
  uint64_t idle_since = 0;
  for (int n = 0; n < MAX_REQUESTS_PER_WAKE && !s->ended;) {
    const int res = fuse_session_receive_buf(s->se, &s->buf);
    if (res == -EAGAIN) {
      /* An answer still being worked on (thread pool, timers) needs the event loop now. */
      if (g_outstanding > 0) return;
      const uint64_t now = uv_hrtime();
      if (idle_since == 0) idle_since = now;
      if (now - idle_since > IDLE_POLL_NS) return;
      continue;
    }
    idle_since = 0;
    if (res == -EINTR || res == -ENOENT) continue; /* ENOENT: the request was interrupted and dropped */
    if (res <= 0 || fuse_session_exited(s->se)) {
      end_session(s); /* 0: the kernel ended the connection (unmounted or aborted) */
      return;
    }
    /* The operations build their arguments as JavaScript values: one scope per request. */
    napi_handle_scope scope;
    if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
    fuse_session_process_buf(s->se, &s->buf);
    napi_close_handle_scope(s->env, scope);
    n++;
  }
}

static void free_session(uv_handle_t *handle) {
  session_t *s = handle->data;
  free(s->buf.mem);
  s->buf.mem = NULL;
  s->handle_closed = true;
  if (s->finalized) free(s);
}

/* The session object was garbage collected: no call can name this session any more. */
static void finalize_session(napi_env env, void *data, void *hint) {
  session_t *s = data;
  s->finalized = true;
  if (!s->closed) return; /* still mounted: the process is exiting */
  if (s->handle_closed) free(s);
}

/* ------------------------------------------------------------------------------------ */
/* JavaScript entry points.                                                             */

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static bool arg_double(napi_env env, napi_value v, double *out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}

static session_t *arg_session(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

/* mount(mountpoint, options "a,b=c", maxWrite, handler, arena: ArrayBuffer of whole maxWrite slots) → session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], external, resource_name;
  double max_write = 0;
  void *arena = NULL;
  size_t arena_len = 0;
  char message[1200];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_error(env, "mount expects 5 arguments");
  if (napi_get_arraybuffer_info(env, argv[4], &arena, &arena_len) != napi_ok) return throw_error(env, "mount: the write arena must be an ArrayBuffer");
  char *mountpoint = sealfs_napi_string(env, argv[0]);
  char *options = sealfs_napi_string(env, argv[1]);
  if (!mountpoint || !options || !arg_double(env, argv[2], &max_write)) {
    free(mountpoint);
    free(options);
    return throw_error(env, "mount expects (mountpoint: string, options: string, maxWrite: number, handler)");
  }
  session_t *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_error(env, "out of memory");
  s->env = env;
  s->max_write = (unsigned)max_write;
  if (s->max_write > 0) {
    s->arena = arena;
    s->slots = (uint32_t)(arena_len / s->max_write);
    if (s->slots > MAX_WRITE_SLOTS) s->slots = MAX_WRITE_SLOTS;
    s->free_slots = s->slots == 64 ? ~0ull : (1ull << s->slots) - 1;
  }

  char *fuse_argv[] = {"sealfs", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fuse_argv);
  s->se = fuse_session_new(&args, &LL_OPS, sizeof LL_OPS, s);
  fuse_opt_free_args(&args);
  if (s->se == NULL) {
    snprintf(message, sizeof message, "libfuse refused the options \"%s\"", options);
    goto fail;
  }
  if (fuse_session_mount(s->se, mountpoint) != 0) {
    snprintf(message, sizeof message, "could not mount %s (libfuse printed the reason on stderr)", mountpoint);
    fuse_session_destroy(s->se);
    goto fail;
  }
  const int fd = fuse_session_fd(s->se);
  const int flags = fcntl(fd, F_GETFL);
  if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 || uv_poll_init(uv_default_loop(), &s->poll, fd) != 0) {
    snprintf(message, sizeof message, "could not watch the FUSE device of %s", mountpoint);
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    goto fail;
  }
  s->poll.data = s;
  napi_create_reference(env, argv[3], 1, &s->handler);
  napi_create_reference(env, argv[4], 1, &s->arena_ref);
  napi_create_string_utf8(env, "sealfs:fuse", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &s->async);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  s->polling = true;
  free(mountpoint);
  free(options);
  napi_create_external(env, s, finalize_session, NULL, &external);
  return external;
fail:
  free(mountpoint);
  free(options);
  free(s);
  return throw_error(env, message);
}

/* close(session): stops serving, detaches the mount if it is still there, frees the session. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = argc ? arg_session(env, argv[0]) : NULL;
  if (s == NULL) return throw_error(env, "close expects a session");
  if (s->closed) return NULL;
  s->closed = true;
  s->ended = true;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = false;
  }
  fuse_session_unmount(s->se);
  fuse_session_destroy(s->se);
  napi_delete_reference(env, s->handler);
  napi_delete_reference(env, s->arena_ref);
  napi_async_destroy(env, s->async);
  uv_close((uv_handle_t *)&s->poll, free_session);
  return NULL;
}

/* releaseWrite(session, slot): the write that was lent `slot` is done with its data. */
static napi_value js_release_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double slot = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = argc == 2 ? arg_session(env, argv[0]) : NULL;
  if (s == NULL || !arg_double(env, argv[1], &slot)) return throw_error(env, "releaseWrite expects (session, slot)");
  if (!s->closed && slot >= 0 && slot < s->slots) s->free_slots |= 1ull << (int)slot;
  return NULL;
}

/* --- replies: each takes the request id first and returns whether it was outstanding. --- */

static napi_value boolean(napi_env env, bool b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}

/* The request of argv[0], taken out of the table; NULL (nothing to answer) otherwise. */
static fuse_req_t reply_target(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  double id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want || !arg_double(env, argv[0], &id)) {
    napi_throw_type_error(env, NULL, "reply: wrong arguments");
    return NULL;
  }
  return take_request(id);
}

/* A Float64Array's elements (NULL data for an empty one), when `v` is one of at least `min` elements. */
static bool float64s(napi_env env, napi_value v, size_t min, const double **data, size_t *length) {
  napi_typedarray_type type;
  void *d;
  if (napi_get_typedarray_info(env, v, &type, length, &d, NULL, NULL) != napi_ok || type != napi_float64_array ||
      *length < min) {
    return false;
  }
  *data = d;
  return true;
}

static void stat_of(const double *f, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)f[ST_INO];
  st->st_mode = (mode_t)f[ST_MODE];
  st->st_nlink = (nlink_t)f[ST_NLINK];
  st->st_uid = (uid_t)f[ST_UID];
  st->st_gid = (gid_t)f[ST_GID];
  st->st_rdev = (dev_t)f[ST_RDEV];
  st->st_size = (off_t)f[ST_SIZE];
  st->st_blksize = (blksize_t)f[ST_BLKSIZE];
  st->st_blocks = (blkcnt_t)f[ST_BLOCKS];
  st->st_atim.tv_sec = (time_t)f[ST_ATIME_S];
  st->st_atim.tv_nsec = (long)f[ST_ATIME_NS];
  st->st_mtim.tv_sec = (time_t)f[ST_MTIME_S];
  st->st_mtim.tv_nsec = (long)f[ST_MTIME_NS];
  st->st_ctim.tv_sec = (time_t)f[ST_CTIME_S];
  st->st_ctim.tv_nsec = (long)f[ST_CTIME_NS];
}

static bool get_stat(napi_env env, napi_value v, struct stat *st) {
  size_t length;
  const double *f;
  if (!float64s(env, v, ST_FIELDS, &f, &length)) return false;
  stat_of(f, st);
  return true;
}

/* replyErr(id, errno) — errno positive; 0 answers success for operations without data. */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double e = 0;
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  arg_double(env, argv[1], &e);
  fuse_reply_err(req, (int)e);
  return boolean(env, true);
}

static bool entry_param(napi_env env, napi_value *argv, struct fuse_entry_param *e) {
  double ino, gen, attr_timeout, entry_timeout;
  memset(e, 0, sizeof *e);
  if (!arg_double(env, argv[0], &ino) || !arg_double(env, argv[1], &gen) || !get_stat(env, argv[2], &e->attr) ||
      !arg_double(env, argv[3], &attr_timeout) || !arg_double(env, argv[4], &entry_timeout)) {
    return false;
  }
  e->ino = (fuse_ino_t)ino;
  e->generation = (uint64_t)gen;
  e->attr_timeout = attr_timeout;
  e->entry_timeout = entry_timeout;
  return true;
}

/* replyEntry(id, nodeid, generation, stat, attrTimeout, entryTimeout) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct fuse_entry_param e;
  fuse_req_t req = reply_target(env, info, 6, argv);
  if (req == NULL) return boolean(env, false);
  if (!entry_param(env, argv + 1, &e)) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyEntry: bad entry");
  }
  fuse_reply_entry(req, &e);
  return boolean(env, true);
}

/* replyCreate(id, nodeid, generation, stat, attrTimeout, entryTimeout, fh) */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  struct fuse_entry_param e;
  struct fuse_file_info fi;
  double fh;
  fuse_req_t req = reply_target(env, info, 7, argv);
  if (req == NULL) return boolean(env, false);
  if (!entry_param(env, argv + 1, &e) || !arg_double(env, argv[6], &fh)) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyCreate: bad entry");
  }
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)fh;
  if (fuse_reply_create(req, &e, &fi) == -ENOENT) {
    /* The caller was interrupted: the file is open here but nobody will close it. */
    return boolean(env, false);
  }
  return boolean(env, true);
}

/* replyXattr(id, size): the size of a value or name list, answering a request of size 0. */
static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double n = 0;
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  if (!arg_double(env, argv[1], &n) || n < 0) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyXattr: bad size");
  }
  fuse_reply_xattr(req, (size_t)n);
  return boolean(env, true);
}

/* replyAttr(id, stat, timeout) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  struct stat st;
  double timeout;
  fuse_req_t req = reply_target(env, info, 3, argv);
  if (req == NULL) return boolean(env, false);
  if (!get_stat(env, argv[1], &st) || !arg_double(env, argv[2], &timeout)) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyAttr: bad stat");
  }
  fuse_reply_attr(req, &st, timeout);
  return boolean(env, true);
}

/* replyOpen(id, fh) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct fuse_file_info fi;
  double fh;
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  if (!arg_double(env, argv[1], &fh)) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyOpen: bad handle");
  }
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)fh;
  return boolean(env, fuse_reply_open(req, &fi) != -ENOENT);
}

/* replyWrite(id, count) */
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double count = 0;
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  arg_double(env, argv[1], &count);
  fuse_reply_write(req, (size_t)count);
  return boolean(env, true);
}

/* replyBuf(id, bytes, length) */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *data = NULL;
  size_t length = 0;
  double n = 0;
  napi_typedarray_type type;
  fuse_req_t req = reply_target(env, info, 3, argv);
  if (req == NULL) return boolean(env, false);
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      !arg_double(env, argv[2], &n) || n < 0 || n > (double)length) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyBuf: bad buffer");
  }
  fuse_reply_buf(req, data, (size_t)n);
  return boolean(env, true);
}

/* replyReadlink(id, target) */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  char *target = sealfs_napi_string(env, argv[1]);
  if (target == NULL) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyReadlink: bad target");
  }
  fuse_reply_readlink(req, target);
  free(target);
  return boolean(env, true);
}

/* replyStatfs(id, numbers): numbers laid out as `statfsFields` says */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_typedarray_type type;
  size_t length;
  void *data;
  fuse_req_t req = reply_target(env, info, 2, argv);
  if (req == NULL) return boolean(env, false);
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
      length < SF_FIELDS) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyStatfs: bad numbers");
  }
  const double *f = data;
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = (unsigned long)f[SF_BSIZE];
  st.f_frsize = (unsigned long)f[SF_FRSIZE];
  st.f_blocks = (fsblkcnt_t)f[SF_BLOCKS];
  st.f_bfree = (fsblkcnt_t)f[SF_BFREE];
  st.f_bavail = (fsblkcnt_t)f[SF_BAVAIL];
  st.f_files = (fsfilcnt_t)f[SF_FILES];
  st.f_ffree = (fsfilcnt_t)f[SF_FFREE];
  st.f_favail = (fsfilcnt_t)f[SF_FFREE];
  st.f_namemax = (unsigned long)f[SF_NAMEMAX];
  fuse_reply_statfs(req, &st);
  return boolean(env, true);
}

/*
 * replyDirents(id, names, start, size): entries names[start..] packed into at most `size`
 * bytes; the offset of entry i is i + 1 (where the next readdir continues). Returns how many
 * entries fitted, or -1 when the id was not outstanding.
 */
static napi_value js_reply_dirents(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  uint32_t count = 0;
  double start = 0, size = 0;
  fuse_req_t req = reply_target(env, info, 4, argv);
  if (req == NULL) return num(env, -1);
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || !arg_double(env, argv[2], &start) ||
      !arg_double(env, argv[3], &size) || size < 0) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyDirents: bad arguments");
  }
  char *buf = malloc((size_t)size + 1);
  if (buf == NULL) {
    fuse_reply_err(req, ENOMEM);
    return num(env, 0);
  }
  struct stat st;
  memset(&st, 0, sizeof st);
  st.st_ino = UNKNOWN_INO;
  size_t used = 0;
  uint32_t i = (uint32_t)start;
  char name[1024];
  for (; i < count; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok) {
      break;
    }
    const size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    if (used + need > (size_t)size) break;
    fuse_add_direntry(req, buf + used, (size_t)size - used, name, &st, (off_t)i + 1);
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_create_double(env, (double)(i - (uint32_t)start), &result);
  return result;
}

/*
 * replyDirentsPlus(id, names, first, nodes, stats, size, attrTimeout, entryTimeout): entries
 * with their attributes, packed into at most `size` bytes; names[j] is entry first + j (offset
 * first + j + 1), nodes[j] its node id (0: no attributes, the kernel looks it up itself) and
 * stats[j * ST_FIELDS ...] its stat. Each entry with a node id that is answered counts as one
 * lookup of that node. Returns how many entries fitted (the caller forgets the others' lookups),
 * or -1 when the id was not outstanding.
 */
static napi_value js_reply_dirents_plus(napi_env env, napi_callback_info info) {
  napi_value argv[8], result;
  uint32_t count = 0;
  double first = 0, size = 0, attr_timeout = 0, entry_timeout = 0;
  size_t node_count = 0, stat_count = 0;
  fuse_req_t req = reply_target(env, info, 8, argv);
  if (req == NULL) return num(env, -1);
  const double *nodes = NULL, *stats = NULL;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || !arg_double(env, argv[2], &first) ||
      !float64s(env, argv[3], 0, &nodes, &node_count) || !float64s(env, argv[4], 0, &stats, &stat_count) || node_count < count || stat_count < (size_t)count * ST_FIELDS || !arg_double(env, argv[5], &size) ||
      size < 0 || !arg_double(env, argv[6], &attr_timeout) || !arg_double(env, argv[7], &entry_timeout)) {
    fuse_reply_err(req, EIO);
    return throw_error(env, "replyDirentsPlus: bad arguments");
  }
  char *buf = malloc((size_t)size + 1);
  if (buf == NULL) {
    fuse_reply_err(req, ENOMEM);
    return num(env, 0);
  }
  size_t used = 0;
  uint32_t j = 0;
  char name[1024];
  for (; j < count; j++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, argv[1], j, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok) {
      break;
    }
    const size_t need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
    if (used + need > (size_t)size) break;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = (fuse_ino_t)nodes[j];
    stat_of(stats + (size_t)j * ST_FIELDS, &e.attr);
    if (e.ino != 0) {
      e.attr_timeout = attr_timeout;
      e.entry_timeout = entry_timeout;
    }
    fuse_add_direntry_plus(req, buf + used, (size_t)size - used, name, &e, (off_t)(first + j + 1));
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_create_double(env, (double)j, &result);
  return result;
}

/* The caller of a request still outstanding: [uid, gid], for ownership of new files. */
static napi_value js_caller(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !arg_double(env, argv[0], &id)) {
    return throw_error(env, "caller expects a request id");
  }
  const slot_t *slot = find_slot(id);
  if (slot == NULL) {
    napi_get_undefined(env, &result);
    return result;
  }
  const struct fuse_ctx *ctx = fuse_req_ctx(slot->req);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, num(env, (double)ctx->uid));
  napi_set_element(env, result, 1, num(env, (double)ctx->gid));
  return result;
}

/* An object of name -> value, for the tables JavaScript reads instead of copying them. */
static napi_value table(napi_env env, const char *const *names, const int *values, size_t count) {
  napi_value object;
  napi_create_object(env, &object);
  for (size_t i = 0; i < count; i++) napi_set_named_property(env, object, names[i], num(env, values ? values[i] : (double)i));
  return object;
}

static const char *const SETATTR_NAMES[] = {"MODE", "UID", "GID", "SIZE", "ATIME", "MTIME", "ATIME_NOW", "MTIME_NOW"};
static const int SETATTR_BITS[] = {FUSE_SET_ATTR_MODE,  FUSE_SET_ATTR_UID,   FUSE_SET_ATTR_GID,       FUSE_SET_ATTR_SIZE,
                                   FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_MTIME_NOW};
static const char *const RENAME_NAMES[] = {"NOREPLACE", "EXCHANGE"};
static const int RENAME_BITS[] = {RENAME_NOREPLACE, RENAME_EXCHANGE};

static const char *const XATTR_NAMES[] = {"CREATE", "REPLACE"};
static const int XATTR_BITS[] = {XATTR_CREATE, XATTR_REPLACE};
static const char *const FALLOCATE_NAMES[] = {"KEEP_SIZE", "PUNCH_HOLE", "ZERO_RANGE", "COLLAPSE_RANGE", "INSERT_RANGE"};
static const int FALLOCATE_BITS[] = {FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE,
                                     FALLOC_FL_INSERT_RANGE};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor props[] = {
      {"opcodes", NULL, NULL, NULL, NULL, table(env, OP_NAMES, NULL, OP_COUNT), napi_enumerable, NULL},
      {"statFields", NULL, NULL, NULL, NULL, table(env, ST_NAMES, NULL, ST_FIELDS), napi_enumerable, NULL},
      {"statfsFields", NULL, NULL, NULL, NULL, table(env, SF_NAMES, NULL, SF_FIELDS), napi_enumerable, NULL},
      {"setattrBits", NULL, NULL, NULL, NULL, table(env, SETATTR_NAMES, SETATTR_BITS, COUNT(SETATTR_BITS)), napi_enumerable, NULL},
      {"renameFlags", NULL, NULL, NULL, NULL, table(env, RENAME_NAMES, RENAME_BITS, COUNT(RENAME_BITS)), napi_enumerable, NULL},
      {"xattrFlags", NULL, NULL, NULL, NULL, table(env, XATTR_NAMES, XATTR_BITS, COUNT(XATTR_BITS)), napi_enumerable, NULL},
      {"fallocateFlags", NULL, NULL, NULL, NULL, table(env, FALLOCATE_NAMES, FALLOCATE_BITS, COUNT(FALLOCATE_BITS)), napi_enumerable, NULL},
      /* The libfuse this addon runs with (not the headers it was built against): `sealfs --version`. */
      {"libfuseVersion", NULL, NULL, NULL, NULL, str(env, fuse_pkgversion()), napi_enumerable, NULL},
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseWrite", NULL, js_release_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyXattr", NULL, js_reply_xattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyDirents", NULL, js_reply_dirents, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyDirentsPlus", NULL, js_reply_dirents_plus, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unknownIno", NULL, NULL, NULL, NULL, num(env, (double)UNKNOWN_INO), napi_enumerable, NULL},
      {"direntPlusHeader", NULL, NULL, NULL, NULL, num(env, (double)fuse_add_direntry_plus(NULL, NULL, 0, "", NULL, 0)), napi_enumerable, NULL},
      {"caller", NULL, js_caller, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, COUNT(props), props) != napi_ok) return NULL;
  return exports;
}
