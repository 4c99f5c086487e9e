#include "proto/erd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int erd_file_sync_dir(const char *path, erd_diag *diag)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int n;

    if (!slash)
        n = snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        n = snprintf(dir, sizeof dir, "/");
    else
        n = snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return erd_fail(diag, ERD_ETOOLONG, "directory of %s: path too long", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return erd_fail(diag, ERD_EIO, "opening directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return erd_fail(diag, ERD_EIO, "syncing directory %s: %s", dir, strerror(e));
    return ERD_OK;
}

int erd_file_temp(const char *path, char *ret_tmp, size_t tmp_cap, FILE **ret_f, erd_diag *diag)
{
    char tmp[4096];
    if (!path || !*path || !ret_tmp || !ret_f)
        return erd_fail(diag, ERD_EINVAL, "no path");
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= tmp_cap)
        return erd_fail(diag, ERD_ETOOLONG, "%s: path too long", path);
    /* "x": a leftover of a crashed writer with this pid is not trusted to
     * be ours; remove it and try once more */
    FILE *f = fopen(tmp, "wbxe");
    if (!f && errno == EEXIST && unlink(tmp) == 0)
        f = fopen(tmp, "wbxe");
    if (!f)
        return erd_fail(diag, ERD_EIO, "creating %s: %s", tmp, strerror(errno));
    memcpy(ret_tmp, tmp, (size_t)n + 1);
    *ret_f = f;
    return ERD_OK;
}

void erd_file_discard(FILE *f, const char *tmp)
{
    if (f)
        fclose(f);
    if (tmp && *tmp)
        unlink(tmp);
}

int erd_file_commit(FILE *f, const char *tmp, const char *path, erd_diag *diag)
{
    if (!f || !tmp || !path) {
        erd_file_discard(f, tmp);
        return erd_fail(diag, ERD_EINVAL, "nothing to commit");
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        erd_file_discard(f, tmp);
        return erd_fail(diag, ERD_EIO, "writing %s: %s", tmp, strerror(e));
    }
    /* a full disk or a failing NFS server may only tell at close */
    if (fclose(f) != 0) {
        int e = errno;
        erd_file_discard(NULL, tmp);
        return erd_fail(diag, ERD_EIO, "closing %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        erd_file_discard(NULL, tmp);
        return erd_fail(diag, ERD_EIO, "renaming %s to %s: %s", tmp, path, strerror(e));
    }
    return erd_file_sync_dir(path, diag);
}

int erd_file_replace(const char *path, const void *data, size_t len, erd_diag *diag)
{
    char tmp[4096];
    FILE *f = NULL;
    int rc = erd_file_temp(path, tmp, sizeof tmp, &f, diag);
    if (rc < 0)
        return rc;
    if (len && fwrite(data, 1, len, f) != len) {
        int e = errno;
        erd_file_discard(f, tmp);
        return erd_fail(diag, ERD_EIO, "writing %s: %s", tmp, strerror(e));
    }
    return erd_file_commit(f, tmp, path, diag); /* takes f */
}
