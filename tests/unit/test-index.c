/* FAISS wrapper: factories, ids, search, persistence, errors, threads. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_index.h"
#include "index/vix_ivf.h"
#include "tap.h"
#include "tmpdir.h"

#define DIM 32
#define NVEC 400
#define K 5

static char tmpdir[64];
static float vecs[NVEC * DIM];
static int64_t ids[NVEC];

/* deterministic, so a failure reproduces */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void make_vectors(void)
{
    for (int i = 0; i < NVEC; i++) {
        float *v = vecs + (size_t)i * DIM, norm = 0;
        for (int j = 0; j < DIM; j++) {
            v[j] = frand();
            norm += v[j] * v[j];
        }
        norm = sqrtf(norm);
        for (int j = 0; j < DIM; j++)
            v[j] /= norm;
        ids[i] = 1000 + i / 2; /* two vectors per entity, as for a name and an alias */
    }
}

static bool exact_first(const vix_index *ix, const char *label)
{
    float scores[NVEC * K];
    int64_t got[NVEC * K];
    erd_diag d = {0};
    int err = vix_index_search(ix, NVEC, vecs, K, scores, got, &d);
    is_int(err, ERD_OK, "%s: search %s", label, d.msg);
    int wrong_id = 0, wrong_score = 0;
    for (int i = 0; i < NVEC; i++) {
        if (got[i * K] != ids[i])
            wrong_id++;
        if (fabsf(scores[i * K] - 1.0f) > 1e-4f)
            wrong_score++;
    }
    is_int(wrong_id, 0, "%s: each vector finds its own id first", label);
    is_int(wrong_score, 0, "%s: with score ~1", label);
    ok(scores[0] >= scores[1] && scores[1] >= scores[2], "%s: best first", label);
    return wrong_id == 0 && wrong_score == 0;
}

static void test_create(void)
{
    erd_diag d = {0};
    vix_index *ix = NULL;

    is_int(vix_index_create("NoSuchIndexType", DIM, &ix, &d), ERD_EFAISS, "bad factory string");
    ok(ix == NULL, "no index on failure");
    ok(strstr(d.msg, "NoSuchIndexType") != NULL && strlen(d.msg) > 30,
       "FAISS's message carried: %s", d.msg);
    is_int(vix_index_create("Flat", 0, &ix, &d), ERD_EINVAL, "dimension 0");
    is_int(vix_index_create("", DIM, &ix, &d), ERD_EINVAL, "empty factory");
    vix_index_destroy(NULL);

    is_int(vix_index_create("Flat", DIM, &ix, &d), ERD_OK, "Flat: %s", d.msg);
    is_int(vix_index_dim(ix), DIM, "dim");
    is_int(vix_index_count(ix), 0, "empty");

    float scores[K];
    int64_t got[K];
    is_int(vix_index_search(ix, 1, vecs, K, scores, got, &d), ERD_OK, "search an empty index");
    ok(got[0] == -1 && got[K - 1] == -1, "all missing");
    ok(isinf(scores[0]) && scores[0] < 0, "missing score is -INFINITY");

    is_int(vix_index_add(ix, 3, vecs, ids, &d), ERD_OK, "add 3");
    is_int(vix_index_search(ix, 1, vecs, K, scores, got, &d), ERD_OK, "k larger than the index");
    is_int(got[0], ids[0], "hit first");
    is_int(got[3], -1, "then padding id");
    ok(isinf(scores[4]) && scores[4] < 0, "padding score -INFINITY");
    is_int(vix_index_search(ix, 1, vecs, 0, scores, got, &d), ERD_EINVAL, "k = 0");

    int64_t bad_ids[2] = {5, -1};
    is_int(vix_index_add(ix, 2, vecs, bad_ids, &d), ERD_EINVAL, "negative id refused");
    is_int(vix_index_count(ix), 3, "nothing added");
    is_int(vix_index_train(ix, 0, NULL, &d), ERD_OK, "Flat needs no training");
    vix_index_destroy(ix);
}

static vix_index *build(const char *factory)
{
    erd_diag d = {0};
    vix_index *ix = NULL;
    is_int(vix_index_create(factory, DIM, &ix, &d), ERD_OK, "create %s: %s", factory, d.msg);
    if (!ix)
        return NULL;
    is_int(vix_index_train(ix, NVEC, vecs, &d), ERD_OK, "%s: train %s", factory, d.msg);
    is_int(vix_index_add(ix, NVEC, vecs, ids, &d), ERD_OK, "%s: add with duplicate ids %s",
           factory, d.msg);
    is_int(vix_index_count(ix), NVEC, "%s: count", factory);
    return ix;
}

