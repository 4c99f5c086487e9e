/* erd's inverted-file index over low-bit codes (format and contract in vix_ivf.h). */
#include "index/vix_ivf.h"
#include "index/vix_assist.h"
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
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#define VIX_IVF_VERSION 2
#define VIX_IVF_MAX_DIM 65536
#define VIX_IVF_MAX_NLIST (1u << 20)
#define VIX_IVF_MAX_RESCORE 100000
/* Vectors assigned to lists per FAISS call: a matrix product per chunk. */
#define VIX_IVF_ASSIGN_CHUNK 16384
/* Most training vectors a two-level coarse stage asks for. */
#define VIX_IVF_TRAIN_WANT_MAX (4u << 20)
/* Floats a server reads through its map: beyond this, every page rescoring
 * ever touched would stay in its resident set (a 10M catalog has 7.7 GB of
 * them), so they are read with pread and stay in the page cache only. */
#define VIX_IVF_MAPPED_FLOATS_MAX ((uint64_t)2 << 30)
static _Atomic uint64_t vix__mapped_floats_max = VIX_IVF_MAPPED_FLOATS_MAX;

void vix_ivf_mapped_floats_max(uint64_t bytes)
{
    atomic_store(&vix__mapped_floats_max, bytes ? bytes : VIX_IVF_MAPPED_FLOATS_MAX);
}

/* On disk, little-endian as the machine writes it (files do not travel
 * between architectures; the magic and sizes catch a wrong one). */
typedef struct vix__ivf_header {
    char magic[8];
    uint32_t version, bits;
    uint64_t dim, nlist, nprobe, rescore, ntotal, npos, max_list;
    uint64_t off_lo, off_step, off_cent, off_list, off_ids, off_codes, off_vecs, file_len;
    /* version 2: the two-level coarse stage (groups 0: none) */
    uint64_t groups, gprobe, off_gcent, off_gstart;
} vix__ivf_header;

/* Version 1 files end their header before the group fields. */
#define VIX_IVF_V1_HEADER offsetof(vix__ivf_header, groups)

struct vix_ivf {
    size_t dim, nlist, nprobe, rescore;
    size_t groups, gprobe; /* groups 0: one flat coarse stage */
    int bits;
    size_t blk_bytes; /* one block of VIX_SQ_LANES code vectors */
    bool trained;
    FaissIndex *coarse; /* the FAISS IVF whose quantizer assigns vectors while building */
    float *own_lo, *own_step, *own_cent; /* trained arrays while building */
    float *own_gcent;                    /* two levels: group centroids, */
    uint64_t *own_gstart;                /* group g's lists [gstart[g], gstart[g+1]) */
    FaissIndex *gtop, **gsub;            /* and their flat indexes for the adds */
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
    const float *gcent;            /* the same for the group centroids */
    const uint64_t *gstart;
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
    /* Past VIX_IVF_MAPPED_FLOATS_MAX bytes of floats, rescoring reads them
     * with pread from this descriptor instead of through the map (-1:
     * through the map), at file offset vecs_off. */
    int vecs_fd;
    uint64_t vecs_off;
    size_t ntotal, npos, max_list;
};

static int vix__faiss_fail(erd_diag *diag, const char *what)
{
    const char *msg = faiss_get_last_error();
    return erd_fail(diag, ERD_EFAISS, "%s: %s", what, msg && *msg ? msg : "unknown FAISS error");
}

int vix_ivf_parse(const char *factory, vix_ivf_spec *ret, erd_diag *diag)
{
    if (strncmp(factory, "erdIVF", 6) != 0)
        return ERD_ENOTFOUND;
    const char *p = factory + 6;
    char *end = NULL;
    errno = 0;
    unsigned long long nlist = strtoull(p, &end, 10), groups = 0;
    if (end == p || errno || nlist == 0 || nlist > VIX_IVF_MAX_NLIST)
        goto bad;
    if (strncmp(end, "_G", 2) == 0) {
        p = end + 2;
        groups = strtoull(p, &end, 10);
        if (end == p || errno || groups < 2 || groups > nlist)
            goto bad;
    }
    if (strncmp(end, ",SQ", 3))
        goto bad;
    p = end + 3;
    unsigned long b = strtoul(p, &end, 10);
    if (end == p || (*end && *end != '|') || !vix_sq_bits_valid((int)b))
        goto bad;
    *ret = (vix_ivf_spec){.nlist = (size_t)nlist, .groups = (size_t)groups, .bits = (int)b};
    return ERD_OK;
bad:
    return erd_fail(diag, ERD_EINVAL,
                    "index factory \"%s\": erdIVF<lists 1..%u>[_G<groups 2..lists>],SQ<8, 4 or "
                    "2 bits> expected",
                    factory, VIX_IVF_MAX_NLIST);
}

