/* erd's inverted-file index over low-bit codes (format and contract in vix_ivf.h). */
#include "index/vix_ivf.h"
#include "index/vix_internal.h"
#include "index/vix_sq.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#define VIX_IVF_VERSION 1
#define VIX_IVF_MAX_DIM 65536
#define VIX_IVF_MAX_NLIST (1u << 20)
#define VIX_IVF_MAX_RESCORE 100000
/* Vectors assigned to lists per FAISS call: a matrix product per chunk. */
#define VIX_IVF_ASSIGN_CHUNK 16384

/* On disk, little-endian as the machine writes it (files do not travel
 * between architectures; the magic and sizes catch a wrong one). */
typedef struct vix__ivf_header {
    char magic[8];
    uint32_t version, bits;
    uint64_t dim, nlist, nprobe, rescore, ntotal, npos, max_list;
    uint64_t off_lo, off_step, off_cent, off_list, off_ids, off_codes, off_vecs, file_len;
} vix__ivf_header;

struct vix_ivf {
    size_t dim, nlist, nprobe, rescore;
    int bits;
    size_t blk_bytes; /* one block of VIX_SQ_LANES code vectors */
    bool trained;
    FaissIndex *coarse; /* the FAISS IVF whose quantizer assigns vectors while building */
    float *own_lo, *own_step, *own_cent; /* trained arrays while building */
    /* vectors added, in order, until laid out in a file image; their
     * floats go to an unnamed temporary file (at 10M vectors they are
     * 7.7 GB: page cache the kernel may write out, not the build's heap) */
    uint32_t *add_list;
    int64_t *add_ids;
    FILE *add_x;
    size_t add_n, add_cap;
    bool from_file; /* read-only: a loaded index */
    /* the file image, mapped (a loaded index's file, or a built index's
     * image in a temporary file made by its first search) */
    pthread_mutex_t mu;
    atomic_bool mapped_current;
    void *map;
    size_t map_len;
    const float *lo, *step, *cent; /* cent: blocks of 16 centroids, dimension-major */
    const uint64_t *list_off;      /* nlist + 1 positions, multiples of 16 */
    const int64_t *ids;
    const uint8_t *codes;
    /* the codes copied to huge pages by a thread of their own once mapped
     * (vix__hot_start); NULL until the copy is whole: the map's are read */
    const uint8_t *_Atomic hot_codes;
    void *hot_mem;
    size_t hot_len, hot_copy;
    char *hot_vecs; /* the floats' pages, faulted in by the same thread */
    size_t hot_vecs_len;
    pthread_t hot_thread;
    bool hot_running;
    atomic_bool hot_cancel;
    const float *vecs;
    size_t ntotal, npos, max_list;
};

static int vix__faiss_fail(erd_diag *diag, const char *what)
{
    const char *msg = faiss_get_last_error();
    return erd_fail(diag, ERD_EFAISS, "%s: %s", what, msg && *msg ? msg : "unknown FAISS error");
}

int vix_ivf_parse(const char *factory, size_t *ret_nlist, int *ret_bits, erd_diag *diag)
{
    if (strncmp(factory, "erdIVF", 6) != 0)
        return ERD_ENOTFOUND;
    const char *p = factory + 6;
    char *end = NULL;
    errno = 0;
    unsigned long long nlist = strtoull(p, &end, 10);
    int bits = 0;
    if (end == p || errno || nlist == 0 || nlist > VIX_IVF_MAX_NLIST || strncmp(end, ",SQ", 3))
        goto bad;
    p = end + 3;
    unsigned long b = strtoul(p, &end, 10);
    if (end == p || (*end && *end != '|') || !vix_sq_bits_valid((int)b))
        goto bad;
    bits = (int)b;
    *ret_nlist = (size_t)nlist;
    *ret_bits = bits;
    return ERD_OK;
bad:
    return erd_fail(diag, ERD_EINVAL,
                    "index factory \"%s\": erdIVF<lists 1..%u>,SQ<8, 4 or 2 bits> expected",
                    factory, VIX_IVF_MAX_NLIST);
}

int vix_ivf_create(size_t dim, size_t nlist, int bits, vix_ivf **ret, erd_diag *diag)
{
    if (dim == 0 || dim > VIX_IVF_MAX_DIM || nlist == 0 || nlist > VIX_IVF_MAX_NLIST ||
        !vix_sq_bits_valid(bits))
        return erd_fail(diag, ERD_EINVAL, "erd IVF: dimension %zu, %zu lists, %d bits", dim,
                        nlist, bits);
    vix_ivf *ivf = calloc(1, sizeof *ivf);
    if (!ivf)
        return erd_fail(diag, ERD_ENOMEM, "out of memory creating an index");
    ivf->dim = dim;
    ivf->nlist = nlist;
    ivf->bits = bits;
    ivf->nprobe = VIX_IVF_NPROBE;
    ivf->rescore = VIX_IVF_RESCORE;
    ivf->blk_bytes = vix_sq_block_bytes(dim, bits);
    pthread_mutex_init(&ivf->mu, NULL);
    *ret = ivf;
    return ERD_OK;
}

