#include "index/vix_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_store.h"
#include "proto/erd_file.h"
#include "proto/erd_hash.h"

#define VIX__SNAP_MAGIC "ERDSNAP1"
#define VIX__SNAP_END "ERDSNEND"
#define VIX__SNAP_DB "erd.db"
#define VIX__SNAP_MAX_FILES 4096
#define VIX__SNAP_MAX_NAME 1024

typedef struct vix__out {
    FILE *f;
    uint64_t hash, bytes;
} vix__out;

static bool vix__put(vix__out *o, const void *p, size_t n)
{
    o->hash = erd_fnv1a64(o->hash, p, n);
    o->bytes += n;
    return fwrite(p, 1, n, o->f) == n;
}

static bool vix__put_u64(vix__out *o, uint64_t v, int width)
{
    unsigned char b[8];
    for (int i = 0; i < width; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return vix__put(o, b, (size_t)width);
}

static int vix__put_file(vix__out *o, const char *name, const char *path, erd_diag *diag)
{
    FILE *in = fopen(path, "rbe");
    if (!in)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    struct stat sb;
    int rc = ERD_OK;
    if (fstat(fileno(in), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = erd_fail(diag, ERD_EIO, "%s: not a regular file", path);
        goto out;
    }
    size_t nl = strlen(name);
    if (!vix__put_u64(o, nl, 4) || !vix__put(o, name, nl) || !vix__put_u64(o, (uint64_t)sb.st_size, 8)) {
        rc = erd_fail(diag, ERD_EIO, "writing the snapshot: %s", strerror(errno));
        goto out;
    }
    char buf[1 << 16];
    uint64_t left = (uint64_t)sb.st_size;
    while (left) {
        size_t n = fread(buf, 1, left < sizeof buf ? (size_t)left : sizeof buf, in);
        if (n == 0) {
            rc = erd_fail(diag, ERD_EIO, "%s changed while it was copied", path);
            goto out;
        }
        if (!vix__put(o, buf, n)) {
            rc = erd_fail(diag, ERD_EIO, "writing the snapshot: %s", strerror(errno));
            goto out;
        }
        left -= n;
    }
out:
    fclose(in);
    return rc;
}

typedef struct vix__names {
    char (*v)[VIX__SNAP_MAX_NAME];
    size_t n;
    vix_store *store;
    erd_diag *diag;
} vix__names;

static int vix__collect_index(void *user, const vix_catalog_info *info)
{
    vix__names *nm = user;
    vix_index_meta meta;
    int rc = vix_store_meta_get(nm->store, info->id, &meta, nm->diag);
    if (rc == ERD_ENOINDEX)
        return 0;
    if (rc < 0)
        return rc;
    /* Files beside the database keep the pair movable; an absolute path
     * would point outside the snapshot. */
    if (strchr(meta.path, '/') || nm->n >= VIX__SNAP_MAX_FILES) {
        rc = erd_fail(nm->diag, ERD_EINVAL, "index of \"%s\" (%s) is not beside the database",
                      info->name, meta.path);
    } else {
        snprintf(nm->v[nm->n++], VIX__SNAP_MAX_NAME, "%s", meta.path);
    }
    vix_index_meta_clear(&meta);
    return rc;
}

/* One attempt: backup, then the index files the backup's metadata names,
 * into a temporary that replaces out_path only when whole.  ERD_ENOTFOUND
 * when one of them vanished meanwhile (try again). */
static int vix__snapshot_once(const char *db_path, const char *tmp_db, const char *out_path,
                              vix_snapshot_info *info, erd_diag *diag)
{
    vix_store *src = NULL, *copy = NULL;
    vix__names nm = {0};
    vix__out o = {.hash = ERD_FNV1A64_OFFSET};
    char tmp[4096] = "";
    int rc = vix_store_open(db_path, VIX_STORE_READONLY, &src, diag);
    if (rc == ERD_OK)
        rc = vix_store_backup(src, tmp_db, diag);
    vix_store_close(src);
    if (rc < 0)
        goto out;
    nm.v = calloc(VIX__SNAP_MAX_FILES, sizeof *nm.v);
    if (!nm.v) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = vix_store_open(tmp_db, VIX_STORE_READONLY, &copy, diag);
    if (rc < 0)
        goto out;
    nm.store = copy;
    nm.diag = diag;
    rc = vix_store_catalog_foreach(copy, 0, vix__collect_index, &nm, diag);
    vix_store_close(copy);
    if (rc < 0)
        goto out;
    /* each index's entity table, when it has one, goes along: a replica
     * then starts as fast as the original */
    for (size_t i = 0, n_index = nm.n; i < n_index && nm.n < VIX__SNAP_MAX_FILES; i++) {
        char path[2048], table[2100];
        if (vix_index_file_path(db_path, nm.v[i], path, sizeof path) != ERD_OK ||
            vix_index_table_path(path, table, sizeof table) != ERD_OK || access(table, R_OK) != 0)
            continue;
        const char *name = strrchr(table, '/') ? strrchr(table, '/') + 1 : table;
        if (strlen(name) < VIX__SNAP_MAX_NAME)
            memcpy(nm.v[nm.n++], name, strlen(name) + 1);
    }

    rc = erd_file_temp(out_path, tmp, sizeof tmp, &o.f, diag);
    if (rc < 0)
        goto out;
    if (!vix__put(&o, VIX__SNAP_MAGIC, 8) || !vix__put_u64(&o, nm.n + 1, 4)) {
        rc = erd_fail(diag, ERD_EIO, "writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = vix__put_file(&o, VIX__SNAP_DB, tmp_db, diag);
    for (size_t i = 0; rc == ERD_OK && i < nm.n; i++) {
        char path[2048];
        rc = vix_index_file_path(db_path, nm.v[i], path, sizeof path);
        if (rc == ERD_OK)
            rc = vix__put_file(&o, nm.v[i], path, diag);
    }
    if (rc < 0)
        goto out;
    uint64_t sum = o.hash;
    if (!vix__put_u64(&o, sum, 8) || !vix__put(&o, VIX__SNAP_END, 8)) {
        rc = erd_fail(diag, ERD_EIO, "writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = erd_file_commit(o.f, tmp, out_path, diag); /* takes o.f */
    o.f = NULL;
    if (rc < 0)
        goto out;
    info->files = nm.n + 1;
    info->bytes = o.bytes;
    info->checksum = sum;
out:
    if (o.f)
        erd_file_discard(o.f, tmp);
    free(nm.v);
    unlink(tmp_db);
    return rc;
}

int vix_snapshot_write(const char *db_path, const char *out_path, vix_snapshot_info *ret,
                       erd_diag *diag)
{
    char tmp_db[4096];
    vix_snapshot_info info = {0};
    if (!db_path || !out_path)
        return erd_fail(diag, ERD_EINVAL, "no database or output path");
    if (snprintf(tmp_db, sizeof tmp_db, "%s.db.tmp", out_path) >= (int)sizeof tmp_db)
        return erd_fail(diag, ERD_ETOOLONG, "output path too long");
    int rc = ERD_ENOTFOUND;
    for (int attempt = 0; attempt < 5 && rc == ERD_ENOTFOUND; attempt++)
        rc = vix__snapshot_once(db_path, tmp_db, out_path, &info, diag);
    if (rc < 0)
        return rc;
    if (ret)
        *ret = info;
    return ERD_OK;
}

/* ---- reading ---- */

typedef struct vix__in {
    FILE *f;
    uint64_t hash, left; /* bytes before the checksum not yet read */
} vix__in;

static bool vix__get(vix__in *in, void *p, size_t n)
{
    if (n > in->left || fread(p, 1, n, in->f) != n)
        return false;
    in->left -= n;
    in->hash = erd_fnv1a64(in->hash, p, n);
    return true;
}

static bool vix__get_u64(vix__in *in, uint64_t *v, int width)
{
    unsigned char b[8];
    if (!vix__get(in, b, (size_t)width))
        return false;
    *v = 0;
    for (int i = 0; i < width; i++)
        *v |= (uint64_t)b[i] << (8 * i);
    return true;
}

/* Walks the snapshot; with dir NULL only checks it, else writes its files
 * into dir. */
static int vix__walk(const char *snap, const char *dir, vix_snapshot_info *info, erd_diag *diag)
{
    vix__in in = {.hash = ERD_FNV1A64_OFFSET};
    FILE *out = NULL;
    char path[4096] = "";
    int rc = ERD_OK;
    in.f = fopen(snap, "rbe");
    if (!in.f)
        return erd_fail(diag, ERD_EIO, "snapshot %s: %s", snap, strerror(errno));
    struct stat sb;
    if (fstat(fileno(in.f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 32) {
        rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: not a snapshot (too short)", snap);
        goto out;
    }
    in.left = (uint64_t)sb.st_size - 16;
    char magic[8];
    uint64_t count;
    if (!vix__get(&in, magic, 8) || memcmp(magic, VIX__SNAP_MAGIC, 8) != 0 ||
        !vix__get_u64(&in, &count, 4) || count == 0 || count > VIX__SNAP_MAX_FILES + 1) {
        rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: bad header", snap);
        goto out;
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t nl, size;
        char name[VIX__SNAP_MAX_NAME];
        if (!vix__get_u64(&in, &nl, 4) || nl == 0 || nl >= sizeof name ||
            !vix__get(&in, name, (size_t)nl) || !vix__get_u64(&in, &size, 8) || size > in.left) {
            rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: file entry %llu is damaged", snap,
                          (unsigned long long)i);
            goto out;
        }
        name[nl] = '\0';
        if (memchr(name, '/', (size_t)nl) || memchr(name, '\0', (size_t)nl) || name[0] == '.' ||
            (i == 0 && strcmp(name, VIX__SNAP_DB) != 0)) {
            rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: bad file name \"%.100s\"", snap, name);
            goto out;
        }
        char final[4096];
        if (dir) {
            if (snprintf(final, sizeof final, "%s/%s", dir, name) >= (int)sizeof final) {
                rc = erd_fail(diag, ERD_ETOOLONG, "%s/%s: path too long", dir, name);
                goto out;
            }
            rc = erd_file_temp(final, path, sizeof path, &out, diag);
            if (rc < 0)
                goto out;
        }
        char buf[1 << 16];
        while (size) {
            size_t n = size < sizeof buf ? (size_t)size : sizeof buf;
            if (!vix__get(&in, buf, n)) {
                rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: truncated", snap);
                goto out;
            }
            if (out && fwrite(buf, 1, n, out) != n) {
                rc = erd_fail(diag, ERD_EIO, "%s: %s", path, strerror(errno));
                goto out;
            }
            size -= n;
        }
        if (out) {
            rc = erd_file_commit(out, path, final, diag); /* takes out */
            out = NULL;
            if (rc < 0)
                goto out;
        }
    }
    uint64_t sum = in.hash, stored;
    char end[8];
    in.left = 16;
    if (!vix__get_u64(&in, &stored, 8) || !vix__get(&in, end, 8) || memcmp(end, VIX__SNAP_END, 8) ||
        stored != sum) {
        rc = erd_fail(diag, ERD_ECORRUPT, "snapshot %s: checksum mismatch (damaged or truncated)",
                      snap);
        goto out;
    }
    info->files = count;
    info->bytes = (uint64_t)sb.st_size - 16;
    info->checksum = sum;
out:
    erd_file_discard(out, out ? path : NULL);
    fclose(in.f);
    return rc;
}

int vix_snapshot_unpack(const char *snap_path, const char *dir, char *ret_db, size_t db_cap,
                        vix_snapshot_info *ret, erd_diag *diag)
{
    vix_snapshot_info info = {0};
    if (!snap_path || !dir || !ret_db)
        return erd_fail(diag, ERD_EINVAL, "no snapshot or folder");
    /* Checked whole first: a damaged snapshot never half-replaces a
     * folder a replica may be about to serve. */
    int rc = vix__walk(snap_path, NULL, &info, diag);
    if (rc < 0)
        return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return erd_fail(diag, ERD_EIO, "creating %s: %s", dir, strerror(errno));
    rc = vix__walk(snap_path, dir, &info, diag);
    if (rc < 0)
        return rc;
    if (snprintf(ret_db, db_cap, "%s/%s", dir, VIX__SNAP_DB) >= (int)db_cap)
        return erd_fail(diag, ERD_ETOOLONG, "database path too long");
    if (ret)
        *ret = info;
    return ERD_OK;
}