int vix_ivf_create(size_t dim, const vix_ivf_spec *spec, vix_ivf **ret, erd_diag *diag)
{
    if (dim == 0 || dim > VIX_IVF_MAX_DIM || spec->nlist == 0 || spec->nlist > VIX_IVF_MAX_NLIST ||
        spec->groups == 1 || spec->groups > spec->nlist || !vix_sq_bits_valid(spec->bits))
        return erd_fail(diag, ERD_EINVAL, "erd IVF: dimension %zu, %zu lists in %zu groups, %d bits",
                        dim, spec->nlist, spec->groups, spec->bits);
    vix_ivf *ivf = calloc(1, sizeof *ivf);
    if (!ivf)
        return erd_fail(diag, ERD_ENOMEM, "out of memory creating an index");
    ivf->dim = dim;
    ivf->nlist = spec->nlist;
    ivf->groups = spec->groups;
    ivf->gprobe = VIX_IVF_GPROBE;
    ivf->bits = spec->bits;
    ivf->nprobe = VIX_IVF_NPROBE;
    ivf->rescore = VIX_IVF_RESCORE;
    ivf->blk_bytes = vix_sq_block_bytes(dim, spec->bits);
    ivf->vecs_fd = -1;
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

/* Positions 0..n-1 ordered by key, in their own order within a key (a
 * counting sort): key k's are (*ret_perm)[start[k] .. start[k + 1]). */
static int vix__by_key(const uint32_t *key, size_t n, size_t nkeys, uint32_t **ret_perm,
                       uint64_t *start)
{
    uint32_t *perm = malloc((n ? n : 1) * sizeof *perm);
    uint64_t *next = malloc((nkeys ? nkeys : 1) * sizeof *next);
    if (!perm || !next) {
        free(perm);
        free(next);
        return ERD_ENOMEM;
    }
    memset(start, 0, (nkeys + 1) * sizeof *start);
    for (size_t i = 0; i < n; i++)
        start[key[i] + 1]++;
    for (size_t k = 0; k < nkeys; k++)
        start[k + 1] += start[k];
    memcpy(next, start, nkeys * sizeof *next);
    for (size_t i = 0; i < n; i++)
        perm[next[key[i]]++] = (uint32_t)i;
    free(next);
    *ret_perm = perm;
    return ERD_OK;
}

/* ---- the two-level coarse stage (groups > 0) ---- */

static void vix__group_indexes_free(vix_ivf *ivf)
{
    if (ivf->gtop)
        faiss_Index_free(ivf->gtop);
    ivf->gtop = NULL;
    for (size_t g = 0; ivf->gsub && g < ivf->groups; g++)
        if (ivf->gsub[g])
            faiss_Index_free(ivf->gsub[g]);
    free(ivf->gsub);
    ivf->gsub = NULL;
}

/* k spherical k-means centroids of n >= k unit vectors, seeded: the same
 * build gives the same lists. */
static int vix__kmeans(size_t dim, size_t n, const float *x, size_t k, float *ret_cent,
                       erd_diag *diag)
{
    if (n == k) {
        memcpy(ret_cent, x, n * dim * sizeof *x);
        return ERD_OK;
    }
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.spherical = 1;
    cp.niter = 20;
    cp.seed = 1234;
    cp.min_points_per_centroid = 1; /* a small group may have few members a list */
    cp.max_points_per_centroid = 256;
    FaissClustering *cl = NULL;
    FaissIndexFlatIP *ip = NULL;
    int rc = ERD_OK;
    if (faiss_Clustering_new_with_params(&cl, (int)dim, (int)k, &cp) != 0 ||
        faiss_IndexFlatIP_new_with(&ip, (idx_t)dim) != 0 ||
        faiss_Clustering_train(cl, (idx_t)n, x, (FaissIndex *)ip) != 0) {
        rc = vix__faiss_fail(diag, "k-means of the coarse centroids");
        goto out;
    }
    float *c = NULL;
    size_t len = 0;
    faiss_Clustering_centroids(cl, &c, &len);
    if (!c || len != k * dim) {
        rc = erd_fail(diag, ERD_EINTERNAL, "k-means gave %zu values for %zu centroids", len, k);
        goto out;
    }
    memcpy(ret_cent, c, len * sizeof *c);
out:
    faiss_Clustering_free(cl);
    if (ip)
        faiss_Index_free((FaissIndex *)ip);
    return rc;
}

/* A flat inner-product index over n centroids, for assigning vectors. */
static int vix__flat_of(size_t dim, size_t n, const float *cent, FaissIndex **ret, erd_diag *diag)
{
    FaissIndexFlatIP *ip = NULL;
    if (faiss_IndexFlatIP_new_with(&ip, (idx_t)dim) != 0 ||
        faiss_Index_add((FaissIndex *)ip, (idx_t)n, cent) != 0) {
        if (ip)
            faiss_Index_free((FaissIndex *)ip);
        return vix__faiss_fail(diag, "an index of centroids");
    }
    *ret = (FaissIndex *)ip;
    return ERD_OK;
}

/* The nearest of index's vectors to each of n vectors, by inner product. */
static int vix__nearest(FaissIndex *index, size_t dim, size_t n, const float *x, uint32_t *ret,
                        erd_diag *diag)
{
    float *dist = malloc(VIX_IVF_ASSIGN_CHUNK * sizeof *dist);
    idx_t *lab = malloc(VIX_IVF_ASSIGN_CHUNK * sizeof *lab);
    int rc = dist && lab ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory assigning");
    for (size_t first = 0; first < n && rc == ERD_OK; first += VIX_IVF_ASSIGN_CHUNK) {
        size_t m = n - first < VIX_IVF_ASSIGN_CHUNK ? n - first : VIX_IVF_ASSIGN_CHUNK;
        if (faiss_Index_search(index, (idx_t)m, x + first * dim, 1, dist, lab) != 0) {
            rc = vix__faiss_fail(diag, "assigning vectors");
            break;
        }
        for (size_t i = 0; i < m; i++)
            ret[first + i] = lab[i] < 0 ? 0 : (uint32_t)lab[i];
    }
    free(dist);
    free(lab);
    return rc;
}

/* Lists per group, in proportion to its members: at least one, at most
 * one per member (k-means needs a point a centroid), nlist in all. */
static void vix__share_lists(const size_t *count, size_t groups, size_t nlist, size_t n,
                             size_t *share)
{
    size_t total = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t s = (size_t)((double)count[g] * (double)nlist / (double)n);
        s = s < 1 ? 1 : s;
        s = count[g] && s > count[g] ? count[g] : s;
        share[g] = s;
        total += s;
    }
    while (total > nlist) { /* the largest share gives one */
        size_t big = 0;
        for (size_t g = 1; g < groups; g++)
            big = share[g] > share[big] ? g : big;
        share[big]--;
        total--;
    }
    while (total < nlist) { /* the most crowded lists get one more */
        size_t best = groups;
        for (size_t g = 0; g < groups; g++)
            if (share[g] < count[g] &&
                (best == groups || count[g] * share[best] > count[best] * share[g]))
                best = g;
        share[best]++;
        total++;
    }
}

/* Rows rows[0..m) of x, copied out contiguously. */
static void vix__gather_rows(size_t dim, const float *x, const uint32_t *rows, size_t m,
                             float *out)
{
    for (size_t j = 0; j < m; j++)
        memcpy(out + j * dim, x + (size_t)rows[j] * dim, dim * sizeof *x);
}

/* Each group's members (perm[start[g] .. start[g + 1]) of x) clustered
 * into its share of the lists. */
static int vix__train_lists(vix_ivf *ivf, const float *x, const uint32_t *perm,
                            const uint64_t *start, erd_diag *diag)
{
    size_t most = 0, dim = ivf->dim;
    for (size_t g = 0; g < ivf->groups; g++)
        most = start[g + 1] - start[g] > most ? (size_t)(start[g + 1] - start[g]) : most;
    float *members = malloc((most ? most : 1) * dim * sizeof *members);
    ivf->gsub = calloc(ivf->groups, sizeof *ivf->gsub);
    if (!members || !ivf->gsub) {
        free(members);
        return erd_fail(diag, ERD_ENOMEM, "out of memory clustering %zu groups", ivf->groups);
    }
    int rc = ERD_OK;
    for (size_t g = 0; g < ivf->groups && rc == ERD_OK; g++) {
        size_t k = (size_t)(ivf->own_gstart[g + 1] - ivf->own_gstart[g]);
        size_t m = (size_t)(start[g + 1] - start[g]);
        float *cent = ivf->own_cent + ivf->own_gstart[g] * dim;
        if (m == 0) {
            memcpy(cent, ivf->own_gcent + g * dim, dim * sizeof *cent);
        } else {
            vix__gather_rows(dim, x, perm + start[g], m, members);
            rc = vix__kmeans(dim, m, members, k, cent, diag);
        }
        if (rc == ERD_OK)
            rc = vix__flat_of(dim, k, cent, &ivf->gsub[g], diag);
    }
    free(members);
    return rc;
}