static void test_persist(vix_index *ix, const char *label)
{
    char path[128], tmp[140];
    erd_diag d = {0};
    snprintf(path, sizeof path, "%s/%s.faiss", tmpdir, label);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    is_int(vix_index_write(ix, path, &d), ERD_OK, "%s: write %s", label, d.msg);
    ok(access(tmp, F_OK) != 0, "%s: no temporary left", label);
    /* a second write replaces the first */
    is_int(vix_index_write(ix, path, &d), ERD_OK, "%s: overwrite", label);

    vix_index *back = NULL;
    is_int(vix_index_read(path, &back, &d), ERD_OK, "%s: read back %s", label, d.msg);
    if (!back)
        return;
    is_int(vix_index_dim(back), DIM, "%s: dim survives", label);
    is_int(vix_index_count(back), NVEC, "%s: count survives", label);
    static float s1[NVEC * K], s2[NVEC * K];
    static int64_t i1[NVEC * K], i2[NVEC * K];
    vix_index_search(ix, NVEC, vecs, K, s1, i1, &d);
    vix_index_search(back, NVEC, vecs, K, s2, i2, &d);
    ok(memcmp(i1, i2, sizeof i1) == 0, "%s: same ids after round trip", label);
    ok(memcmp(s1, s2, sizeof s1) == 0, "%s: same scores after round trip", label);
    vix_index_destroy(back);

    /* cut the file in half */
    struct stat sb;
    stat(path, &sb);
    ok(truncate(path, sb.st_size / 2) == 0, "%s: truncate", label);
    back = NULL;
    memset(&d, 0, sizeof d);
    is_int(vix_index_read(path, &back, &d), ERD_ECORRUPT, "%s: truncated file", label);
    ok(back == NULL, "%s: no index from a truncated file", label);
    ok(d.msg[0] != '\0' && strstr(d.msg, path), "%s: message %s", label, d.msg);
}

