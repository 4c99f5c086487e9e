/* Learned second stage (index/vix_ranker.c): its features on hand-made
 * alignments, a fit that must find the feature that decides, the file's
 * round trip and checksum, and the resolver that loads it beside a channel
 * (refusing one fitted under another rerank) and lets an observer see the
 * features. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_ranker.h"
#include "index/vix_resolve.h"
#include "phonetics/pho_channel.h"
#include "tap.h"
#include "tmpdir.h"
#include "fixture.h"

static void test_features(void)
{
    uint8_t t3[3] = {1, 2, 3}, t6[6] = {1, 2, 3, 4, 5, 6};
    vix_rerank_phrase short_p = {t3, 3, 0}, long_p = {t6, 6, 0};
    vix_rerank_hyp hyps[2] = {{t3, 3, 1.0}, {t6, 6, 0.5}};
    vix_rerank_cand cands[3] = {
        {&short_p, 1, 0.9, 0.4, 0.6}, {&long_p, 1, 0.7, 0.8, 0.7}, {NULL, 0, 0.5, 0.0, 0.2}};
    /* hypothesis 0 aligns best with candidate 1, hypothesis 1 with candidate 0 */
    double by_hyp[2 * 3] = {0.3, 0.9, 0.0, 0.7, 0.6, 0.0};
    double x[3 * VIX_RANKER_NFEAT];
    vix_rank_input in = {hyps, 2, cands, 3, by_hyp};
    vix_rank_features(&in, x);
    const double *c0 = x, *c1 = x + VIX_RANKER_NFEAT, *c2 = x + 2 * VIX_RANKER_NFEAT;
    ok(c0[VIX_RK_FIRST] == 0.9 && c1[VIX_RK_SECOND] == 0.8 && c2[VIX_RK_BLEND] == 0.2,
       "stage scores copied");
    ok(c0[VIX_RK_BEST_HYP] == 0.7 && c1[VIX_RK_BEST_HYP] == 0.9, "best hypothesis per candidate");
    ok(c0[VIX_RK_TOP_HYP] == 0.3 && c1[VIX_RK_TOP_HYP] == 0.9, "first hypothesis's alignment");
    ok(fabs(c1[VIX_RK_AGREE] - 2.0 / 3.0) < 1e-12 && fabs(c0[VIX_RK_AGREE] - 1.0 / 3.0) < 1e-12 &&
           c2[VIX_RK_AGREE] == 0,
       "agreement is the hypotheses' weighted vote");
    ok(c0[VIX_RK_FIRST_GAP] == 0 && fabs(c1[VIX_RK_FIRST_GAP] - 0.2) < 1e-12, "first-stage gap");
    ok(fabs(c0[VIX_RK_SECOND_GAP] - 0.4) < 1e-12 && c1[VIX_RK_SECOND_GAP] == 0, "rerank gap");
    /* c0: (2/3)(0.9-0.3) + (1/3)(0.7-0.7) */
    ok(fabs(c0[VIX_RK_HYP_GAP] - 0.4) < 1e-12, "per-hypothesis gap (%g)", c0[VIX_RK_HYP_GAP]);
    ok(c0[VIX_RK_LOG_RANK] == 0 && fabs(c2[VIX_RK_LOG_RANK] - log(3.0)) < 1e-12, "log rank");
    ok(c0[VIX_RK_LEN_RATIO] == 0 && fabs(c1[VIX_RK_LEN_RATIO] - log(7.0 / 4.0)) < 1e-12 &&
           c2[VIX_RK_LEN_RATIO] == 0,
       "length ratio against the first hypothesis");
}

/* Lists in which feature SECOND alone tells the right candidate, while the
 * blend points elsewhere half the time: the fit must learn to follow it. */
