/* The unit tests' temporary directories: one fresh directory per test (or
 * part of one) under $TMPDIR, else /tmp, removed with everything below it
 * by nftw - no shell, so no quoting of the path.  Header-only, like tap.h. */
#ifndef ERD_TEST_TMPDIR_H
#define ERD_TEST_TMPDIR_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Writes len bytes of data to path, replacing it; true when all landed. */
static inline bool tmpdir_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0) & (w == len);
}

/* The whole file at path in a malloc'd buffer (*len its size); NULL when
 * it cannot be read. */
static inline unsigned char *tmpdir_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long n = -1;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    rewind(f);
    if (n >= 0)
        b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return b;
}

/* Overwrites with c the byte `at` places into the first occurrence of find
 * in the file at path (a file edited by hand); true when it was found and
 * the file rewritten. */
static inline bool tmpdir_edit(const char *path, const char *find, size_t at, char c)
{
    size_t len = 0;
    unsigned char *b = tmpdir_read(path, &len);
    char *hit = b ? memmem(b, len, find, strlen(find)) : NULL;
    bool ok = hit && at < strlen(find);
    if (ok) {
        hit[at] = c;
        ok = tmpdir_write(path, b, len);
    }
    free(b);
    return ok;
}

/* Copies at most max bytes of src to dst (a damaged or cut-off copy for a
 * test to read); true when they were copied. */
static inline bool tmpdir_copy(const char *src, const char *dst, size_t max)
{
    FILE *in = fopen(src, "rb");
    FILE *out = in ? fopen(dst, "wb") : NULL;
    char buf[1 << 14];
    size_t n, left = max;
    bool good = out != NULL;
    while (good && left && (n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in)) > 0) {
        good = fwrite(buf, 1, n, out) == n;
        left -= n;
    }
    good = good && !ferror(in);
    if (out)
        good &= fclose(out) == 0;
    if (in)
        fclose(in);
    return good;
}

#endif