static void test_files(void)
{
    erd_diag d = {0};
    vix_index *ix = NULL;
    char path[128];

    snprintf(path, sizeof path, "%s/missing.faiss", tmpdir);
    is_int(vix_index_read(path, &ix, &d), ERD_EIO, "missing file");
    ok(strstr(d.msg, path) != NULL, "message names the path: %s", d.msg);
    is_int(vix_index_read(tmpdir, &ix, &d), ERD_EIO, "a directory");

    snprintf(path, sizeof path, "%s/garbage.faiss", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("definitely not a faiss index", f);
    fclose(f);
    is_int(vix_index_read(path, &ix, &d), ERD_ECORRUPT, "garbage file: %s", d.msg);

    vix_index_create("Flat", 4, &ix, &d);
    snprintf(path, sizeof path, "%s/no/such/dir/x.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_EIO, "write into a missing directory");
    vix_index_destroy(ix);
}

static void test_ivf(void)
{
    erd_diag d = {0};
    vix_index *ix = NULL;
    is_int(vix_index_create("IVF4,Flat", DIM, &ix, &d), ERD_OK, "IVF takes ids itself: %s", d.msg);
    is_int(vix_index_add(ix, 2, vecs, ids, &d), ERD_EINVAL, "add before train refused");
    is_int(vix_index_train(ix, NVEC, vecs, &d), ERD_OK, "train IVF: %s", d.msg);
    is_int(vix_index_add(ix, NVEC, vecs, ids, &d), ERD_OK, "add to IVF: %s", d.msg);
    float scores[K];
    int64_t got[K];
    is_int(vix_index_search(ix, 1, vecs + 7 * DIM, K, scores, got, &d), ERD_OK, "IVF search");
    is_int(got[0], ids[7], "IVF finds the vector");
    is_int(vix_index_set_params(ix, "nprobe=4", &d), ERD_OK, "nprobe set: %s", d.msg);
    is_int(vix_index_set_params(ix, "nosuchparam=1", &d), ERD_EINVAL, "unknown parameter refused");
    char path[128];
    snprintf(path, sizeof path, "%s/ivf.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "IVF written: %s", d.msg);
    vix_index_destroy(ix);
    ix = NULL;
    is_int(vix_index_read(path, &ix, &d), ERD_OK, "IVF read back: %s", d.msg);
    /* all 4 lists searched: as exact as Flat */
    int misses = 0;
    for (int i = 0; ix && i < NVEC; i += 9) {
        vix_index_search(ix, 1, vecs + (size_t)i * DIM, K, scores, got, &d);
        misses += got[0] != ids[i];
    }
    is_int(misses, 0, "nprobe kept in the file: every list searched");
    vix_index_destroy(ix);
}

/* The Flat scan is the server's own SIMD code: it must give the scores a
 * sequential float dot product gives (FAISS's scalar reference), bit for
 * bit, and the top k by (score, then smaller id), at odd sizes too. */
static void test_flat_exact_with(const char *simd, size_t dim)
{
    enum { N = 397, KK = 37, MAXDIM = 64 };
    erd_diag d = {0};
    vix_index *ix = NULL;
    static float v[N * MAXDIM];
    static int64_t own[N];
    is_int(vix_simd_limit(simd, &d), ERD_OK, "simd %s (in use: %s), dim %zu", simd,
           vix_simd_name(), dim);
    for (int i = 0; i < N; i++) {
        /* some vectors twice, under ids out of order: equal scores must
         * come smaller id first */
        if (i % 10 == 9) {
            memcpy(v + (size_t)i * dim, v + (size_t)(i - 5) * dim, dim * sizeof *v);
        } else {
            float norm = 0;
            for (size_t j = 0; j < dim; j++) {
                v[(size_t)i * dim + j] = frand();
                norm += v[(size_t)i * dim + j] * v[(size_t)i * dim + j];
            }
            for (size_t j = 0; j < dim; j++)
                v[(size_t)i * dim + j] /= sqrtf(norm);
        }
        own[i] = i % 10 == 9 ? 4000 + i : 5000 + i;
    }
    is_int(vix_index_create("Flat", dim, &ix, &d), ERD_OK, "Flat: %s", d.msg);
    is_int(vix_index_add(ix, N, v, own, &d), ERD_OK, "add %d", N);
    const float *q = v + 14 * dim; /* a duplicated one: its twin ties with it */
    float ref[N];
    for (int i = 0; i < N; i++) {
        float sum = 0;
        for (size_t j = 0; j < dim; j++)
            sum += v[(size_t)i * dim + j] * q[j];
        ref[i] = sum;
    }
    float scores[KK];
    int64_t got[KK];
    is_int(vix_index_search(ix, 1, q, KK, scores, got, &d), ERD_OK, "search");
    int bad = 0;
    for (int r = 0; r < KK; r++) {
        int64_t i = got[r] >= 5000 ? got[r] - 5000 : got[r] - 4000;
        if (i < 0 || i >= N || own[i] != got[r] || memcmp(&scores[r], &ref[i], sizeof(float)) != 0)
            bad++;
    }
    is_int(bad, 0, "scores bit for bit the sequential dot products");
    int better_left = 0, order = 0;
    for (int r = 1; r < KK; r++)
        order += scores[r] > scores[r - 1] || (scores[r] == scores[r - 1] && got[r] < got[r - 1]);
    for (int i = 0; i < N; i++) {
        bool in = false;
        for (int r = 0; r < KK; r++)
            in |= got[r] == own[i];
        better_left += !in && ref[i] > scores[KK - 1];
    }
    is_int(order, 0, "best first, equal scores smaller id first");
    ok(got[0] == 4019 && got[1] == 5014, "the query's twin (id 4019) before itself (5014)");
    is_int(better_left, 0, "the true top %d", KK);
    vix_index_destroy(ix);
}

/* The 8-bit pass's bound is tight enough to matter: anchors fix each
 * dimension's codes to [-1, 1] (step 2/255); u rounds up in every
 * dimension, v down; v scores higher exactly but 1.71 steps lower in the
 * 8-bit pass, where the bound is 0.89 steps.  Twice the bound keeps v; the
 * bound alone (and at most a quarter step of histogram slack) loses it. */
static void test_flat_u8_tight(void)
{
    const float step = 2.0f / 255, q[4] = {0.1f, 0.57f, 0.57f, 0.57f};
    float v[4 * 4] = {1, -1, 1, -1, -1, 1, -1, 1};
    const int64_t own[4] = {10, 11, 12, 13};
    for (int d = 0; d < 4; d++) {
        v[8 + d] = -1 + (200 + 0.51f) * step;                   /* u: codes 201 */
        v[12 + d] = -1 + ((d == 0 ? 201 : 200) + 0.49f) * step; /* v: 201, then 200 */
    }
    vix_index *ix = NULL;
    vix_simd_limit("auto", NULL);
    vix_index_create("Flat", 4, &ix, NULL);
    vix_index_add(ix, 4, v, own, NULL);
    float sc[1];
    int64_t got[1];
    is_int(vix_index_search(ix, 1, q, 1, sc, got, NULL), ERD_OK, "u8 tight: search (%s)",
           vix_simd_name());
    is_int(got[0], 13, "u8 tight: the exact best, though second in the 8-bit pass");
    vix_index_destroy(ix);
}

/* The r-th best of ref by (score, then smaller id), skipping got[0..r). */
static int best_left(const float *ref, const int64_t *own, int n, const int64_t *got, size_t r)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        bool taken = false;
        for (size_t p = 0; p < r; p++)
            taken |= got[p] == own[i];
        if (!taken &&
            (best < 0 || ref[i] > ref[best] || (ref[i] == ref[best] && own[i] < own[best])))
            best = i;
    }
    return best;
}

/* Near-ties (every vector close to one direction), repeated vectors and k
 * beyond n, at every level, against the sequential float scan. */
static void test_flat_ties(void)
{
    enum { N = 300, D = 128 };
    static float v[N * D];
    static int64_t own[N];
    static const char *const levels[] = {"base", "avx2", "avx512", "avx512-bf16", "avx512-vnni"};
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            v[i * D + j] = i % 7 == 3 && i > 10 ? v[(i - 7) * D + j]
                                                : 0.08f + 1e-4f * frand() + (j == i % D) * 1e-3f;
        own[i] = 1000 - i;
    }
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
        vix_simd_limit(levels[l], NULL);
        vix_index *ix = NULL;
        vix_index_create("Flat", D, &ix, NULL);
        vix_index_add(ix, N, v, own, NULL);
        for (size_t k = 1; k <= N + 5; k += 61) {
            const float *q = v + (k % N) * D;
            float sc[N + 5], ref[N];
            int64_t got[N + 5];
            vix_index_search(ix, 1, q, k, sc, got, NULL);
            for (int i = 0; i < N; i++) {
                float sum = 0;
                for (int j = 0; j < D; j++)
                    sum += v[i * D + j] * q[j];
                ref[i] = sum;
            }
            int bad = 0;
            for (size_t r = 0; r < k; r++) {
                int b = best_left(ref, own, N, got, r);
                bad += b < 0 ? got[r] != -1
                             : got[r] != own[b] || memcmp(&sc[r], &ref[b], sizeof *sc) != 0;
            }
            is_int(bad, 0, "ties, %s, k %zu: the full scan's answer", levels[l], k);
        }
        vix_index_destroy(ix);
    }
    vix_simd_limit("auto", NULL);
}