static void make_lists(size_t n_lists, double *x, uint8_t *y, size_t *off, unsigned seed)
{
    srand(seed);
    for (size_t q = 0; q < n_lists; q++) {
        off[q] = q * 4;
        size_t right = (size_t)rand() % 4;
        for (size_t i = 0; i < 4; i++) {
            double *r = x + (q * 4 + i) * VIX_RANKER_NFEAT;
            for (int f = 0; f < VIX_RANKER_NFEAT; f++)
                r[f] = (double)rand() / RAND_MAX;
            r[VIX_RK_SECOND] = i == right ? 0.9 : 0.5 * (double)rand() / RAND_MAX;
            y[q * 4 + i] = i == right;
        }
    }
    off[n_lists] = n_lists * 4;
}

static void test_fit_and_file(void)
{
    enum { N = 300 };
    double *x = malloc(N * 4 * VIX_RANKER_NFEAT * sizeof *x);
    uint8_t y[N * 4];
    size_t off[N + 1];
    vix_ranker rk, back;
    vix_ranker_fit_opts fo;
    erd_diag diag = {0};
    char dir[200], path[256];

    make_lists(N, x, y, off, 7);
    vix_ranker_fit_opts_init(&fo);
    ok(vix_ranker_fit(x, y, off, 0, &fo, &rk, NULL) == ERD_EEMPTY, "nothing to fit refused");
    is_int(vix_ranker_fit(x, y, off, N, &fo, &rk, &diag), ERD_OK, "fit");
    double base = 0;
    for (size_t q = 0; q < N; q++) {
        size_t arg = off[q];
        for (size_t i = off[q]; i < off[q + 1]; i++)
            if (x[i * VIX_RANKER_NFEAT + VIX_RK_BLEND] > x[arg * VIX_RANKER_NFEAT + VIX_RK_BLEND])
                arg = i;
        base += y[arg];
    }
    double acc = vix_ranker_accuracy(&rk, x, y, off, N);
    ok(acc > 0.95 && acc > base / N + 0.4, "fitted ranker finds the deciding feature (%.3f vs "
       "blend %.3f)", acc, base / N);
    make_lists(N, x, y, off, 8);
    ok(vix_ranker_accuracy(&rk, x, y, off, N) > 0.95, "and on lists it has not seen");
    double p[4], sum = 0;
    vix_ranker_probs(&rk, x, 4, p);
    for (int i = 0; i < 4; i++)
        sum += p[i];
    ok(fabs(sum - 1) < 1e-12, "probabilities of a list sum to 1");

    ok(tmpdir_make(dir, sizeof dir, "ranker"), "temp dir");
    snprintf(path, sizeof path, "%s/ranker.json", dir);
    snprintf(rk.rerank_id, sizeof rk.rerank_id, "channel=fnv1a64:0,weight=0.7");
    snprintf(rk.provenance, sizeof rk.provenance, "test");
    is_int(vix_ranker_save(&rk, path, &diag), ERD_OK, "saved");
    is_int(vix_ranker_load(path, &back, &diag), ERD_OK, "loaded: %s", diag.msg);
    ok(!memcmp(back.w, rk.w, sizeof rk.w) && !memcmp(back.mean, rk.mean, sizeof rk.mean) &&
           !memcmp(back.scale, rk.scale, sizeof rk.scale) && back.checksum == rk.checksum &&
           !strcmp(back.rerank_id, rk.rerank_id),
       "round trip keeps every weight bit for bit");
    ok(tmpdir_edit(path, "\"test\"", 1, 'T'), "provenance edited");
    ok(vix_ranker_load(path, &back, NULL) == ERD_ECORRUPT, "an edited file is refused");
    snprintf(path, sizeof path, "%s/none.json", dir);
    ok(vix_ranker_load(path, &back, NULL) == ERD_ENOTFOUND, "a missing file is ENOTFOUND");
    ok(tmpdir_remove(dir), "temp dir removed");
    free(x);
}

typedef struct seen {
    size_t calls, rows;
} seen;