/* Group centroids by k-means, lists shared out among the groups by size,
 * then each group's lists by k-means over its own members. */
static int vix__train_grouped(vix_ivf *ivf, size_t n, const float *x, erd_diag *diag)
{
    const size_t G = ivf->groups, dim = ivf->dim;
    uint32_t *group = malloc(n * sizeof *group), *perm = NULL;
    uint64_t *start = malloc((G + 1) * sizeof *start);
    size_t *count = malloc(G * sizeof *count), *share = malloc(G * sizeof *share);
    ivf->own_gcent = malloc(G * dim * sizeof(float));
    ivf->own_cent = malloc(ivf->nlist * dim * sizeof(float));
    ivf->own_gstart = malloc((G + 1) * sizeof *ivf->own_gstart);
    int rc = ERD_OK;
    if (!group || !start || !count || !share || !ivf->own_gcent || !ivf->own_cent ||
        !ivf->own_gstart) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory training %zu groups", G);
        goto out;
    }
    if ((rc = vix__kmeans(dim, n, x, G, ivf->own_gcent, diag)) < 0 ||
        (rc = vix__flat_of(dim, G, ivf->own_gcent, &ivf->gtop, diag)) < 0 ||
        (rc = vix__nearest(ivf->gtop, dim, n, x, group, diag)) < 0)
        goto out;
    if (vix__by_key(group, n, G, &perm, start) < 0) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory training %zu groups", G);
        goto out;
    }
    for (size_t g = 0; g < G; g++)
        count[g] = (size_t)(start[g + 1] - start[g]);
    vix__share_lists(count, G, ivf->nlist, n, share);
    ivf->own_gstart[0] = 0;
    for (size_t g = 0; g < G; g++)
        ivf->own_gstart[g + 1] = ivf->own_gstart[g] + share[g];
    rc = vix__train_lists(ivf, x, perm, start, diag);
out:
    free(group);
    free(perm);
    free(start);
    free(count);
    free(share);
    return rc;
}

/* Each vector to its nearest group, then to the nearest list of that group. */
static int vix__assign_grouped(vix_ivf *ivf, size_t n, const float *x, uint32_t *ret_list,
                               erd_diag *diag)
{
    const size_t dim = ivf->dim;
    uint32_t *group = malloc((n ? n : 1) * sizeof *group), *sub = malloc((n ? n : 1) * sizeof *sub);
    uint32_t *perm = NULL;
    uint64_t *start = malloc((ivf->groups + 1) * sizeof *start);
    float *members = malloc((n ? n : 1) * dim * sizeof *members);
    int rc = group && sub && start && members
                 ? vix__nearest(ivf->gtop, dim, n, x, group, diag)
                 : erd_fail(diag, ERD_ENOMEM, "out of memory assigning");
    if (rc == ERD_OK && vix__by_key(group, n, ivf->groups, &perm, start) < 0)
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory assigning");
    for (size_t g = 0; g < ivf->groups && rc == ERD_OK; g++) {
        const uint32_t *rows = perm + start[g];
        size_t m = (size_t)(start[g + 1] - start[g]);
        if (m == 0)
            continue;
        vix__gather_rows(dim, x, rows, m, members);
        if ((rc = vix__nearest(ivf->gsub[g], dim, m, members, sub, diag)) < 0)
            break;
        for (size_t j = 0; j < m; j++)
            ret_list[rows[j]] = (uint32_t)ivf->own_gstart[g] + sub[j];
    }
    free(group);
    free(sub);
    free(perm);
    free(start);
    free(members);
    return rc;
}