static void vix__hot_stop(vix_ivf *ivf)
{
    if (ivf->hot_running) {
        atomic_store(&ivf->hot_cancel, true);
        pthread_join(ivf->hot_thread, NULL);
        ivf->hot_running = false;
    }
    atomic_store(&ivf->hot_codes, NULL);
    if (ivf->hot_mem)
        munmap(ivf->hot_mem, ivf->hot_len);
    ivf->hot_mem = NULL;
    ivf->hot_len = 0;
}

static void vix__unmap(vix_ivf *ivf)
{
    vix__hot_stop(ivf);
    if (ivf->map)
        munmap(ivf->map, ivf->map_len);
    ivf->map = NULL;
    ivf->map_len = 0;
    atomic_store(&ivf->mapped_current, false);
}

void vix_ivf_destroy(vix_ivf *ivf)
{
    if (!ivf)
        return;
    vix__unmap(ivf);
    if (ivf->coarse)
        faiss_Index_free(ivf->coarse);
    free(ivf->own_lo);
    free(ivf->own_step);
    free(ivf->own_cent);
    free(ivf->add_list);
    free(ivf->add_ids);
    if (ivf->add_x)
        fclose(ivf->add_x);
    pthread_mutex_destroy(&ivf->mu);
    free(ivf);
}

bool vix_ivf_is_trained(const vix_ivf *ivf)
{
    return ivf && ivf->trained;
}

size_t vix_ivf_count(const vix_ivf *ivf)
{
    return !ivf ? 0 : ivf->from_file ? ivf->ntotal : ivf->add_n;
}

size_t vix_ivf_dim(const vix_ivf *ivf)
{
    return ivf ? ivf->dim : 0;
}

size_t vix_ivf_code_bytes(const vix_ivf *ivf)
{
    return ivf ? ivf->blk_bytes / VIX_SQ_LANES + sizeof(int64_t) : 0;
}

/* FAISS's IVF k-means (inner-product assignment, as its own IVF indexes
 * train) gives the centroids; its quantizer stays for the adds. */
int vix_ivf_train(vix_ivf *ivf, size_t n, const float *x, erd_diag *diag)
{
    char desc[64];
    if (ivf->trained)
        return ERD_OK;
    if (n < ivf->nlist)
        return erd_fail(diag, ERD_EINVAL, "%zu training vectors for %zu lists: need as many",
                        n, ivf->nlist);
    snprintf(desc, sizeof desc, "IVF%zu,Flat", ivf->nlist);
    FaissIndex *coarse = NULL;
    if (faiss_index_factory(&coarse, (int)ivf->dim, desc, METRIC_INNER_PRODUCT) != 0)
        return vix__faiss_fail(diag, desc);
    int rc = ERD_OK;
    if (faiss_Index_train(coarse, (idx_t)n, x) != 0) {
        rc = vix__faiss_fail(diag, "training the coarse centroids");
        goto fail;
    }
    FaissIndexFlat *q = faiss_IndexFlat_cast(faiss_IndexIVF_quantizer(faiss_IndexIVF_cast(coarse)));
    float *cx = NULL;
    size_t ncx = 0;
    if (q)
        faiss_IndexFlat_xb(q, &cx, &ncx);
    if (!cx || ncx != ivf->nlist * ivf->dim) {
        rc = erd_fail(diag, ERD_EINTERNAL, "coarse centroids not where FAISS keeps them");
        goto fail;
    }
    ivf->own_lo = malloc(ivf->dim * sizeof(float));
    ivf->own_step = malloc(ivf->dim * sizeof(float));
    ivf->own_cent = malloc(ncx * sizeof(float));
    if (!ivf->own_lo || !ivf->own_step || !ivf->own_cent) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory training an index");
        goto fail;
    }
    memcpy(ivf->own_cent, cx, ncx * sizeof(float));
    rc = vix_sq_fit(ivf->dim, ivf->bits, n, x, ivf->own_lo, ivf->own_step, diag);
    if (rc < 0)
        goto fail;
    ivf->coarse = coarse;
    ivf->trained = true;
    return ERD_OK;
fail:
    faiss_Index_free(coarse);
    return rc;
}

static int vix__add_grow(vix_ivf *ivf, size_t need)
{
    if (need <= ivf->add_cap)
        return ERD_OK;
    size_t cap = ivf->add_cap ? ivf->add_cap : 1024;
    while (cap < need)
        cap *= 2;
    if (!ivf->add_x && !(ivf->add_x = tmpfile()))
        return ERD_EIO;
    uint32_t *l = realloc(ivf->add_list, cap * sizeof *l);
    if (!l)
        return ERD_ENOMEM;
    ivf->add_list = l;
    int64_t *ids = realloc(ivf->add_ids, cap * sizeof *ids);
    if (!ids)
        return ERD_ENOMEM;
    ivf->add_ids = ids;
    ivf->add_cap = cap;
    return ERD_OK;
}