static void observe(void *ctx, const double *x, const vix_result *cands, size_t n)
{
    seen *s = ctx;
    s->calls++;
    s->rows += n;
    (void)x;
    (void)cands;
}

static void test_resolver(void)
{
    char dir[200], db[256], chp[256], rkp[256], spec[700];
    erd_diag diag = {0};
    vix_resolver *r = NULL;
    pho_channel *ch = fixture_flat_channel();
    ok(ch && tmpdir_make(dir, sizeof dir, "ranker-r"), "channel and temp dir");
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(chp, sizeof chp, "%s/channel.txt", dir);
    snprintf(rkp, sizeof rkp, "%s/ranker.json", dir);
    is_int(pho_channel_save(ch, chp, "test", &diag), ERD_OK, "channel saved");
    is_int(fixture_import(db, "video", fixture_six, &diag), ERD_OK, "imported");
    is_int(fixture_build(db, "video", NULL, &diag), ERD_OK, "built: %s", diag.msg);

    vix_hypothesis hyps[2] = {{"ferris viewers day off", 22, -5120, true},
                              {"faris viewers day off", 21, -5310, true}};
    vix_result res[3];
    size_t n = 0;
    seen s = {0};
    vix_resolver_opts ro = {.db_path = db, .rerank = chp, .calibration = "off"};
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver with the blend: %s", diag.msg);
    vix_ranker rk = {0};
    for (int f = 0; f < VIX_RANKER_NFEAT; f++)
        rk.scale[f] = 1;
    rk.w[VIX_RK_BLEND] = 8;
    if (r) {
        vix_resolver_set_rank_observer(r, observe, &s);
        is_int(vix_resolve(r, "video", hyps, 2, 3, res, &n, NULL, &diag), ERD_OK, "resolve");
        ok(s.calls == 1 && s.rows == 6, "observer saw all six candidates once (%zu, %zu)",
           s.calls, s.rows);
        vix_resolver_rerank_id(r, rk.rerank_id, sizeof rk.rerank_id);
    }
    vix_resolver_close(r);
    r = NULL;
    snprintf(rk.provenance, sizeof rk.provenance, "test: the blend, sharpened");
    is_int(vix_ranker_save(&rk, rkp, &diag), ERD_OK, "ranker saved");

    snprintf(spec, sizeof spec, "%s,ranker=ranker.json", chp);
    ro.rerank = spec;
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "ranker found beside the channel: %s",
           diag.msg);
    if (r) {
        vix_result with[3];
        size_t m = 0;
        char id[VIX_RANKER_ID_MAX];
        is_int(vix_resolve(r, "video", hyps, 2, 3, with, &m, NULL, &diag), ERD_OK,
               "resolve with the ranker");
        ok(m == n && with[0].rowid == res[0].rowid && with[1].rowid == res[1].rowid,
           "a ranker that follows the blend keeps its order");
        ok(with[0].score > with[1].score && with[0].score <= 1, "scores are its probabilities");
        vix_resolver_rerank_id(r, id, sizeof id);
        ok(strstr(id, ",ranker=fnv1a64:") != NULL, "rerank id names the ranker: %s", id);
    }
    vix_resolver_close(r);
    r = NULL;

    snprintf(spec, sizeof spec, "%s,weight=0.5,ranker=ranker.json", chp);
    ok(vix_resolver_open(&ro, &r, &diag) == ERD_EMISMATCH && !r,
       "a ranker fitted under another rerank is refused");
    snprintf(spec, sizeof spec, "%s,ranker=missing.json", chp);
    ok(vix_resolver_open(&ro, &r, &diag) == ERD_ENOTFOUND && !r, "a missing ranker is refused");

    ok(tmpdir_remove(dir), "temp dir removed");
    pho_channel_destroy(ch);
}

int main(void)
{
    test_features();
    test_fit_and_file();
    test_resolver();
    return tap_done();
}
