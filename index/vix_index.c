/* FAISS through its C API.  The C API catches every C++ exception and turns
 * it into a negative return; the text stays in a thread-local slot that
 * faiss_get_last_error() reads, so it is copied right after each call. */
#include "index/vix_index.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

/* FAISS takes int dimensions; anything near that is a caller bug, and a
 * bound keeps n * dim products far from overflow. */
#define VIX_INDEX_MAX_DIM 65536
#define VIX_INDEX_MAX_FACTORY 256
#define VIX_INDEX_MAX_K 100000

struct vix_index {
    FaissIndex *idx;
    size_t dim;
};

static int faiss_fail(erd_diag *diag, int code, const char *what)
{
    const char *msg = faiss_get_last_error();
    return erd_fail(diag, code, "%s: %s", what, msg && *msg ? msg : "unknown FAISS error");
}

/* IVF and multi-index (IMI) families store ids themselves; the rest
 * (Flat, HNSW, PQ, LSH, ...) only number vectors 0..n-1 and need an IDMap
 * to carry rowids. */
static bool takes_ids(const char *factory)
{
    return strncmp(factory, "IDMap", 5) == 0 || strstr(factory, "IVF") != NULL ||
           strstr(factory, "IMI") != NULL;
}

int vix_index_create(const char *factory, size_t dim, vix_index **ret, erd_diag *diag)
{
    char desc[VIX_INDEX_MAX_FACTORY + 8], base[VIX_INDEX_MAX_FACTORY + 1];
    vix_index *ix = NULL;

    if (!factory || !*factory || !ret)
        return erd_fail(diag, ERD_EINVAL, "index factory string is empty");
    if (strlen(factory) > VIX_INDEX_MAX_FACTORY)
        return erd_fail(diag, ERD_EINVAL, "index factory string longer than %d bytes",
                        VIX_INDEX_MAX_FACTORY);
    if (dim == 0 || dim > VIX_INDEX_MAX_DIM)
        return erd_fail(diag, ERD_EINVAL, "index dimension %zu outside 1..%d", dim,
                        VIX_INDEX_MAX_DIM);
    /* "FACTORY|PARAMS": search parameters after the bar (nprobe=16 for IVF,
     * efSearch=64 for HNSW) are set on the new index, and FAISS writes
     * them into the index file with it. */
    const char *bar = strchr(factory, '|');
    const char *params = bar ? bar + 1 : "";
    snprintf(base, sizeof base, "%.*s", bar ? (int)(bar - factory) : (int)strlen(factory), factory);
    if (!base[0])
        return erd_fail(diag, ERD_EINVAL, "index factory string \"%s\" has no factory before '|'",
                        factory);
    snprintf(desc, sizeof desc, "%s%s", takes_ids(base) ? "" : "IDMap,", base);

    ix = calloc(1, sizeof *ix);
    if (!ix)
        return erd_fail(diag, ERD_ENOMEM, "out of memory creating index");
    if (faiss_index_factory(&ix->idx, (int)dim, desc, METRIC_INNER_PRODUCT) != 0) {
        int err = faiss_fail(diag, ERD_EFAISS, desc);
        free(ix);
        return err;
    }
    if (params[0]) {
        FaissParameterSpace *ps = NULL;
        int err = ERD_OK;
        if (faiss_ParameterSpace_new(&ps) != 0 ||
            faiss_ParameterSpace_set_index_parameters(ps, ix->idx, params) != 0)
            err = faiss_fail(diag, ERD_EINVAL, params);
        faiss_ParameterSpace_free(ps);
        if (err) {
            faiss_Index_free(ix->idx);
            free(ix);
            return err;
        }
    }
    ix->dim = dim;
    *ret = ix;
    return ERD_OK;
}

void vix_index_destroy(vix_index *index)
{
    if (!index)
        return;
    faiss_Index_free(index->idx);
    free(index);
}

static int check_batch(const vix_index *index, size_t n, const float *x, erd_diag *diag)
{
    if (!index || (n && !x))
        return erd_fail(diag, ERD_EINVAL, "no index or vectors");
    if (n > (size_t)INT64_MAX / index->dim || n * index->dim > SIZE_MAX / sizeof(float))
        return erd_fail(diag, ERD_EINVAL, "%zu vectors are too many", n);
    return ERD_OK;
}

int vix_index_train(vix_index *index, size_t n, const float *x, erd_diag *diag)
{
    int err = check_batch(index, n, x, diag);
    if (err)
        return err;
    if (faiss_Index_is_trained(index->idx))
        return ERD_OK;
    if (n == 0)
        return erd_fail(diag, ERD_EINVAL, "index needs training vectors");
    if (faiss_Index_train(index->idx, (idx_t)n, x) != 0)
        return faiss_fail(diag, ERD_EFAISS, "training index");
    return ERD_OK;
}