int vix_ivf_add(vix_ivf *ivf, size_t n, const float *x, const int64_t *ids, erd_diag *diag)
{
    if (ivf->from_file)
        return erd_fail(diag, ERD_EUNSUPPORTED, "an erd IVF index read from a file is read-only");
    if (!ivf->trained)
        return erd_fail(diag, ERD_EINVAL, "index must be trained before adding vectors");
    if (ivf->add_n + n > UINT32_MAX - VIX_SQ_LANES * ivf->nlist)
        return erd_fail(diag, ERD_ETOOLARGE, "more than 2^32 vectors in one index");
    int rc = vix__add_grow(ivf, ivf->add_n + n);
    if (rc < 0)
        return erd_fail(diag, rc, rc == ERD_EIO ? "temporary file for %zu vectors: %s"
                                                : "out of memory adding %zu vectors%s",
                        n, rc == ERD_EIO ? strerror(errno) : "");
    FaissIndex *q = faiss_IndexIVF_quantizer(faiss_IndexIVF_cast(ivf->coarse));
    size_t chunk = n < VIX_IVF_ASSIGN_CHUNK ? n : VIX_IVF_ASSIGN_CHUNK;
    float *dist = malloc(chunk * sizeof *dist);
    idx_t *lab = malloc(chunk * sizeof *lab);
    if (!dist || !lab) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory adding %zu vectors", n);
        goto out;
    }
    for (size_t first = 0; first < n; first += chunk) {
        size_t m = n - first < chunk ? n - first : chunk;
        if (faiss_Index_search(q, (idx_t)m, x + first * ivf->dim, 1, dist, lab) != 0) {
            rc = vix__faiss_fail(diag, "assigning vectors to lists");
            goto out;
        }
        for (size_t i = 0; i < m; i++) {
            if (lab[i] < 0 || (size_t)lab[i] >= ivf->nlist) {
                rc = erd_fail(diag, ERD_EINTERNAL, "vector %zu assigned to no list", first + i);
                goto out;
            }
            ivf->add_list[ivf->add_n + first + i] = (uint32_t)lab[i];
        }
    }
    memcpy(ivf->add_ids + ivf->add_n, ids, n * sizeof *ids);
    /* a failed or short write leaves add_n as it was; the next add
     * writes over the tail */
    if (fseeko(ivf->add_x, (off_t)(ivf->add_n * ivf->dim * sizeof *x), SEEK_SET) != 0 ||
        fwrite(x, ivf->dim * sizeof *x, n, ivf->add_x) != n) {
        rc = erd_fail(diag, ERD_EIO, "temporary file for %zu vectors: %s", n, strerror(errno));
        goto out;
    }
    ivf->add_n += n;
    vix__unmap(ivf); /* a search lays the lists out again */
out:
    free(dist);
    free(lab);
    return rc;
}

static int vix__param_value(const char *p, const char *name, size_t max, size_t *ret)
{
    size_t len = strlen(name);
    if (strncmp(p, name, len) != 0 || p[len] != '=')
        return ERD_ENOTFOUND;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(p + len + 1, &end, 10);
    if (end == p + len + 1 || errno || v == 0 || v > max || (*end && *end != ','))
        return ERD_EINVAL;
    *ret = (size_t)v;
    return ERD_OK;
}

