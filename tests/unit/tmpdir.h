/* The unit tests' temporary directories: one fresh directory per test (or
 * part of one) under $TMPDIR, else /tmp, removed with everything below it
 * by nftw - no shell, so no quoting of the path.  Header-only, like tap.h. */
#ifndef ERD_TEST_TMPDIR_H
#define ERD_TEST_TMPDIR_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes $TMPDIR/erd-test-NAME-XXXXXX in buf; false (and errno) when it
 * could not. */
static inline bool tmpdir_make(char *buf, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(buf, cap, "%s/erd-test-%s-XXXXXX", base && *base ? base : "/tmp", name);
    return n > 0 && (size_t)n < cap && mkdtemp(buf) != NULL;
}

static int tmpdir__remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it (symbolic links, not what they
 * point to); true when all of it is gone. */
static inline bool tmpdir_remove(const char *dir)
{
    return nftw(dir, tmpdir__remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

#endif