/* Every kernel the dispatch may pick on some CPU, as far as this one runs
 * them. */
static void test_flat_exact(void)
{
    static const char *const levels[] = {"base",        "avx2",        "avx512",
                                         "avx512-bf16", "avx512-vnni", "auto"};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        test_flat_exact_with(levels[i], DIM);
        test_flat_exact_with(levels[i], 37); /* odd: a padded pair, a partial tile */
    }
    const char *before = vix_simd_name();
    ok(vix_simd_limit("avx9", NULL) == ERD_ECONFIG && !strcmp(before, vix_simd_name()),
       "unknown instruction set refused, cap unchanged");
}

/* Search parameters after '|' are applied, and saved with the index: an IVF
 * probing all of its lists answers like an exhaustive search, also once
 * read back from its file. */
static void test_search_params(void)
{
    erd_diag d = {0};
    vix_index *ix = NULL, *back = NULL;
    char path[128];
    static float s_all[NVEC * K], s_back[NVEC * K];
    static int64_t i_all[NVEC * K], i_back[NVEC * K];
    is_int(vix_index_create("IVF4,Flat|nprobe=4", DIM, &ix, &d), ERD_OK, "IVF with nprobe: %s", d.msg);
    if (!ix)
        return;
    vix_index_train(ix, NVEC, vecs, &d);
    vix_index_add(ix, NVEC, vecs, ids, &d);
    is_int(vix_index_search(ix, NVEC, vecs, K, s_all, i_all, &d), ERD_OK, "search");
    int found = 0;
    for (int q = 0; q < NVEC; q++)
        found += s_all[q * K] >= 0.9999f;
    is_int(found, NVEC, "every vector finds itself with all lists probed");
    snprintf(path, sizeof path, "%s/nprobe.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "write");
    is_int(vix_index_read(path, &back, &d), ERD_OK, "read back");
    if (back) {
        vix_index_search(back, NVEC, vecs, K, s_back, i_back, &d);
        ok(memcmp(i_all, i_back, sizeof i_all) == 0, "nprobe saved with the index: same results");
    }
    vix_index_destroy(back);
    vix_index_destroy(ix);
    ix = NULL;
    is_int(vix_index_create("Flat|nosuchparam=3", DIM, &ix, &d), ERD_EINVAL, "unknown parameter: %s",
           d.msg);
    ok(ix == NULL, "no index");
    is_int(vix_index_create("|nprobe=2", DIM, &ix, &d), ERD_EINVAL, "parameters without a factory");
}

typedef struct job {
    const vix_index *ix;
    float scores[NVEC * K];
    int64_t ids[NVEC * K];
    int err;
} job;

static void *search_job(void *arg)
{
    job *j = arg;
    for (int round = 0; round < 5 && !j->err; round++)
        j->err = vix_index_search(j->ix, NVEC, vecs, K, j->scores, j->ids, NULL);
    return NULL;
}

static void test_threads(const vix_index *ix)
{
    static job seq, par[4];
    seq.ix = ix;
    search_job(&seq);
    is_int(seq.err, ERD_OK, "sequential search");
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        par[t].ix = ix;
        pthread_create(&th[t], NULL, search_job, &par[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        is_int(par[t].err, ERD_OK, "thread %d searched", t);
        ok(memcmp(par[t].ids, seq.ids, sizeof seq.ids) == 0 &&
               memcmp(par[t].scores, seq.scores, sizeof seq.scores) == 0,
           "thread %d matches the sequential results", t);
    }
}

/* Half of the probed lists scanned by a second thread: the same candidates
 * and answers as one thread's scan, with few lists probed and few
 * candidates rescored, so that the heap of integer sums decides. */
static void test_erd_ivf_split(const char *factory)
{
    static float s1[NVEC * K], s2[NVEC * K];
    static int64_t i1[NVEC * K], i2[NVEC * K];
    erd_diag d = {0};
    vix_index *ix = build(factory);
    if (!ix)
        return;
    vix_ivf_split_scan_min(SIZE_MAX);
    is_int(vix_index_search(ix, NVEC, vecs, K, s1, i1, &d), ERD_OK, "%s: one thread", factory);
    vix_ivf_split_scan_min(1);
    is_int(vix_index_search(ix, NVEC, vecs, K, s2, i2, &d), ERD_OK, "%s: two threads", factory);
    ok(memcmp(i1, i2, sizeof i1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
       "%s: the scan split over two threads answers as one thread's", factory);
    /* four searches at once share one helper: those that find it busy scan
     * alone, and every one answers as a single thread */
    static job par[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        par[t].ix = ix;
        par[t].err = 0;
        pthread_create(&th[t], NULL, search_job, &par[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++)
        ok(par[t].err == ERD_OK && memcmp(par[t].ids, i1, sizeof i1) == 0 &&
               memcmp(par[t].scores, s1, sizeof s1) == 0,
           "%s: concurrent split search %d answers as one thread", factory, t);
    vix_ivf_split_scan_min(0);
    vix_index_destroy(ix);
}

/* Searching every list and rescoring every vector, erd's IVF must give
 * exact Flat's answers bit for bit, whatever the code width and the
 * instruction set; a file it wrote maps back to the same answers. */
static void test_erd_ivf_exact(const char *factory, const vix_index *flat)
{
    static float s1[NVEC * K], s2[NVEC * K];
    static int64_t i1[NVEC * K], i2[NVEC * K];
    static const char *const isa[] = {"base", "avx2", "avx512", "avx512-bf16", "avx512-vnni"};
    erd_diag d = {0};
    vix_index *ix = build(factory);
    if (!ix)
        return;
    is_int(vix_index_search(flat, NVEC, vecs, K, s1, i1, &d), ERD_OK, "Flat search");
    for (size_t i = 0; i < sizeof isa / sizeof *isa; i++) {
        vix_simd_limit(isa[i], NULL);
        memset(i2, 0, sizeof i2);
        is_int(vix_index_search(ix, NVEC, vecs, K, s2, i2, &d), ERD_OK, "%s: search %s", factory,
               d.msg);
        ok(memcmp(i1, i2, sizeof i1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
           "%s under %s (in use: %s): exact Flat's ids and scores", factory, isa[i],
           vix_simd_name());
    }
    vix_simd_limit("auto", NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/erd-exact.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "%s: written %s", factory, d.msg);
    /* read back three times: floats through the map, then read a search's
     * candidates at a time (io_uring where the kernel allows it), then one
     * pread each */
    enum { MAPPED, BATCHED, PREAD, NHOW };
    static const char *const how[NHOW] = {"mapped", "read in batches", "read with pread"};
    for (int mode = MAPPED; mode < NHOW; mode++) {
        vix_ivf_mapped_floats_max(mode == MAPPED ? 0 : 1);
        vix_ivf_batched_reads(mode != PREAD);
        vix_index *back = NULL;
        is_int(vix_index_read(path, &back, &d), ERD_OK, "%s: mapped back %s", factory, d.msg);
        if (back) {
            memset(i2, 0, sizeof i2);
            vix_index_search(back, NVEC, vecs, K, s2, i2, &d);
            ok(memcmp(i1, i2, sizeof i1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
               "%s, floats %s: the mapped file keeps nprobe and rescore and answers as Flat",
               factory, how[mode]);
            is_int(vix_index_add(back, 1, vecs, ids, &d), ERD_EUNSUPPORTED,
                   "a mapped index is read-only");
        }
        vix_index_destroy(back);
    }
    vix_ivf_mapped_floats_max(0);
    vix_ivf_batched_reads(true);
    vix_index_destroy(ix);
}

/* Two levels probing one group: fewer lists scanned, each vector still
 * found (it was put in a list of its own nearest group), and gprobe kept
 * in the file. */
static void test_erd_ivf_groups(void)
{
    static float s1[NVEC * K], s2[NVEC * K];
    static int64_t i1[NVEC * K], i2[NVEC * K];
    erd_diag d = {0};
    vix_index *ix = build("erdIVF16_G4,SQ8|nprobe=4,gprobe=1,rescore=64");
    if (!ix)
        return;
    is_int(vix_index_search(ix, NVEC, vecs, K, s1, i1, &d), ERD_OK, "grouped search %s", d.msg);
    int self = 0;
    for (int q = 0; q < NVEC; q++)
        self += i1[q * K] == ids[q];
    ok(self >= NVEC * 9 / 10, "%d of %d vectors find themselves probing 1 group of 4", self, NVEC);
    char path[128];
    snprintf(path, sizeof path, "%s/erd-groups.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "written %s", d.msg);
    vix_index *back = NULL;
    is_int(vix_index_read(path, &back, &d), ERD_OK, "mapped back %s", d.msg);
    if (back) {
        vix_index_search(back, NVEC, vecs, K, s2, i2, &d);
        ok(memcmp(i1, i2, sizeof i1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
           "the mapped file keeps its groups and gprobe");
    }
    vix_index_destroy(back);
    vix_index_destroy(ix);
    ix = NULL;
    is_int(vix_index_create("erdIVF16_G4,SQ4|gprobe=0", DIM, &ix, &d), ERD_EINVAL,
           "gprobe 0 refused: %s", d.msg);
}

/* An index with megabytes of codes: a mapped one copies them to huge pages
 * on a thread of its own while it already answers from the map.  Before,
 * during and after the copy, every list probed and every vector rescored,
 * it answers as exact Flat does. */
#define BIG_DIM 256
#define BIG_N 9000
#define BIG_Q 40

static void big_search_as_flat(const vix_index *ix, const float *x, const float *fs,
                               const int64_t *fi, const char *when)
{
    static float s[BIG_Q * K];
    static int64_t i[BIG_Q * K];
    erd_diag d = {0};
    is_int(vix_index_search(ix, BIG_Q, x, K, s, i, &d), ERD_OK, "big: search %s", d.msg);
    ok(memcmp(i, fi, sizeof i) == 0 && memcmp(s, fs, sizeof s) == 0,
       "2.3 MB of codes, %s: exact Flat's ids and scores", when);
}

static void test_erd_ivf_big(void)
{
    static float x[(size_t)BIG_N * BIG_DIM], fs[BIG_Q * K];
    static int64_t xid[BIG_N], fi[BIG_Q * K];
    char path[128], factory[64];
    erd_diag d = {0};
    for (size_t i = 0; i < BIG_N; i++) {
        float *v = x + i * BIG_DIM, norm = 0;
        for (size_t j = 0; j < BIG_DIM; j++) {
            v[j] = frand();
            norm += v[j] * v[j];
        }
        for (size_t j = 0; j < BIG_DIM; j++)
            v[j] /= sqrtf(norm);
        xid[i] = (int64_t)i;
    }
    snprintf(factory, sizeof factory, "erdIVF16,SQ8|nprobe=16,rescore=%d", BIG_N);
    vix_index *flat = NULL, *ix = NULL, *back = NULL;
    vix_index_create("Flat", BIG_DIM, &flat, NULL);
    is_int(vix_index_create(factory, BIG_DIM, &ix, &d), ERD_OK, "big: %s", d.msg);
    if (!flat || !ix)
        goto out;
    vix_index_add(flat, BIG_N, x, xid, NULL);
    is_int(vix_index_search(flat, BIG_Q, x, K, fs, fi, &d), ERD_OK, "big: Flat %s", d.msg);
    is_int(vix_index_train(ix, BIG_N, x, &d), ERD_OK, "big: trained %s", d.msg);
    is_int(vix_index_add(ix, BIG_N, x, xid, &d), ERD_OK, "big: added %s", d.msg);
    snprintf(path, sizeof path, "%s/erd-big.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "big: written %s", d.msg);
    is_int(vix_index_read(path, &back, &d), ERD_OK, "big: mapped %s", d.msg);
    if (!back)
        goto out;
    big_search_as_flat(back, x, fs, fi, "right after mapping");
    usleep(200 * 1000);
    big_search_as_flat(back, x, fs, fi, "once copied");
    vix_index_destroy(back);
    /* destroyed while the copy may still run: it stops, nothing leaks */
    back = NULL;
    is_int(vix_index_read(path, &back, &d), ERD_OK, "big: mapped again %s", d.msg);
out:
    vix_index_destroy(back);
    vix_index_destroy(ix);
    vix_index_destroy(flat);
}

/* Probing some of the lists: which ones is decided by the centroid scores,
 * summed in the same order at every instruction-set level, so every level
 * probes the same lists and answers the same. */
static void test_erd_ivf_probes_same(void)
{
    static float s1[NVEC * K], s2[NVEC * K];
    static int64_t i1[NVEC * K], i2[NVEC * K];
    static const char *const isa[] = {"avx2", "avx512", "avx512-bf16", "avx512-vnni"};
    erd_diag d = {0};
    vix_index *ix = build("erdIVF16,SQ4|nprobe=3");
    if (!ix)
        return;
    vix_simd_limit("base", NULL);
    is_int(vix_index_search(ix, NVEC, vecs, K, s1, i1, &d), ERD_OK, "plain search %s", d.msg);
    for (size_t i = 0; i < sizeof isa / sizeof *isa; i++) {
        vix_simd_limit(isa[i], NULL);
        memset(i2, 0, sizeof i2);
        vix_index_search(ix, NVEC, vecs, K, s2, i2, &d);
        ok(memcmp(i1, i2, sizeof i1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
           "3 of 16 lists probed under %s (in use: %s): the plain kernels' answers", isa[i],
           vix_simd_name());
    }
    vix_simd_limit("auto", NULL);
    vix_index_destroy(ix);
}

static void test_erd_ivf(void)
{
    erd_diag d = {0};
    vix_index *ix = NULL;
    static const char *const bad[] = {"erdIVF0,SQ4",    "erdIVF4,SQ3",   "erdIVF4",
                                      "erdIVF,SQ4",     "erdIVF4,SQ4x",  "erdIVF99999999999,SQ4",
                                      "erdIVF4_G1,SQ4", "erdIVF4_G5,SQ4", "erdIVF4_G,SQ4",
                                      "erdIVF4_X2,SQ4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        is_int(vix_index_create(bad[i], DIM, &ix, &d), ERD_EINVAL, "%s refused: %s", bad[i],
               d.msg);
        ok(ix == NULL, "no index from %s", bad[i]);
    }
    is_int(vix_index_create("erdIVF4,SQ4|nprobe=0", DIM, &ix, &d), ERD_EINVAL,
           "nprobe 0 refused: %s", d.msg);
    is_int(vix_index_create("erdIVF4,SQ4|efSearch=3", DIM, &ix, &d), ERD_EINVAL,
           "a parameter erd IVF does not take: %s", d.msg);
    is_int(vix_index_create("erdIVF4,SQ4", DIM, &ix, &d), ERD_OK, "erdIVF4,SQ4: %s", d.msg);
    ok(!vix_index_is_trained(ix), "untrained at first");
    is_int(vix_index_add(ix, 2, vecs, ids, &d), ERD_EINVAL, "add before train refused");
    is_int(vix_index_train(ix, 3, vecs, &d), ERD_EINVAL, "fewer training vectors than lists");
    is_int(vix_index_train(ix, NVEC, vecs, &d), ERD_OK, "trained: %s", d.msg);
    const int64_t neg[2] = {7, -3};
    is_int(vix_index_add(ix, 2, vecs, neg, &d), ERD_EINVAL, "a negative id refused: %s", d.msg);
    is_int(vix_index_count(ix), 0, "nothing added by the refused call");
    vix_index_destroy(ix);

    vix_index *flat = build("Flat");
    if (!flat)
        return;
    char factory[64];
    for (int bits = 2; bits <= 8; bits *= 2) {
        snprintf(factory, sizeof factory, "erdIVF4,SQ%d|nprobe=4,rescore=%d", bits, NVEC);
        test_erd_ivf_exact(factory, flat);
        /* two levels, every group and list probed */
        snprintf(factory, sizeof factory, "erdIVF8_G4,SQ%d|nprobe=8,gprobe=4,rescore=%d", bits,
                 NVEC);
        test_erd_ivf_exact(factory, flat);
    }
    test_erd_ivf_groups();
    test_erd_ivf_split("erdIVF16,SQ4|nprobe=5,rescore=8");
    test_erd_ivf_split("erdIVF16_G4,SQ2|nprobe=6,gprobe=2,rescore=6");
    vix_index_destroy(flat);

    /* a header that no longer matches the arrays */
    ix = build("erdIVF8,SQ4");
    char path[128];
    snprintf(path, sizeof path, "%s/erd-bad.faiss", tmpdir);
    is_int(vix_index_write(ix, path, &d), ERD_OK, "written");
    vix_index_destroy(ix);
    FILE *f = fopen(path, "r+b");
    ok(f && fseek(f, 16, SEEK_SET) == 0 && fputc(0x7f, f) != EOF && fclose(f) == 0,
       "dimension overwritten");
    ix = NULL;
    is_int(vix_index_read(path, &ix, &d), ERD_ECORRUPT, "a mangled header: %s", d.msg);
    ok(ix == NULL, "no index from it");
}

/* A thread keeps its flat-search scratch between searches: answers of a
 * small index are the same before and after a larger one used (and grew)
 * it, and the larger one's the same after the small one searched. */
static void test_flat_scratch_reuse(void)
{
    enum { BIG = 5000, KK = 20 };
    erd_diag d = {0};
    static float bigv[BIG * DIM];
    static int64_t bigids[BIG];
    for (int i = 0; i < BIG * DIM; i++)
        bigv[i] = frand();
    for (int i = 0; i < BIG; i++)
        bigids[i] = 70000 + i;
    vix_index *small = build("Flat"), *big = NULL;
    is_int(vix_index_create("Flat", DIM, &big, &d), ERD_OK, "Flat: %s", d.msg);
    is_int(vix_index_add(big, BIG, bigv, bigids, &d), ERD_OK, "add %d", BIG);
    if (!small || !big) {
        vix_index_destroy(small);
        vix_index_destroy(big);
        return;
    }
    float s1[KK], s2[KK], b1[KK], b2[KK];
    int64_t i1[KK], i2[KK], j1[KK], j2[KK];
    const float *q = vecs + 7 * DIM;
    is_int(vix_index_search(small, 1, q, KK, s1, i1, &d), ERD_OK, "small first");
    is_int(vix_index_search(big, 1, q, KK, b1, j1, &d), ERD_OK, "big");
    is_int(vix_index_search(small, 1, q, KK, s2, i2, &d), ERD_OK, "small again");
    is_int(vix_index_search(big, 1, q, KK, b2, j2, &d), ERD_OK, "big again");
    ok(!memcmp(s1, s2, sizeof s1) && !memcmp(i1, i2, sizeof i1),
       "small index: same answers before and after the big one");
    ok(!memcmp(b1, b2, sizeof b1) && !memcmp(j1, j2, sizeof j1),
       "big index: same answers after the small one");
    ok(i1[0] == ids[7], "small index finds the query's own vector first");
    vix_index_destroy(small);
    vix_index_destroy(big);
}

/* The breadth a build records: 128 lists for FAISS and single-level erd
 * indexes; a two-level index's smaller lists get enough of them to scan
 * what 128 of 2,048 lists of 1.6M vectors scan. */
static void test_default_nprobe(void)
{
    is_int(vix_build_default_nprobe("IVF2048,Flat", 1600000), VIX_BUILD_NPROBE, "FAISS IVF");
    is_int(vix_build_default_nprobe("erdIVF2048,SQ4", 1600000), VIX_BUILD_NPROBE,
           "single-level erd IVF at its largest");
    is_int(vix_build_default_nprobe("erdIVF32768_G256,SQ4", 15728998), 256,
           "10M: lists of 480 vectors, 256 of them");
    is_int(vix_build_default_nprobe("erdIVF4096_G64,SQ4", 2000000), 256,
           "2M: lists of 488 vectors, 256 of them");
    is_int(vix_build_default_nprobe("erdIVF4096_G64,SQ4", 8000000), VIX_BUILD_NPROBE,
           "lists of 1,953 vectors: 128 already scan enough");
    is_int(vix_build_default_nprobe("erdIVF64_G8,SQ4", 1000), 64, "never more lists than there are");
    is_int(vix_build_default_nprobe("Flat", 100), VIX_BUILD_NPROBE, "not an IVF: the constant");
}

int main(void)
{
    if (!tmpdir_make(tmpdir, sizeof tmpdir, "index")) {
        perror("mkdtemp");
        return 1;
    }
    make_vectors();
    test_create();

    static const char *const factories[] = {"Flat", "HNSW32", "IDMap,Flat",
                                            "erdIVF4,SQ4|nprobe=4"};
    for (size_t i = 0; i < sizeof factories / sizeof factories[0]; i++) {
        vix_index *ix = build(factories[i]);
        if (!ix)
            continue;
        exact_first(ix, factories[i]);
        test_threads(ix);
        char label[32];
        snprintf(label, sizeof label, "idx%zu", i);
        test_persist(ix, label);
        vix_index_destroy(ix);
    }
    test_files();
    test_ivf();
    test_erd_ivf();
    test_erd_ivf_probes_same();
    test_erd_ivf_big();
    test_search_params();
    test_flat_exact();
    test_flat_ties();
    test_flat_u8_tight();
    test_flat_scratch_reuse();
    test_default_nprobe();

    ok(tmpdir_remove(tmpdir), "temp dir removed");
    return tap_done();
}