int vix_ivf_set_params(vix_ivf *ivf, const char *params, erd_diag *diag)
{
    size_t nprobe = ivf->nprobe, rescore = ivf->rescore;
    for (const char *p = params; p && *p;) {
        int rc = vix__param_value(p, "nprobe", VIX_IVF_MAX_NLIST, &nprobe);
        if (rc == ERD_ENOTFOUND)
            rc = vix__param_value(p, "rescore", VIX_IVF_MAX_RESCORE, &rescore);
        if (rc < 0)
            return erd_fail(diag, ERD_EINVAL,
                            "%s: erd IVF takes nprobe=1..%u and rescore=1..%u, comma-separated",
                            params, VIX_IVF_MAX_NLIST, VIX_IVF_MAX_RESCORE);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    ivf->nprobe = nprobe;
    ivf->rescore = rescore;
    return ERD_OK;
}

/* ---- the file image ---- */

static uint64_t vix__align(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Offsets of every array for the counts in h (dim, nlist, npos, bits set). */
static void vix__layout(vix__ivf_header *h)
{
    const uint64_t page = 4096, dim = h->dim;
    const uint64_t cent_blocks = (h->nlist + VIX_SQ_LANES - 1) / VIX_SQ_LANES;
    h->off_lo = vix__align(sizeof *h, 64);
    h->off_step = vix__align(h->off_lo + dim * sizeof(float), 64);
    h->off_cent = vix__align(h->off_step + dim * sizeof(float), 64);
    h->off_list = vix__align(h->off_cent + cent_blocks * VIX_SQ_LANES * dim * sizeof(float), 64);
    h->off_ids = vix__align(h->off_list + (h->nlist + 1) * sizeof(uint64_t), 64);
    h->off_codes = vix__align(h->off_ids + h->npos * sizeof(int64_t), page);
    h->off_vecs = vix__align(h->off_codes + h->npos / VIX_SQ_LANES *
                                                vix_sq_block_bytes(dim, (int)h->bits), page);
    h->file_len = vix__align(h->off_vecs + h->npos * dim * sizeof(float), page);
}

static int vix__put(FILE *f, const void *p, size_t len, uint64_t *at)
{
    if (len && fwrite(p, 1, len, f) != len)
        return ERD_EIO;
    *at += len;
    return ERD_OK;
}

/* Zeros up to offset `to`. */
static int vix__pad_to(FILE *f, uint64_t to, uint64_t *at)
{
    static const char zeros[4096];
    while (*at < to) {
        size_t m = to - *at < sizeof zeros ? (size_t)(to - *at) : sizeof zeros;
        if (vix__put(f, zeros, m, at) < 0)
            return ERD_EIO;
    }
    return ERD_OK;
}

/* The members of every list in order of addition (a counting sort):
 * list l holds perm[start[l] .. start[l + 1]); off[l] is its first
 * position in the file, lists padded to whole blocks. */
static int vix__lists(const vix_ivf *ivf, uint32_t **ret_perm, uint64_t *start, uint64_t *off,
                      uint64_t *ret_max)
{
    uint32_t *perm = malloc((ivf->add_n ? ivf->add_n : 1) * sizeof *perm);
    if (!perm)
        return ERD_ENOMEM;
    memset(start, 0, (ivf->nlist + 1) * sizeof *start);
    for (size_t i = 0; i < ivf->add_n; i++)
        start[ivf->add_list[i] + 1]++;
    uint64_t max = 0;
    off[0] = 0;
    for (size_t l = 0; l < ivf->nlist; l++) {
        max = start[l + 1] > max ? start[l + 1] : max;
        off[l + 1] = off[l] + vix__align(start[l + 1], VIX_SQ_LANES);
        start[l + 1] += start[l];
    }
    uint64_t *next = malloc((ivf->nlist ? ivf->nlist : 1) * sizeof *next);
    if (!next) {
        free(perm);
        return ERD_ENOMEM;
    }
    memcpy(next, start, ivf->nlist * sizeof *next);
    for (size_t i = 0; i < ivf->add_n; i++)
        perm[next[ivf->add_list[i]]++] = (uint32_t)i;
    free(next);
    *ret_perm = perm;
    *ret_max = vix__align(max, VIX_SQ_LANES);
    return ERD_OK;
}

/* Centroids as the query-time scan reads them: 16 side by side per dimension. */
static int vix__put_centroids(const vix_ivf *ivf, FILE *f, uint64_t *at)
{
    const size_t dim = ivf->dim, nb = (ivf->nlist + VIX_SQ_LANES - 1) / VIX_SQ_LANES;
    float row[VIX_SQ_LANES];
    for (size_t b = 0; b < nb; b++)
        for (size_t d = 0; d < dim; d++) {
            for (size_t l = 0; l < VIX_SQ_LANES; l++) {
                size_t c = b * VIX_SQ_LANES + l;
                row[l] = c < ivf->nlist ? ivf->own_cent[c * dim + d] : 0.0f; /* never read */
            }
            if (vix__put(f, row, sizeof row, at) < 0)
                return ERD_EIO;
        }
    return ERD_OK;
}

/* The lists laid out, member after member of each, padded to whole blocks. */
typedef struct vix__lists_out {
    const float *x; /* the added vectors, mapped from their temporary file */
    const uint32_t *perm;
    const uint64_t *start, *off;
} vix__lists_out;

static int vix__put_ids(const vix_ivf *ivf, FILE *f, const vix__lists_out *lo, uint64_t *at)
{
    const int64_t none = -1;
    for (size_t l = 0; l < ivf->nlist; l++) {
        uint64_t n = lo->start[l + 1] - lo->start[l];
        for (uint64_t p = 0; p < lo->off[l + 1] - lo->off[l]; p++)
            if (vix__put(f, p < n ? &ivf->add_ids[lo->perm[lo->start[l] + p]] : &none,
                         sizeof none, at) < 0)
                return ERD_EIO;
    }
    return ERD_OK;
}

static int vix__put_codes(const vix_ivf *ivf, FILE *f, const vix__lists_out *lo, uint64_t *at)
{
    uint8_t *blk = malloc(ivf->blk_bytes);
    if (!blk)
        return ERD_ENOMEM;
    int rc = ERD_OK;
    for (size_t l = 0; l < ivf->nlist && rc == ERD_OK; l++) {
        uint64_t n = lo->start[l + 1] - lo->start[l];
        for (uint64_t p = 0; p < lo->off[l + 1] - lo->off[l] && rc == ERD_OK; p += VIX_SQ_LANES) {
            memset(blk, 0, ivf->blk_bytes);
            for (size_t lane = 0; lane < VIX_SQ_LANES && p + lane < n; lane++)
                vix_sq_encode(ivf->own_lo, ivf->own_step, ivf->dim, ivf->bits,
                              lo->x + (size_t)lo->perm[lo->start[l] + p + lane] * ivf->dim,
                              lane, blk);
            rc = vix__put(f, blk, ivf->blk_bytes, at);
        }
    }
    free(blk);
    return rc;
}

static int vix__put_vecs(const vix_ivf *ivf, FILE *f, const vix__lists_out *lo, uint64_t *at)
{
    float *zero = calloc(ivf->dim, sizeof *zero);
    if (!zero)
        return ERD_ENOMEM;
    int rc = ERD_OK;
    for (size_t l = 0; l < ivf->nlist && rc == ERD_OK; l++) {
        uint64_t n = lo->start[l + 1] - lo->start[l];
        for (uint64_t p = 0; p < lo->off[l + 1] - lo->off[l] && rc == ERD_OK; p++)
            rc = vix__put(f,
                          p < n ? lo->x + (size_t)lo->perm[lo->start[l] + p] * ivf->dim : zero,
                          ivf->dim * sizeof(float), at);
    }
    free(zero);
    return rc;
}

int vix_ivf_write(const vix_ivf *ivf, FILE *f, erd_diag *diag)
{
    if (ivf->from_file) {
        /* a loaded index is its file: the image again, with the search
         * parameters as they are now */
        vix__ivf_header h;
        memcpy(&h, ivf->map, sizeof h);
        h.nprobe = ivf->nprobe;
        h.rescore = ivf->rescore;
        if (fwrite(&h, 1, sizeof h, f) != sizeof h ||
            fwrite((const char *)ivf->map + sizeof h, 1, ivf->map_len - sizeof h, f) !=
                ivf->map_len - sizeof h)
            return erd_fail(diag, ERD_EIO, "writing the index: %s", strerror(errno));
        return ERD_OK;
    }
    if (!ivf->trained)
        return erd_fail(diag, ERD_EINVAL, "an untrained index cannot be written");
    uint64_t *off = malloc((ivf->nlist + 1) * sizeof *off);
    uint64_t *start = malloc((ivf->nlist + 1) * sizeof *start);
    uint32_t *perm = NULL;
    vix__ivf_header h = {0};
    int rc = off && start ? vix__lists(ivf, &perm, start, off, &h.max_list) : ERD_ENOMEM;
    if (rc < 0) {
        free(off);
        free(start);
        return erd_fail(diag, rc, "out of memory laying out %zu vectors", ivf->add_n);
    }
    void *xmap = NULL;
    size_t xlen = ivf->add_n * ivf->dim * sizeof(float);
    if (xlen && (fflush(ivf->add_x) != 0 ||
                 (xmap = mmap(NULL, xlen, PROT_READ, MAP_SHARED, fileno(ivf->add_x), 0)) ==
                     MAP_FAILED)) {
        free(off);
        free(start);
        free(perm);
        return erd_fail(diag, ERD_EIO, "mapping the added vectors: %s", strerror(errno));
    }
    const vix__lists_out lo = {.x = xmap, .perm = perm, .start = start, .off = off};
    memcpy(h.magic, VIX_IVF_MAGIC, sizeof h.magic);
    h.version = VIX_IVF_VERSION;
    h.bits = (uint32_t)ivf->bits;
    h.dim = ivf->dim;
    h.nlist = ivf->nlist;
    h.nprobe = ivf->nprobe;
    h.rescore = ivf->rescore;
    h.ntotal = ivf->add_n;
    h.npos = off[ivf->nlist];
    vix__layout(&h);
    uint64_t at = 0;
    rc = vix__put(f, &h, sizeof h, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_lo, &at)) == ERD_OK)
        rc = vix__put(f, ivf->own_lo, ivf->dim * sizeof(float), &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_step, &at)) == ERD_OK)
        rc = vix__put(f, ivf->own_step, ivf->dim * sizeof(float), &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_cent, &at)) == ERD_OK)
        rc = vix__put_centroids(ivf, f, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_list, &at)) == ERD_OK)
        rc = vix__put(f, off, (ivf->nlist + 1) * sizeof *off, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_ids, &at)) == ERD_OK)
        rc = vix__put_ids(ivf, f, &lo, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_codes, &at)) == ERD_OK)
        rc = vix__put_codes(ivf, f, &lo, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_vecs, &at)) == ERD_OK)
        rc = vix__put_vecs(ivf, f, &lo, &at);
    if (rc == ERD_OK)
        rc = vix__pad_to(f, h.file_len, &at);
    free(off);
    free(start);
    free(perm);
    if (xmap)
        munmap(xmap, xlen);
    if (rc == ERD_ENOMEM)
        return erd_fail(diag, rc, "out of memory writing the index");
    if (rc < 0)
        return erd_fail(diag, ERD_EIO, "writing the index: %s", strerror(errno));
    return ERD_OK;
}

