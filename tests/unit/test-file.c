#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/erd_file.h"
#include "tap.h"
#include "tmpdir.h"

static char dir[200];

/* The file's whole content, or "" when it cannot be read. */
static const char *slurp(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Names in dir besides "." and "..". */
static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    char path[256], sub[256], tmp[4096], leftover[512];
    erd_diag diag = {0};
    if (!tmpdir_make(dir, sizeof dir, "file")) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.bin", dir);

    is_int(erd_file_replace(path, "first", 5, &diag), ERD_OK, "new file written: %s", diag.msg);
    is_str(slurp(path), "first", "content as given");
    is_int(erd_file_replace(path, "second!", 7, &diag), ERD_OK, "file replaced: %s", diag.msg);
    is_str(slurp(path), "second!", "new content, old one gone");
    is_int(entries(), 1, "no temporary left beside it");
    is_int(erd_file_replace(path, NULL, 0, &diag), ERD_OK, "empty file written");
    is_str(slurp(path), "", "empty");
    erd_file_replace(path, "second!", 7, NULL);

    /* A crashed writer's temporary with our name is not in the way. */
    snprintf(leftover, sizeof leftover, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(leftover, "w");
    if (f) {
        fputs("half a file", f);
        fclose(f);
    }
    is_int(erd_file_replace(path, "third", 5, &diag), ERD_OK, "leftover temporary replaced: %s",
           diag.msg);
    is_str(slurp(path), "third", "content as given");
    is_int(entries(), 1, "leftover gone");

    /* Failures leave the old file as it was and nothing beside it. */
    snprintf(sub, sizeof sub, "%s/no/such/dir/x", dir);
    ok(erd_file_replace(sub, "x", 1, &diag) == ERD_EIO && strstr(diag.msg, "creating"),
       "missing directory: EIO (%s)", diag.msg);
    snprintf(sub, sizeof sub, "%s/adir", dir);
    mkdir(sub, 0700);
    snprintf(tmp, sizeof tmp, "%s/adir/inside", dir);
    f = fopen(tmp, "w");
    if (f)
        fclose(f);
    ok(erd_file_replace(sub, "x", 1, &diag) == ERD_EIO && strstr(diag.msg, "renaming"),
       "over a non-empty directory: EIO at the rename (%s)", diag.msg);
    struct stat st;
    ok(stat(sub, &st) == 0 && S_ISDIR(st.st_mode), "the directory is still there");
    is_int(entries(), 2, "no temporary left after a failed rename");
    unlink(tmp);
    rmdir(sub);

    char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    is_int(erd_file_replace(longp, "x", 1, &diag), ERD_ETOOLONG, "path too long refused");
    FILE *g = NULL;
    char small[8];
    ok(erd_file_temp(path, small, sizeof small, &g, &diag) == ERD_ETOOLONG && g == NULL,
       "temporary name beyond the caller's buffer refused, nothing created");
    is_int(entries(), 1, "nothing created");

    /* temp + discard: the old file stands */
    is_int(erd_file_temp(path, tmp, sizeof tmp, &g, &diag), ERD_OK, "temporary opened");
    if (g)
        fputs("never", g);
    erd_file_discard(g, tmp);
    is_str(slurp(path), "third", "discarded: old content stands");
    is_int(entries(), 1, "temporary removed");
    erd_file_discard(NULL, NULL);
    ok(1, "discard accepts NULL");

    is_int(erd_file_sync_dir(path, &diag), ERD_OK, "directory synced");
    is_int(erd_file_sync_dir("relative-name", &diag), ERD_OK, "current directory synced");

    ok(tmpdir_remove(dir), "temp dir removed");
    return tap_done();
}
