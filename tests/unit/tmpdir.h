/*
 * Test helper: a test binary's temporary directory under /tmp.
 *
 * The including file defines _GNU_SOURCE (or _XOPEN_SOURCE 500) before
 * its first include, for nftw().
 */
#ifndef KITH_TEST_TMPDIR_H
#define KITH_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Make /tmp/kith-NAME-XXXXXX into `dir`; NULL (errno set) on failure. */
static inline char *tmpdir_make(char *dir, size_t len, const char *name)
{
  snprintf(dir, len, "/tmp/kith-%s-XXXXXX", name);
  return mkdtemp(dir);
}

static inline int tmpdir_rm_entry(const char *path, const struct stat *sb,
                                  int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Remove `dir` and everything below it. */
static inline void tmpdir_remove(const char *dir)
{
  nftw(dir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* KITH_TEST_TMPDIR_H */