/* ---- the mapped image ---- */

/* A query reads a few megabytes of codes spread over a hundred lists: from
 * 4 KiB file pages each one a TLB miss, from 2 MiB pages few.  The codes
 * are copied to anonymous memory the kernel may back with huge pages (at
 * 1M vectors the scan took 20 % less CPU; the copy costs each replica its
 * own 64 bytes a vector, within the in-memory budget).  Then the floats'
 * pages are faulted in: otherwise each rescored candidate's first read is a
 * page fault, from the disk when the page cache is cold (a cold 1M start
 * searched 17.7 ms a request for its first minute against 1.2 warm).  They
 * stay file pages: shared with replicas, dropped by the kernel first.
 * Both run on a thread of their own so a server is ready without waiting
 * (the copy alone was 0.5 s of a 1.5 s start at 1M); searches read the
 * map's codes until the copy is whole, the same bytes. */
#define VIX__HUGE_PAGE ((size_t)2 << 20)
#define VIX__POPULATE_STEP ((size_t)32 << 20)

static void *vix__hot_run(void *arg)
{
    vix_ivf *ivf = arg;
    for (size_t at = 0; ivf->hot_mem && at < ivf->hot_copy; at += VIX__HUGE_PAGE) {
        if (atomic_load(&ivf->hot_cancel))
            return NULL;
        size_t n = ivf->hot_copy - at < VIX__HUGE_PAGE ? ivf->hot_copy - at : VIX__HUGE_PAGE;
        memcpy((uint8_t *)ivf->hot_mem + at, ivf->codes + at, n);
    }
    if (ivf->hot_mem)
        atomic_store_explicit(&ivf->hot_codes, ivf->hot_mem, memory_order_release);
    /* a step at a time, so that unmapping the index waits one step at most */
    for (size_t at = 0; at < ivf->hot_vecs_len && !atomic_load(&ivf->hot_cancel);
         at += VIX__POPULATE_STEP) {
        size_t n = ivf->hot_vecs_len - at < VIX__POPULATE_STEP ? ivf->hot_vecs_len - at
                                                                : VIX__POPULATE_STEP;
        /* read ahead in large requests first: the mapping is MADV_RANDOM,
         * which would have the populate read page by page */
        madvise(ivf->hot_vecs + at, n, MADV_WILLNEED);
        if (madvise(ivf->hot_vecs + at, n, MADV_POPULATE_READ) != 0) {
            /* a kernel before 5.14: read ahead at least */
            madvise(ivf->hot_vecs + at, ivf->hot_vecs_len - at, MADV_WILLNEED);
            break;
        }
    }
    return NULL;
}