size_t vix_ivf_train_want(const vix_ivf *ivf)
{
    if (!ivf || !ivf->groups)
        return 0;
    size_t want = 64 * ivf->nlist; /* a list's centroid from dozens of its members */
    return want < VIX_IVF_TRAIN_WANT_MAX ? want : VIX_IVF_TRAIN_WANT_MAX;
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
    free(ivf->own_gcent);
    free(ivf->own_gstart);
    vix__group_indexes_free(ivf);
    free(ivf->add_list);
    free(ivf->add_ids);
    if (ivf->add_x)
        fclose(ivf->add_x);
    if (ivf->vecs_fd >= 0)
        close(ivf->vecs_fd);
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

static int vix__train_two_level(vix_ivf *ivf, size_t n, const float *x, erd_diag *diag)
{
    int rc = vix__train_grouped(ivf, n, x, diag);
    if (rc == ERD_OK && !(ivf->own_lo = malloc(ivf->dim * sizeof(float))))
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory training an index");
    if (rc == ERD_OK && !(ivf->own_step = malloc(ivf->dim * sizeof(float))))
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory training an index");
    if (rc == ERD_OK)
        rc = vix_sq_fit(ivf->dim, ivf->bits, n, x, ivf->own_lo, ivf->own_step, diag);
    if (rc < 0)
        return rc;
    ivf->trained = true;
    return ERD_OK;
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
    if (ivf->groups)
        return vix__train_two_level(ivf, n, x, diag);
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

/* The ids and floats of n vectors whose lists are already in add_list. */
static int vix__add_vectors(vix_ivf *ivf, size_t n, const float *x, const int64_t *ids,
                            erd_diag *diag)
{
    memcpy(ivf->add_ids + ivf->add_n, ids, n * sizeof *ids);
    /* a failed or short write leaves add_n as it was; the next add
     * writes over the tail */
    if (fseeko(ivf->add_x, (off_t)(ivf->add_n * ivf->dim * sizeof *x), SEEK_SET) != 0 ||
        fwrite(x, ivf->dim * sizeof *x, n, ivf->add_x) != n)
        return erd_fail(diag, ERD_EIO, "temporary file for %zu vectors: %s", n, strerror(errno));
    ivf->add_n += n;
    vix__unmap(ivf); /* a search lays the lists out again */
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
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0) /* -1 marks the padding of a list's last block */
            return erd_fail(diag, ERD_EINVAL, "vector %zu has a negative id (%lld)", i,
                            (long long)ids[i]);
    int rc = vix__add_grow(ivf, ivf->add_n + n);
    if (rc < 0)
        return erd_fail(diag, rc, rc == ERD_EIO ? "temporary file for %zu vectors: %s"
                                                : "out of memory adding %zu vectors%s",
                        n, rc == ERD_EIO ? strerror(errno) : "");
    if (ivf->groups) {
        if ((rc = vix__assign_grouped(ivf, n, x, ivf->add_list + ivf->add_n, diag)) < 0)
            return rc;
        return vix__add_vectors(ivf, n, x, ids, diag);
    }
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
    rc = vix__add_vectors(ivf, n, x, ids, diag);
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

/* params over *nprobe, *rescore and *gprobe, each changed only when named. */
static int vix__params_parse(const char *params, size_t *nprobe, size_t *rescore, size_t *gprobe,
                             erd_diag *diag)
{
    for (const char *p = params; p && *p;) {
        int rc = vix__param_value(p, "nprobe", VIX_IVF_MAX_NLIST, nprobe);
        if (rc == ERD_ENOTFOUND)
            rc = vix__param_value(p, "rescore", VIX_IVF_MAX_RESCORE, rescore);
        if (rc == ERD_ENOTFOUND)
            rc = vix__param_value(p, "gprobe", VIX_IVF_MAX_NLIST, gprobe);
        if (rc < 0)
            return erd_fail(diag, ERD_EINVAL,
                            "%s: erd IVF takes nprobe=1..%u, gprobe=1..%u and rescore=1..%u, "
                            "comma-separated",
                            params, VIX_IVF_MAX_NLIST, VIX_IVF_MAX_NLIST, VIX_IVF_MAX_RESCORE);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    return ERD_OK;
}

int vix_ivf_params_check(const char *params, erd_diag *diag)
{
    size_t nprobe = VIX_IVF_NPROBE, rescore = VIX_IVF_RESCORE, gprobe = VIX_IVF_GPROBE;
    return vix__params_parse(params, &nprobe, &rescore, &gprobe, diag);
}

int vix_ivf_set_params(vix_ivf *ivf, const char *params, erd_diag *diag)
{
    size_t nprobe = ivf->nprobe, rescore = ivf->rescore, gprobe = ivf->gprobe;
    int rc = vix__params_parse(params, &nprobe, &rescore, &gprobe, diag);
    if (rc < 0)
        return rc;
    ivf->nprobe = nprobe;
    ivf->rescore = rescore;
    ivf->gprobe = gprobe;
    return ERD_OK;
}

/* ---- the file image ---- */

static uint64_t vix__align(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Offsets of every array for the counts in h (version, dim, nlist, groups,
 * npos, bits set). */
static void vix__layout(vix__ivf_header *h)
{
    const uint64_t page = 4096, dim = h->dim;
    const uint64_t cent_blocks = (h->nlist + VIX_SQ_LANES - 1) / VIX_SQ_LANES;
    const uint64_t gcent_blocks = (h->groups + VIX_SQ_LANES - 1) / VIX_SQ_LANES;
    h->off_lo = vix__align(h->version == 1 ? VIX_IVF_V1_HEADER : sizeof *h, 64);
    h->off_step = vix__align(h->off_lo + dim * sizeof(float), 64);
    h->off_cent = vix__align(h->off_step + dim * sizeof(float), 64);
    h->off_list = vix__align(h->off_cent + cent_blocks * VIX_SQ_LANES * dim * sizeof(float), 64);
    uint64_t end = h->off_list + (h->nlist + 1) * sizeof(uint64_t);
    if (h->version >= 2) {
        h->off_gcent = vix__align(end, 64);
        h->off_gstart =
            vix__align(h->off_gcent + gcent_blocks * VIX_SQ_LANES * dim * sizeof(float), 64);
        end = h->off_gstart + (h->groups ? h->groups + 1 : 0) * sizeof(uint64_t);
    }
    h->off_ids = vix__align(end, 64);
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
    if (vix__by_key(ivf->add_list, ivf->add_n, ivf->nlist, ret_perm, start) < 0)
        return ERD_ENOMEM;
    uint64_t max = 0;
    off[0] = 0;
    for (size_t l = 0; l < ivf->nlist; l++) {
        uint64_t len = start[l + 1] - start[l];
        max = len > max ? len : max;
        off[l + 1] = off[l] + vix__align(len, VIX_SQ_LANES);
    }
    *ret_max = vix__align(max, VIX_SQ_LANES);
    return ERD_OK;
}

/* Centroids as the query-time scan reads them: 16 side by side per dimension. */
static int vix__put_centroids(const float *cent, size_t n, size_t dim, FILE *f, uint64_t *at)
{
    const size_t nb = (n + VIX_SQ_LANES - 1) / VIX_SQ_LANES;
    float row[VIX_SQ_LANES];
    for (size_t b = 0; b < nb; b++)
        for (size_t d = 0; d < dim; d++) {
            for (size_t l = 0; l < VIX_SQ_LANES; l++) {
                size_t c = b * VIX_SQ_LANES + l;
                row[l] = c < n ? cent[c * dim + d] : 0.0f; /* never read */
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
        if (h.version >= 2) /* a version 1 header ends before gprobe */
            h.gprobe = ivf->gprobe;
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
    h.groups = ivf->groups;
    h.gprobe = ivf->gprobe;
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
        rc = vix__put_centroids(ivf->own_cent, ivf->nlist, ivf->dim, f, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_list, &at)) == ERD_OK)
        rc = vix__put(f, off, (ivf->nlist + 1) * sizeof *off, &at);
    if (rc == ERD_OK && (rc = vix__pad_to(f, h.off_gcent, &at)) == ERD_OK)
        rc = vix__put_centroids(ivf->own_gcent, ivf->groups, ivf->dim, f, &at);
    if (rc == ERD_OK && ivf->groups && (rc = vix__pad_to(f, h.off_gstart, &at)) == ERD_OK)
        rc = vix__put(f, ivf->own_gstart, (ivf->groups + 1) * sizeof *ivf->own_gstart, &at);
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
    if (ivf->hot_mem) {
        atomic_store_explicit(&ivf->hot_codes, ivf->hot_mem, memory_order_release);
        /* the map's copy leaves the resident set (a search still reading
         * it faults its pages back from the page cache: the same bytes) */
        madvise((void *)ivf->codes, ivf->hot_copy, MADV_DONTNEED);
    }
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
static int vix__header_of(const void *map, size_t len, vix__ivf_header *ret)
{
    memset(ret, 0, sizeof *ret);
    if (len < VIX_IVF_V1_HEADER)
        return ERD_ECORRUPT;
    memcpy(ret, map, VIX_IVF_V1_HEADER);
    if (memcmp(ret->magic, VIX_IVF_MAGIC, sizeof ret->magic) != 0 || ret->version == 0 ||
        ret->version > VIX_IVF_VERSION)
        return ERD_EUNSUPPORTED;
    if (ret->version >= 2) {
        if (len < sizeof *ret)
            return ERD_ECORRUPT;
        memcpy(ret, map, sizeof *ret);
    }
    return ERD_OK;
}

static bool vix__header_sane(const vix__ivf_header *h)
{
    return vix_sq_bits_valid((int)h->bits) && h->dim > 0 && h->dim <= VIX_IVF_MAX_DIM &&
           h->nlist > 0 && h->nlist <= VIX_IVF_MAX_NLIST && h->npos % VIX_SQ_LANES == 0 &&
           h->npos <= UINT32_MAX && h->ntotal <= h->npos && h->max_list <= h->npos &&
           h->nprobe > 0 && h->nprobe <= VIX_IVF_MAX_NLIST && h->rescore > 0 &&
           h->rescore <= VIX_IVF_MAX_RESCORE && h->groups != 1 && h->groups <= h->nlist &&
           (h->groups == 0 || (h->gprobe > 0 && h->gprobe <= VIX_IVF_MAX_NLIST));
}

/* Every group owns a non-empty run of lists, the runs cover all lists. */
static bool vix__groups_sane(const vix__ivf_header *h, const uint64_t *gstart)
{
    if (!h->groups)
        return true;
    if (gstart[0] != 0 || gstart[h->groups] != h->nlist)
        return false;
    for (size_t g = 0; g < h->groups; g++)
        if (gstart[g + 1] <= gstart[g])
            return false;
    return true;
}

static int vix__attach(vix_ivf *ivf, void *map, size_t len, const char *what, erd_diag *diag)
{
    vix__ivf_header h, e;
    int rc = vix__header_of(map, len, &h);
    if (rc == ERD_EUNSUPPORTED)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: not an erd IVF file of version 1..%d",
                        what, VIX_IVF_VERSION);
    if (rc < 0)
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: truncated header", what);
    if (!vix__header_sane(&h))
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
    if (!vix__groups_sane(&h, (const uint64_t *)(base + h.off_gstart)))
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: group list ranges", what);
    ivf->groups = h.groups;
    ivf->gcent = h.groups ? (const float *)(base + h.off_gcent) : NULL;
    ivf->gstart = h.groups ? (const uint64_t *)(base + h.off_gstart) : NULL;
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
    /* floats read with pread are read ahead into the page cache only:
     * faulting them into the map would put them all in the resident set */
    if (ivf->vecs_fd >= 0)
        posix_fadvise(ivf->vecs_fd, (off_t)h.off_vecs, (off_t)(h.file_len - h.off_vecs),
                      POSIX_FADV_WILLNEED);
    vix__hot_start(ivf, h.off_vecs - h.off_codes, (char *)map + h.off_vecs,
                   ivf->vecs_fd >= 0 ? 0 : h.file_len - h.off_vecs);
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
    if (rc < 0) {
        close(fd);
        return rc;
    }
    vix__ivf_header h;
    vix_ivf *ivf = NULL;
    rc = vix__header_of(map, len, &h);
    if (rc == ERD_OK) {
        /* the file's own groups are checked against its list ranges below */
        const vix_ivf_spec spec = {.nlist = (size_t)h.nlist, .bits = (int)h.bits};
        rc = vix_ivf_create((size_t)h.dim, &spec, &ivf, NULL);
    }
    if (rc < 0) {
        munmap(map, len);
        close(fd);
        return erd_fail(diag, ERD_ECORRUPT, "index file %s: header out of range", path);
    }
    ivf->from_file = true;
    ivf->trained = true;
    if (h.file_len > h.off_vecs && h.file_len - h.off_vecs > atomic_load(&vix__mapped_floats_max)) {
        ivf->vecs_fd = fd; /* the index owns it now; attach checks the offsets */
        ivf->vecs_off = h.off_vecs;
    } else {
        close(fd); /* the mapping keeps the file */
    }
    if ((rc = vix__attach(ivf, map, len, path, diag)) < 0) {
        munmap(map, len);
        vix_ivf_destroy(ivf);
        return rc;
    }
    ivf->nprobe = (size_t)h.nprobe;
    ivf->rescore = (size_t)h.rescore;
    ivf->gprobe = h.groups ? (size_t)h.gprobe : VIX_IVF_GPROBE;
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

/* Inner products of q with centroid blocks [first, end) of cent (16 a
 * block, dimension-major): a multiply and an add per lane and dimension in
 * the same order at every instruction-set level (no fused multiply-add), so
 * the lists probed are the same on every machine; the wider kernels only
 * hold the 16 sums in fewer registers. */
static inline __attribute__((always_inline)) void
vix__coarse_lanes(const float *cent, size_t dim, size_t first, size_t end, const float *q,
                  float *out)
{
    for (size_t b = first; b < end; b++) {
        vix__v16f acc = {0}, x;
        for (size_t d = 0; d < dim; d++) {
            memcpy(&x, cent + (b * dim + d) * VIX_SQ_LANES, sizeof x);
            acc += x * q[d];
        }
        memcpy(out + b * VIX_SQ_LANES, &acc, sizeof acc);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static void vix__coarse_avx512(const float *cent, size_t dim,
                                                                  size_t first, size_t end,
                                                                  const float *q, float *out)
{
    vix__coarse_lanes(cent, dim, first, end, q, out);
}

__attribute__((target("avx2"))) static void vix__coarse_avx2(const float *cent, size_t dim,
                                                             size_t first, size_t end,
                                                             const float *q, float *out)
{
    vix__coarse_lanes(cent, dim, first, end, q, out);
}
#endif

static void vix__coarse_base(const float *cent, size_t dim, size_t first, size_t end,
                             const float *q, float *out)
{
    vix__coarse_lanes(cent, dim, first, end, q, out);
}

typedef void vix__coarse_fn(const float *, size_t, size_t, size_t, const float *, float *);

static void vix__coarse(const float *cent, size_t dim, size_t first, size_t end, const float *q,
                        float *out)
{
    vix__coarse_fn *fn = vix__coarse_base;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    switch (vix__isa()) {
    case VIX__ISA_AVX512:
    case VIX__ISA_AVX512_BF16:
    case VIX__ISA_AVX512_VNNI:
        fn = vix__coarse_avx512;
        break;
    case VIX__ISA_AVX2:
        fn = vix__coarse_avx2;
        break;
    case VIX__ISA_BASE:
        break;
    }
#endif
    fn(cent, dim, first, end, q, out);
}

/* Lists [first, end) offered to the nprobe best so far (n of them, best
 * first; ties: the one offered first). */
static size_t vix__probes_in(const float *score, size_t first, size_t end, size_t nprobe,
                             uint32_t *lists, float *best, size_t n)
{
    for (size_t l = first; l < end; l++) {
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

/* Scratch of the coarse stage: list scores (and group scores and picks
 * when it has two levels). */
typedef struct vix__coarse_tmp {
    float *cscore, *best, *gscore, *gbest;
    uint32_t *glists;
} vix__coarse_tmp;

/* The nprobe lists to scan, best first: every list scored, or with two
 * levels the lists of the gprobe best groups. */
static size_t vix__pick_lists(const vix_ivf *ivf, const float *q, size_t nprobe,
                              vix__coarse_tmp *t, uint32_t *lists)
{
    const size_t lanes = VIX_SQ_LANES;
    if (!ivf->groups) {
        vix__coarse(ivf->cent, ivf->dim, 0, (ivf->nlist + lanes - 1) / lanes, q, t->cscore);
        return vix__probes_in(t->cscore, 0, ivf->nlist, nprobe, lists, t->best, 0);
    }
    const size_t gprobe = ivf->gprobe < ivf->groups ? ivf->gprobe : ivf->groups;
    vix__coarse(ivf->gcent, ivf->dim, 0, (ivf->groups + lanes - 1) / lanes, q, t->gscore);
    size_t ng = vix__probes_in(t->gscore, 0, ivf->groups, gprobe, t->glists, t->gbest, 0), n = 0;
    for (size_t i = 0; i < ng; i++) {
        size_t first = (size_t)ivf->gstart[t->glists[i]], end = (size_t)ivf->gstart[t->glists[i] + 1];
        vix__coarse(ivf->cent, ivf->dim, first / lanes, (end + lanes - 1) / lanes, q, t->cscore);
        n = vix__probes_in(t->cscore, first, end, nprobe, lists, t->best, n);
    }
    return n;
}

/* Candidates whose floats are asked for ahead of their rescoring: a
 * candidate's floats are eight cache lines, usually on a page of their own. */
#define VIX__RESCORE_AHEAD 8

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

/* A list's block sums offered to the heap of the r best: once the heap is
 * full few blocks hold a sum to keep, and one vector compare passes over
 * the others. */
static void vix__offer_list(const vix_ivf *ivf, uint64_t first, size_t nblk, const int32_t *sums,
                            vix__cand *heap, size_t *n, size_t r)
{
    for (size_t b = 0; b < nblk; b++) {
        const int32_t floor = *n < r ? INT32_MIN : heap[0].sum, *s = sums + b * VIX_SQ_LANES;
        int any = 0;
        for (size_t l = 0; l < VIX_SQ_LANES; l++)
            any |= s[l] > floor;
        if (!any)
            continue;
        /* only a list's last block holds padding (id -1, vix_ivf_add
         * refuses negative ids): elsewhere the id, a cache miss a member,
         * need not be read */
        const bool padded = b + 1 == nblk;
        for (size_t j = b * VIX_SQ_LANES; j < (b + 1) * VIX_SQ_LANES; j++)
            if ((*n < r || sums[j] > heap[0].sum) && (!padded || ivf->ids[first + j] >= 0))
                vix__heap_offer(heap, n, r, sums[j], (uint32_t)(first + j));
    }
}

/* Probed lists whose codes the helper thread (vix_assist.c) scans while
 * the search's own thread scans the others: a single client leaves the
 * other core idle, and at 1M the scan is most of a resolve.  The sums are
 * offered in list order afterwards either way, so the candidates are
 * exactly those of a scan in one thread. */
#define VIX__SPLIT_MIN_DEFAULT 65536
static atomic_size_t vix__split_min = VIX__SPLIT_MIN_DEFAULT;

void vix_ivf_split_scan_min(size_t vectors)
{
    atomic_store(&vix__split_min, vectors ? vectors : VIX__SPLIT_MIN_DEFAULT);
}

typedef struct vix__far_scan {
    const vix_ivf *ivf;
    const uint8_t *codes;
    const int8_t *w;
    const uint32_t *lists;
    size_t from, to;
    int32_t *sums; /* the lists' sums one after another */
} vix__far_scan;

/* List l's blocks, and its first code in *ret_first. */
static size_t vix__list_blocks(const vix_ivf *ivf, uint32_t l, uint64_t *ret_first)
{
    *ret_first = ivf->list_off[l];
    return (size_t)(ivf->list_off[l + 1] - *ret_first) / VIX_SQ_LANES;
}

/* Every code of list l scored into sums by the SIMD kernel; its blocks. */
static size_t vix__scan_list(const vix_ivf *ivf, const uint8_t *codes, const int8_t *w,
                             uint32_t l, int32_t *sums, uint64_t *ret_first)
{
    size_t nblk = vix__list_blocks(ivf, l, ret_first);
    vix_sq_scan(codes + *ret_first / VIX_SQ_LANES * ivf->blk_bytes, nblk, ivf->dim, ivf->bits, w,
                sums);
    return nblk;
}

static void vix__far_scan_main(void *arg)
{
    const vix__far_scan *f = arg;
    int32_t *out = f->sums;
    uint64_t first;
    for (size_t i = f->from; i < f->to; i++)
        out += vix__scan_list(f->ivf, f->codes, f->w, f->lists[i], out, &first) * VIX_SQ_LANES;
}

/* Where the probed lists split in two halves of about equal codes (nprobe
 * when the scan is too small to share). */
static size_t vix__split_at(const vix_ivf *ivf, const uint32_t *lists, size_t nprobe,
                            uint64_t *ret_far)
{
    uint64_t total = 0, near = 0;
    for (size_t i = 0; i < nprobe; i++)
        total += ivf->list_off[lists[i] + 1] - ivf->list_off[lists[i]];
    if (total < atomic_load(&vix__split_min) || nprobe < 2)
        return nprobe;
    size_t mid = 0;
    while (mid < nprobe && 2 * near < total)
        near += ivf->list_off[lists[mid] + 1] - ivf->list_off[lists[mid]], mid++;
    *ret_far = total - near;
    return mid;
}

/* Every code of the probed lists scored by the SIMD kernel; the r best
 * integer sums kept. */
static size_t vix__gather(const vix_ivf *ivf, const int8_t *w, const uint32_t *lists,
                          size_t nprobe, int32_t *sums, vix__cand *heap, size_t r)
{
    const uint8_t *codes = atomic_load_explicit(&ivf->hot_codes, memory_order_acquire);
    if (!codes)
        codes = ivf->codes;
    uint64_t far_codes = 0;
    size_t mid = vix__split_at(ivf, lists, nprobe, &far_codes), n = 0;
    vix__far_scan far = {ivf, codes, w, lists, mid, nprobe, NULL};
    bool helped = false;
    if (mid < nprobe && (far.sums = malloc(far_codes * sizeof *far.sums)) != NULL)
        helped = vix_assist_begin(vix__far_scan_main, &far);
    const size_t own = helped ? mid : nprobe;
    uint64_t first;
    for (size_t i = 0; i < own; i++) {
        size_t nblk = vix__scan_list(ivf, codes, w, lists[i], sums, &first);
        vix__offer_list(ivf, first, nblk, sums, heap, &n, r);
    }
    if (helped) {
        vix_assist_end();
        const int32_t *s = far.sums;
        for (size_t i = mid; i < nprobe; i++) {
            size_t nblk = vix__list_blocks(ivf, lists[i], &first);
            vix__offer_list(ivf, first, nblk, s, heap, &n, r);
            s += nblk * VIX_SQ_LANES;
        }
    }
    free(far.sums);
    return n;
}

/* ---- batched reads of the floats rescored ----
 *
 * Past the mapped-floats limit each rescored candidate was a pread: at 10M
 * a quarter to a third of a server's CPU went to those syscalls (perf: the
 * entry, the page-cache lookup, the copy).  One io_uring submission reads a
 * search's candidates at once; page-cache hits complete inside it.  Each
 * thread keeps its own ring; where io_uring is refused (an old kernel, a
 * seccomp profile) the reads stay preads, with the same bytes. */
#define VIX__RING_ENTRIES 256u

typedef struct vix__ring {
    int fd;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len, sqes_len;
    _Atomic unsigned *sq_head, *sq_tail, *cq_head, *cq_tail;
    unsigned sq_mask, cq_mask, *sq_array;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    /* where the reads land: the ring's own, so that nothing a failed
     * submission left in flight can write into memory freed since */
    char *buf;
    size_t buf_len;
    bool broken;
} vix__ring;

static pthread_key_t vix__ring_key;
static pthread_once_t vix__ring_once = PTHREAD_ONCE_INIT;
static bool vix__ring_key_ok;
static atomic_bool vix__ring_off; /* tests: the pread path */

void vix_ivf_batched_reads(bool on)
{
    atomic_store(&vix__ring_off, !on);
}

static void vix__ring_free(void *p)
{
    vix__ring *rg = p;
    if (!rg)
        return;
    if (rg->sqes)
        munmap(rg->sqes, rg->sqes_len);
    if (rg->cq_map && rg->cq_map != rg->sq_map)
        munmap(rg->cq_map, rg->cq_len);
    if (rg->sq_map)
        munmap(rg->sq_map, rg->sq_len);
    if (rg->fd >= 0)
        close(rg->fd);
    free(rg->buf);
    free(rg);
}

static void vix__ring_key_init(void)
{
    vix__ring_key_ok = pthread_key_create(&vix__ring_key, vix__ring_free) == 0;
}

static void *vix__ring_mmap(int fd, size_t len, off_t what)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
    return p == MAP_FAILED ? NULL : p;
}

/* A ring of VIX__RING_ENTRIES, or NULL when the kernel will not give one. */
static vix__ring *vix__ring_new(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    vix__ring *rg = calloc(1, sizeof *rg);
    if (!rg)
        return NULL;
    rg->fd = (int)syscall(__NR_io_uring_setup, VIX__RING_ENTRIES, &p);
    if (rg->fd < 0) {
        free(rg);
        return NULL;
    }
    rg->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    rg->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        rg->sq_len = rg->cq_len = rg->sq_len > rg->cq_len ? rg->sq_len : rg->cq_len;
    rg->sq_map = vix__ring_mmap(rg->fd, rg->sq_len, IORING_OFF_SQ_RING);
    rg->cq_map = !rg->sq_map                             ? NULL
                 : p.features & IORING_FEAT_SINGLE_MMAP ? rg->sq_map
                                                         : vix__ring_mmap(rg->fd, rg->cq_len,
                                                                          IORING_OFF_CQ_RING);
    rg->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    rg->sqes = rg->cq_map ? vix__ring_mmap(rg->fd, rg->sqes_len, IORING_OFF_SQES) : NULL;
    if (!rg->sqes) {
        vix__ring_free(rg);
        return NULL;
    }
    char *sq = rg->sq_map, *cq = rg->cq_map;
    rg->sq_head = (_Atomic unsigned *)(sq + p.sq_off.head);
    rg->sq_tail = (_Atomic unsigned *)(sq + p.sq_off.tail);
    rg->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    rg->sq_array = (unsigned *)(sq + p.sq_off.array);
    rg->cq_head = (_Atomic unsigned *)(cq + p.cq_off.head);
    rg->cq_tail = (_Atomic unsigned *)(cq + p.cq_off.tail);
    rg->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    rg->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return rg;
}

/* This thread's ring, made on first use; NULL for the pread path. */
static vix__ring *vix__ring_get(void)
{
    if (atomic_load(&vix__ring_off))
        return NULL;
    pthread_once(&vix__ring_once, vix__ring_key_init);
    if (!vix__ring_key_ok)
        return NULL;
    vix__ring *rg = pthread_getspecific(vix__ring_key);
    if (rg)
        return rg->fd >= 0 && !rg->broken ? rg : NULL;
    rg = vix__ring_new();
    if (!rg && (rg = calloc(1, sizeof *rg)) != NULL)
        rg->fd = -1; /* refused: remembered, not asked again */
    if (rg && pthread_setspecific(vix__ring_key, rg) != 0) {
        vix__ring_free(rg);
        return NULL;
    }
    return rg && rg->fd >= 0 ? rg : NULL;
}

/* n reads of len bytes at offs[i] of fd into the ring's buffer, row i at
 * i * len, n at most VIX__RING_ENTRIES; ERD_OK only when every read was
 * whole.  A ring whose submission failed is not used again. */
static int vix__ring_read(vix__ring *rg, int fd, const uint64_t *offs, size_t n, size_t len)
{
    if (rg->buf_len < VIX__RING_ENTRIES * len) {
        char *b = malloc(VIX__RING_ENTRIES * len);
        if (!b)
            return ERD_ENOMEM;
        free(rg->buf);
        rg->buf = b;
        rg->buf_len = VIX__RING_ENTRIES * len;
    }
    char *dst = rg->buf;
    unsigned tail = atomic_load_explicit(rg->sq_tail, memory_order_relaxed);
    for (size_t i = 0; i < n; i++, tail++) {
        unsigned slot = tail & rg->sq_mask;
        struct io_uring_sqe *e = &rg->sqes[slot];
        memset(e, 0, sizeof *e);
        e->opcode = IORING_OP_READ;
        e->fd = fd;
        e->addr = (uint64_t)(uintptr_t)(dst + i * len);
        e->len = (uint32_t)len;
        e->off = offs[i];
        e->user_data = i;
        rg->sq_array[slot] = slot;
    }
    atomic_store_explicit(rg->sq_tail, tail, memory_order_release);
    size_t done = 0;
    int rc = ERD_OK;
    while (done < n) {
        unsigned pending = tail - atomic_load_explicit(rg->sq_head, memory_order_acquire);
        long got = syscall(__NR_io_uring_enter, rg->fd, pending, (unsigned)(n - done),
                           IORING_ENTER_GETEVENTS, NULL, 0);
        if (got < 0 && errno != EINTR) {
            rg->broken = true;
            return ERD_EIO;
        }
        unsigned head = atomic_load_explicit(rg->cq_head, memory_order_relaxed);
        unsigned ctail = atomic_load_explicit(rg->cq_tail, memory_order_acquire);
        for (; head != ctail; head++, done++)
            if (rg->cqes[head & rg->cq_mask].res != (int32_t)len)
                rc = ERD_EIO;
        atomic_store_explicit(rg->cq_head, head, memory_order_release);
    }
    return rc;
}

static int vix__cand_pos_cmp(const void *a, const void *b)
{
    const vix__cand *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Where the floats of the vector at pos start in the index file. */
static uint64_t vix__vec_offset(const vix_ivf *ivf, uint32_t pos)
{
    return ivf->vecs_off + (uint64_t)pos * ivf->dim * sizeof(float);
}

/* Candidates first..first+m's floats read through this thread's ring into
 * its buffer; NULL when they must be read one by one instead. */
static const float *vix__read_batch(const vix_ivf *ivf, const vix__cand *cand, size_t first,
                                    size_t m)
{
    vix__ring *rg = vix__ring_get();
    if (!rg)
        return NULL;
    uint64_t offs[VIX__RING_ENTRIES];
    for (size_t i = 0; i < m; i++)
        offs[i] = vix__vec_offset(ivf, cand[first + i].pos);
    return vix__ring_read(rg, ivf->vecs_fd, offs, m, ivf->dim * sizeof(float)) == ERD_OK
               ? (const float *)rg->buf
               : NULL;
}

/* Exact inner products of the candidates, dimension by dimension as the
 * exact flat search sums them, so a vector scores here what it scores there.
 * buf (dim floats) holds a candidate's floats when they are read with pread.
 * In file order: candidates of one list share pages, and the reads go one
 * way through the file (the caller sorts the hits by score after). */
static int vix__rescore(const vix_ivf *ivf, const float *q, vix__cand *cand, size_t n,
                        float *buf, vix__hit *hits, erd_diag *diag)
{
    const size_t dim = ivf->dim, bytes = dim * sizeof(float), ahead = VIX__RESCORE_AHEAD;
    qsort(cand, n, sizeof *cand, vix__cand_pos_cmp);
    const float *batch = NULL;
    for (size_t i = 0; i < n; i++) {
        const float *v = ivf->vecs + (size_t)cand[i].pos * dim;
        if (ivf->vecs_fd >= 0 && i % VIX__RING_ENTRIES == 0) {
            size_t m = n - i < VIX__RING_ENTRIES ? n - i : VIX__RING_ENTRIES;
            batch = vix__read_batch(ivf, cand, i, m);
        }
        if (batch) {
            v = batch + (i % VIX__RING_ENTRIES) * dim;
        } else if (ivf->vecs_fd >= 0) {
            off_t at = (off_t)vix__vec_offset(ivf, cand[i].pos);
            errno = 0;
            if (pread(ivf->vecs_fd, buf, bytes, at) != (ssize_t)bytes)
                return erd_fail(diag, ERD_EIO, "reading vectors to rescore: %s",
                                errno ? strerror(errno) : "short read");
            v = buf;
        } else if (i + ahead < n) {
            for (size_t d = 0; d < dim; d += 16)
                __builtin_prefetch(ivf->vecs + (size_t)cand[i + ahead].pos * dim + d);
        }
        float s = 0;
        for (size_t d = 0; d < dim; d++)
            s += q[d] * v[d];
        hits[i] = (vix__hit){s, ivf->ids[cand[i].pos]};
    }
    return ERD_OK;
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
    const size_t ngcent = (ivf->groups + VIX_SQ_LANES - 1) / VIX_SQ_LANES * VIX_SQ_LANES;
    const size_t gprobe = ivf->groups ? ivf->gprobe : 0;
    float *cscore = malloc((ncent + nprobe + ngcent + gprobe) * sizeof *cscore);
    uint32_t *lists = malloc((nprobe + gprobe) * sizeof *lists);
    int8_t *w = malloc(vix_sq_dim_pad(ivf->dim, ivf->bits) + ivf->dim * sizeof(float));
    int32_t *sums = malloc((ivf->max_list ? ivf->max_list : 1) * sizeof *sums);
    vix__cand *heap = malloc(r * sizeof *heap);
    vix__hit *hits = malloc(r * sizeof *hits);
    int rc = ERD_OK;
    if (!cscore || !lists || !w || !sums || !heap || !hits) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory searching");
        goto out;
    }
    vix__coarse_tmp ct = {.cscore = cscore,
                          .best = cscore + ncent,
                          .gscore = cscore + ncent + nprobe,
                          .gbest = cscore + ncent + nprobe + ngcent,
                          .glists = lists + nprobe};
    size_t np = vix__pick_lists(ivf, q, nprobe, &ct, lists);
    vix_sq_query qq = {.w = w};
    vix_sq_query_prep(ivf->lo, ivf->step, ivf->dim, ivf->bits, q, &qq);
    size_t n = vix__gather(ivf, w, lists, np, sums, heap, r);
    float *vbuf = (float *)(w + vix_sq_dim_pad(ivf->dim, ivf->bits));
    if ((rc = vix__rescore(ivf, q, heap, n, vbuf, hits, diag)) < 0)
        goto out;
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
