/*
 * sealfs: what pjdfstest's configure.ac finds on Linux with glibc >= 2.32 (Debian 12), written
 * out so that the suite builds with one cc line (no autoconf in CI). bench/lib/conformance.ts
 * compiles third_party/pjdfstest/pjdfstest.c with this file as its config.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define HAVE_SYS_SYSMACROS_H 1
#define HAVE_FACCESSAT 1
#define HAVE_FCHMODAT 1
#define HAVE_FCHOWNAT 1
#define HAVE_FSTATAT 1
#define HAVE_LCHMOD 1
#define HAVE_LINKAT 1
#define HAVE_MKDIRAT 1
#define HAVE_MKFIFOAT 1
#define HAVE_MKNODAT 1
#define HAVE_OPENAT 1
#define HAVE_POSIX_FALLOCATE 1
#define HAVE_READLINKAT 1
#define HAVE_RENAMEAT 1
#define HAVE_SYMLINKAT 1
#define HAVE_UTIMENSAT 1
#define HAVE_STRUCT_STAT_ST_ATIM 1
#define HAVE_STRUCT_STAT_ST_CTIM 1
#define HAVE_STRUCT_STAT_ST_MTIM 1
/* Not on Linux: bindat, connectat, chflags and friends, lpathconf, birth time in struct stat;
 * configure does not test for unlinkat (pjdfstest then has no unlinkat action). No ACLs:
 * sys/acl.h comes with libacl1-dev, which the suite's Linux tests do not need. */