static void vix__hot_start(vix_ivf *ivf, size_t codes_len, char *vecs, size_t vecs_len)
{
    if (codes_len < VIX__HUGE_PAGE)
        return; /* a few hundred pages of codes: nothing worth a thread */
    size_t alloc = (codes_len + VIX__HUGE_PAGE - 1) / VIX__HUGE_PAGE * VIX__HUGE_PAGE;
    void *p = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        madvise(p, alloc, MADV_HUGEPAGE);
        ivf->hot_mem = p;
        ivf->hot_len = alloc;
        ivf->hot_copy = codes_len;
    }
    ivf->hot_vecs = vecs;
    ivf->hot_vecs_len = vecs_len;
    atomic_store(&ivf->hot_cancel, false);
    if (pthread_create(&ivf->hot_thread, NULL, vix__hot_run, ivf) != 0) {
        if (ivf->hot_mem)
            munmap(ivf->hot_mem, ivf->hot_len);
        ivf->hot_mem = NULL;
        ivf->hot_len = 0;
        return;
    }
    ivf->hot_running = true;
}

/* Points the search arrays into a file image after checking that its
 * header and list offsets describe exactly the image's layout. */
static int vix__attach(vix_ivf *ivf, void *map, size_t len, const char *what, erd_diag *diag)
{
    vix__ivf_header h, e;
    if (len < sizeof h)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: truncated header", what);
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, VIX_IVF_MAGIC, sizeof h.magic) != 0 || h.version != VIX_IVF_VERSION)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: not an erd IVF file of version %d",
                        what, VIX_IVF_VERSION);
    if (!vix_sq_bits_valid((int)h.bits) || h.dim == 0 || h.dim > VIX_IVF_MAX_DIM ||
        h.nlist == 0 || h.nlist > VIX_IVF_MAX_NLIST || h.npos % VIX_SQ_LANES ||
        h.npos > UINT32_MAX || h.ntotal > h.npos || h.max_list > h.npos || h.nprobe == 0 ||
        h.nprobe > VIX_IVF_MAX_NLIST || h.rescore == 0 || h.rescore > VIX_IVF_MAX_RESCORE)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: header out of range", what);
    e = h;
    vix__layout(&e);
    if (memcmp(&e, &h, sizeof h) != 0 || h.file_len > len)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: layout does not match its size", what);
    const char *base = map;
    const uint64_t *off = (const uint64_t *)(base + h.off_list);
    if (off[0] != 0 || off[h.nlist] != h.npos)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: list offsets", what);
    for (size_t l = 0; l < h.nlist; l++)
        if (off[l + 1] < off[l] || off[l + 1] % VIX_SQ_LANES || off[l + 1] - off[l] > h.max_list)
            return erd_fail(diag, ERD_ECORRUPT, "index file %s: list %zu offsets", what, l);
    ivf->dim = h.dim;
    ivf->nlist = h.nlist;
    ivf->bits = (int)h.bits;
    ivf->blk_bytes = vix_sq_block_bytes(h.dim, (int)h.bits);
    ivf->lo = (const float *)(base + h.off_lo);
    ivf->step = (const float *)(base + h.off_step);
    ivf->cent = (const float *)(base + h.off_cent);
    ivf->list_off = off;
    ivf->ids = (const int64_t *)(base + h.off_ids);
    ivf->codes = (const uint8_t *)(base + h.off_codes);
    ivf->vecs = (const float *)(base + h.off_vecs);
    ivf->ntotal = h.ntotal;
    ivf->npos = h.npos;
    ivf->max_list = h.max_list;
    ivf->map = map;
    ivf->map_len = len;
    /* the scan reads ids and codes of whole lists; the floats only for
     * the few candidates of each query */
    madvise((char *)map + h.off_ids, h.off_vecs - h.off_ids, MADV_WILLNEED);
    madvise((char *)map + h.off_vecs, h.file_len - h.off_vecs, MADV_RANDOM);
    vix__hot_start(ivf, h.off_vecs - h.off_codes, (char *)map + h.off_vecs,
                   h.file_len - h.off_vecs);
    atomic_store(&ivf->mapped_current, true);
    return ERD_OK;
}

static int vix__map_fd(int fd, const char *what, void **ret_map, size_t *ret_len, erd_diag *diag)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0)
        return erd_fail(diag, ERD_EIO, "index file %s: not a regular file", what);
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return erd_fail(diag, ERD_EIO, "index file %s: mmap: %s", what, strerror(errno));
    *ret_map = map;
    *ret_len = (size_t)sb.st_size;
    return ERD_OK;
}