int vix_index_add(vix_index *index, size_t n, const float *x, const int64_t *ids, erd_diag *diag)
{
    int err = check_batch(index, n, x, diag);
    if (err)
        return err;
    if (n == 0)
        return ERD_OK;
    if (!ids)
        return erd_fail(diag, ERD_EINVAL, "no ids for %zu vectors", n);
    /* -1 is FAISS's "no result": a vector stored under it could never be
     * told apart from a miss */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return erd_fail(diag, ERD_EINVAL, "vector %zu has negative id %" PRId64, i, ids[i]);
    if (!faiss_Index_is_trained(index->idx))
        return erd_fail(diag, ERD_EINVAL, "index must be trained before adding vectors");
    if (faiss_Index_add_with_ids(index->idx, (idx_t)n, x, (const idx_t *)ids) != 0)
        return faiss_fail(diag, ERD_EFAISS, "adding vectors");
    return ERD_OK;
}

static void vix__single_thread_openmp(void)
{
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1); /* per-thread setting in OpenMP */
        done = 1;
    }
}

int vix_index_search(const vix_index *index, size_t nq, const float *queries, size_t k,
                     float *ret_scores, int64_t *ret_ids, erd_diag *diag)
{
    int err = check_batch(index, nq, queries, diag);
    if (err)
        return err;
    if (k == 0 || k > VIX_INDEX_MAX_K)
        return erd_fail(diag, ERD_EINVAL, "k = %zu outside 1..%d", k, VIX_INDEX_MAX_K);
    if (nq && (!ret_scores || !ret_ids))
        return erd_fail(diag, ERD_EINVAL, "no result buffers");
    if (nq > SIZE_MAX / k / sizeof(float))
        return erd_fail(diag, ERD_EINVAL, "%zu queries are too many", nq);
    if (nq == 0)
        return ERD_OK;
    /* A resolve searches one query; concurrency comes from the server's own
     * threads.  FAISS would open an OpenMP team per call whose idle members
     * spin against those threads (measured: twice the latency on 2 cores),
     * so each thread that searches a handful of queries runs FAISS alone. */
    if (nq < 8)
        vix__single_thread_openmp();
    if (faiss_Index_search(index->idx, (idx_t)nq, queries, (idx_t)k, ret_scores,
                           (idx_t *)ret_ids) != 0)
        return faiss_fail(diag, ERD_EFAISS, "searching index");
    for (size_t i = 0; i < nq * k; i++) {
        if (ret_ids[i] < 0) {
            ret_ids[i] = -1;
            ret_scores[i] = -INFINITY;
        }
    }
    return ERD_OK;
}

size_t vix_index_dim(const vix_index *index)
{
    return index ? index->dim : 0;
}

size_t vix_index_count(const vix_index *index)
{
    if (!index)
        return 0;
    idx_t n = faiss_Index_ntotal(index->idx);
    return n > 0 ? (size_t)n : 0;
}

/* A rename is durable only once the directory entry is on disk. */
static int fsync_dir_of(const char *path, erd_diag *diag)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
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

int vix_index_write(const vix_index *index, const char *path, erd_diag *diag)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    bool created = false;
    int err;

    if (!index || !path || !*path)
        return erd_fail(diag, ERD_EINVAL, "no index or path");
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return erd_fail(diag, ERD_EINVAL, "index path longer than %d bytes", PATH_MAX - 5);

    /* our own FILE rather than faiss_write_index_fname: FAISS ignores the
     * result of its fclose, and a full disk often shows up only there */
    f = fopen(tmp, "wbe");
    if (!f) {
        err = erd_fail(diag, ERD_EIO, "creating %s: %s", tmp, strerror(errno));
        goto out;
    }
    created = true;
    if (faiss_write_index(index->idx, f) != 0) {
        err = faiss_fail(diag, ERD_EFAISS, tmp);
        goto out;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        err = erd_fail(diag, ERD_EIO, "writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) {
        err = erd_fail(diag, ERD_EIO, "closing %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        err = erd_fail(diag, ERD_EIO, "renaming %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    created = false;
    err = fsync_dir_of(path, diag);
out:
    if (f)
        fclose(f);
    if (created)
        unlink(tmp);
    return err;
}

int vix_index_read(const char *path, vix_index **ret, erd_diag *diag)
{
    FaissIndex *idx = NULL;
    FILE *f = NULL;
    int err;

    if (!path || !*path || !ret)
        return erd_fail(diag, ERD_EINVAL, "no index path");
    f = fopen(path, "rbe");
    if (!f)
        return erd_fail(diag, ERD_EIO, "index file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        err = erd_fail(diag, ERD_EIO, "index file %s: not a regular file", path);
        goto out;
    }
    if (faiss_read_index(f, 0, &idx) != 0) {
        err = faiss_fail(diag, ERD_ECORRUPT, path);
        goto out;
    }
    if (faiss_Index_metric_type(idx) != METRIC_INNER_PRODUCT) {
        err = erd_fail(diag, ERD_EMISMATCH, "index file %s: metric is not inner product", path);
        goto out;
    }
    int d = faiss_Index_d(idx);
    if (d <= 0 || d > VIX_INDEX_MAX_DIM) {
        err = erd_fail(diag, ERD_ECORRUPT, "index file %s: dimension %d", path, d);
        goto out;
    }
    vix_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        err = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    ix->idx = idx;
    ix->dim = (size_t)d;
    idx = NULL;
    *ret = ix;
    err = ERD_OK;
out:
    if (idx)
        faiss_Index_free(idx);
    if (f)
        fclose(f);
    return err;
}
