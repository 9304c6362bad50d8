/*
 * sealfs: the part of xfstests' configure result that ltp/fsx.c and src/global.h use, for Linux
 * with glibc (Debian 12), so that fsx builds standalone with one cc line (no autoconf, no
 * xfsprogs headers: built without -DXFS, so no XFS-only preallocation, -x). Kept with
 * bench/lib/conformance.ts, which passes it as config.h.
 */
#define HAVE_SYS_TYPES_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_STATVFS_H 1
#define HAVE_SYS_TIME_H 1
#define HAVE_SYS_IOCTL_H 1
#define HAVE_SYS_WAIT_H 1
#define HAVE_MALLOC_H 1
#define HAVE_DIRENT_H 1
#define HAVE_STDLIB_H 1
#define HAVE_UNISTD_H 1
#define HAVE_ERRNO_H 1
#define HAVE_STRING_H 1
#define HAVE_SYS_FCNTL_H 1
#define HAVE_SYS_PARAM_H 1
#define HAVE_LIBGEN_H 1
#define HAVE_ASSERT_H 1
#define STDC_HEADERS 1
#define HAVE_STRINGS_H 1
#define HAVE_ERR_H 1
#define HAVE_LINUX_FALLOC_H 1
#define HAVE_SYS_MMAN_H 1
#define HAVE_COPY_FILE_RANGE 1
/* xfstests builds with getopt.h pulled in by its build flags; fsx.c uses getopt_long. */
#include <getopt.h>