int vix_ivf_read(const char *path, vix_ivf **ret, erd_diag *diag)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return erd_fail(diag, ERD_EIO, "index file %s: %s", path, strerror(errno));
    void *map = NULL;
    size_t len = 0;
    int rc = vix__map_fd(fd, path, &map, &len, diag);
    close(fd); /* the mapping keeps the file */
    if (rc < 0)
        return rc;
    vix__ivf_header h;
    memcpy(&h, map, len < sizeof h ? len : sizeof h);
    vix_ivf *ivf = NULL;
    rc = len >= sizeof h ? vix_ivf_create((size_t)h.dim, (size_t)h.nlist, (int)h.bits, &ivf, NULL)
                         : ERD_ECORRUPT;
    if (rc < 0) {
        munmap(map, len);
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: header out of range", path);
    }
    ivf->from_file = true;
    ivf->trained = true;
    if ((rc = vix__attach(ivf, map, len, path, diag)) < 0) {
        munmap(map, len);
        vix_ivf_destroy(ivf);
        return rc;
    }
    ivf->nprobe = (size_t)h.nprobe;
    ivf->rescore = (size_t)h.rescore;
    *ret = ivf;
    return ERD_OK;
}

/* A built index is searched through the same image as a loaded one, in an
 * unnamed temporary file: one search path, and the build's copy of the
 * vectors stays the only one in memory. */
static int vix__map_built(vix_ivf *ivf, erd_diag *diag)
{
    FILE *f = tmpfile();
    if (!f)
        return erd_fail(diag, ERD_EIO, "temporary index image: %s", strerror(errno));
    int rc = vix_ivf_write(ivf, f, diag);
    if (rc == ERD_OK && fflush(f) != 0)
        rc = erd_fail(diag, ERD_EIO, "temporary index image: %s", strerror(errno));
    void *map = NULL;
    size_t len = 0;
    if (rc == ERD_OK)
        rc = vix__map_fd(fileno(f), "(temporary image)", &map, &len, diag);
    fclose(f);
    if (rc == ERD_OK && (rc = vix__attach(ivf, map, len, "(temporary image)", diag)) < 0)
        munmap(map, len);
    return rc;
}

/* ---- search ---- */

typedef float vix__v16f __attribute__((vector_size(VIX_SQ_LANES * sizeof(float))));

/* Inner products of q with every centroid, 16 at a time: a multiply and
 * an add per lane and dimension in the same order at every instruction-set
 * level (no fused multiply-add), so the lists probed are the same on every
 * machine; the wider kernels only hold the 16 sums in fewer registers. */
static inline __attribute__((always_inline)) void vix__coarse_lanes(const vix_ivf *ivf,
                                                                    const float *q, float *out)
{
    const size_t nb = (ivf->nlist + VIX_SQ_LANES - 1) / VIX_SQ_LANES, dim = ivf->dim;
    for (size_t b = 0; b < nb; b++) {
        vix__v16f acc = {0}, x;
        for (size_t d = 0; d < dim; d++) {
            memcpy(&x, ivf->cent + (b * dim + d) * VIX_SQ_LANES, sizeof x);
            acc += x * q[d];
        }
        memcpy(out + b * VIX_SQ_LANES, &acc, sizeof acc);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static void vix__coarse_avx512(const vix_ivf *ivf,
                                                                  const float *q, float *out)
{
    vix__coarse_lanes(ivf, q, out);
}

__attribute__((target("avx2"))) static void vix__coarse_avx2(const vix_ivf *ivf, const float *q,
                                                             float *out)
{
    vix__coarse_lanes(ivf, q, out);
}
#endif

static void vix__coarse(const vix_ivf *ivf, const float *q, float *out)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    enum vix__isa isa = vix__isa();
    if (isa >= VIX__ISA_AVX512) {
        vix__coarse_avx512(ivf, q, out);
        return;
    }
    if (isa == VIX__ISA_AVX2) {
        vix__coarse_avx2(ivf, q, out);
        return;
    }
#endif
    vix__coarse_lanes(ivf, q, out);
}

/* The nprobe best lists, best first (ties: the lower list). */
static size_t vix__probes(const float *score, size_t nlist, size_t nprobe, uint32_t *lists,
                          float *best)
{
    size_t n = 0;
    for (size_t l = 0; l < nlist; l++) {
        if (n == nprobe && !(score[l] > best[n - 1]))
            continue;
        size_t i = n < nprobe ? n++ : n - 1;
        for (; i > 0 && score[l] > best[i - 1]; i--) {
            best[i] = best[i - 1];
            lists[i] = lists[i - 1];
        }
        best[i] = score[l];
        lists[i] = (uint32_t)l;
    }
    return n;
}

typedef struct vix__cand {
    int32_t sum;
    uint32_t pos;
} vix__cand;

/* A min-heap of the r best integer sums: the root is the one to beat. */
static void vix__heap_offer(vix__cand *heap, size_t *n, size_t r, int32_t sum, uint32_t pos)
{
    size_t i;
    if (*n < r) {
        i = (*n)++;
        while (i > 0 && heap[(i - 1) / 2].sum > sum) {
            heap[i] = heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        heap[i] = (vix__cand){sum, pos};
        return;
    }
    i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap[c + 1].sum < heap[c].sum)
            c++;
        if (heap[c].sum >= sum)
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = (vix__cand){sum, pos};
}

typedef struct vix__hit {
    float score;
    int64_t id;
} vix__hit;

static int vix__hit_cmp(const void *a, const void *b)
{
    const vix__hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Every code of the probed lists scored by the SIMD kernel; the r best
 * integer sums kept. */
static size_t vix__gather(const vix_ivf *ivf, const int8_t *w, const uint32_t *lists,
                          size_t nprobe, int32_t *sums, vix__cand *heap, size_t r)
{
    const uint8_t *codes = atomic_load_explicit(&ivf->hot_codes, memory_order_acquire);
    if (!codes)
        codes = ivf->codes;
    size_t n = 0;
    for (size_t i = 0; i < nprobe; i++) {
        uint64_t first = ivf->list_off[lists[i]], end = ivf->list_off[lists[i] + 1];
        size_t nblk = (size_t)(end - first) / VIX_SQ_LANES;
        vix_sq_scan(codes + first / VIX_SQ_LANES * ivf->blk_bytes, nblk, ivf->dim, ivf->bits,
                    w, sums);
        for (size_t b = 0; b < nblk; b++) {
            /* once the heap is full few blocks hold a sum to keep: one
             * vector compare passes over the others */
            const int32_t floor = n < r ? INT32_MIN : heap[0].sum, *s = sums + b * VIX_SQ_LANES;
            int any = 0;
            for (size_t l = 0; l < VIX_SQ_LANES; l++)
                any |= s[l] > floor;
            if (!any)
                continue;
            for (size_t j = b * VIX_SQ_LANES; j < (b + 1) * VIX_SQ_LANES; j++)
                if ((n < r || sums[j] > heap[0].sum) && ivf->ids[first + j] >= 0)
                    vix__heap_offer(heap, &n, r, sums[j], (uint32_t)(first + j));
        }
    }
    return n;
}

/* Exact inner products of the candidates, dimension by dimension as the
 * exact flat search sums them, so a vector scores here what it scores there. */
static void vix__rescore(const vix_ivf *ivf, const float *q, const vix__cand *cand, size_t n,
                         vix__hit *hits)
{
    const size_t dim = ivf->dim;
    for (size_t i = 0; i < n; i++) {
        if (i + 4 < n)
            for (size_t d = 0; d < dim; d += 16)
                __builtin_prefetch(ivf->vecs + (size_t)cand[i + 4].pos * dim + d);
        const float *v = ivf->vecs + (size_t)cand[i].pos * dim;
        float s = 0;
        for (size_t d = 0; d < dim; d++)
            s += q[d] * v[d];
        hits[i] = (vix__hit){s, ivf->ids[cand[i].pos]};
    }
}

int vix_ivf_search(const vix_ivf *civf, const float *q, size_t k, float *ret_scores,
                   int64_t *ret_ids, erd_diag *diag)
{
    vix_ivf *ivf = (vix_ivf *)civf; /* the image is a cache of the added vectors */
    if (!ivf->trained)
        return erd_fail(diag, ERD_EINVAL, "index must be trained before searching");
    if (!atomic_load(&ivf->mapped_current)) {
        int rc = ERD_OK;
        pthread_mutex_lock(&ivf->mu);
        if (!atomic_load(&ivf->mapped_current))
            rc = vix__map_built(ivf, diag);
        pthread_mutex_unlock(&ivf->mu);
        if (rc < 0)
            return rc;
    }
    const size_t nprobe = ivf->nprobe < ivf->nlist ? ivf->nprobe : ivf->nlist;
    const size_t r = k > ivf->rescore ? k : ivf->rescore;
    const size_t ncent = (ivf->nlist + VIX_SQ_LANES - 1) / VIX_SQ_LANES * VIX_SQ_LANES;
    float *cscore = malloc(ncent * sizeof *cscore + nprobe * sizeof(float));
    uint32_t *lists = malloc(nprobe * sizeof *lists);
    int8_t *w = malloc(vix_sq_dim_pad(ivf->dim, ivf->bits));
    int32_t *sums = malloc((ivf->max_list ? ivf->max_list : 1) * sizeof *sums);
    vix__cand *heap = malloc(r * sizeof *heap);
    vix__hit *hits = malloc(r * sizeof *hits);
    int rc = ERD_OK;
    if (!cscore || !lists || !w || !sums || !heap || !hits) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory searching");
        goto out;
    }
    vix__coarse(ivf, q, cscore);
    size_t np = vix__probes(cscore, ivf->nlist, nprobe, lists, cscore + ncent);
    vix_sq_query qq = {.w = w};
    vix_sq_query_prep(ivf->lo, ivf->step, ivf->dim, ivf->bits, q, &qq);
    size_t n = vix__gather(ivf, w, lists, np, sums, heap, r);
    vix__rescore(ivf, q, heap, n, hits);
    qsort(hits, n, sizeof *hits, vix__hit_cmp);
    for (size_t i = 0; i < k; i++) {
        ret_scores[i] = i < n ? hits[i].score : -INFINITY;
        ret_ids[i] = i < n ? hits[i].id : -1;
    }
out:
    free(cscore);
    free(lists);
    free(w);
    free(sums);
    free(heap);
    free(hits);
    return rc;
}
