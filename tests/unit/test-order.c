/* The order of the top results (index/vix_order.c): its file's checks, its
 * score and its stable ranking, and a resolver that reorders the rerank's
 * top results by it while their scores keep falling best first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_explain.h"
#include "index/vix_jsonfile.h"
#include "index/vix_order.h"
#include "index/vix_resolve.h"
#include "phonetics/pho_channel.h"
#include "tap.h"
#include "tmpdir.h"
#include "fixture.h"

static char dir[200];

/* An order file over one feature, with what it is fitted under. */
static int write_order(const char *path, const char *feature, double weight, int top,
                       int version, const char *rerank)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:s, s:s, s:[s], s:[f], s:[f], s:[f]}", "format",
                          "erd-order", "version", version, "top", top, "rerank", rerank,
                          "provenance", "test", "features", feature, "mean", 0.0, "scale", 1.0,
                          "weights", weight);
    uint64_t sum;
    int rc = o ? vix__json_save_summed(o, path, &sum, NULL) : ERD_ENOMEM;
    json_decref(o);
    return rc;
}

static void test_file(void)
{
    char p[300];
    erd_diag d = {0};
    vix_order o, untouched;
    memset(&untouched, 0x5a, sizeof untouched);
    snprintf(p, sizeof p, "%s/o.json", dir);
    is_int(write_order(p, "first", 2.0, 5, VIX_ORDER_VERSION, "r"), ERD_OK, "written");
    is_int(vix_order_load(p, &o, &d), ERD_OK, "loaded: %s", d.msg);
    ok(o.top == 5 && o.n_feat == 1 && o.feat[0] == VIX_CF_FIRST && !strcmp(o.rerank_id, "r"),
       "top, feature and rerank read");
    double x[VIX_CALIB_NFEAT] = {0};
    x[VIX_CF_FIRST] = 0.25;
    ok(fabs(vix_order_score(&o, x) - 0.5) < 1e-12, "score: the weighted standardised feature");

    o = untouched;
    write_order(p, "no_such_feature", 1.0, 5, VIX_ORDER_VERSION, "r");
    is_int(vix_order_load(p, &o, &d), ERD_EMISMATCH, "a feature erd does not compute: %s", d.msg);
    ok(memcmp(&o, &untouched, sizeof o) == 0, "nothing set on failure");
    write_order(p, "first", 1.0, 5, VIX_ORDER_VERSION + 1, "r");
    is_int(vix_order_load(p, &o, &d), ERD_EMISMATCH, "another version: %s", d.msg);
    write_order(p, "first", 1.0, 1, VIX_ORDER_VERSION, "r");
    is_int(vix_order_load(p, &o, &d), ERD_ECORRUPT, "a top of one: %s", d.msg);
    write_order(p, "first", 1.0, VIX_ORDER_TOP_MAX + 1, VIX_ORDER_VERSION, "r");
    is_int(vix_order_load(p, &o, &d), ERD_ECORRUPT, "a top past the most: %s", d.msg);

    /* a value edited by hand no longer matches the checksum */
    write_order(p, "first", 1.0, 5, VIX_ORDER_VERSION, "r");
    ok(tmpdir_edit(p, "\"top\": 5", 7, '6'), "top edited to 6");
    is_int(vix_order_load(p, &o, &d), ERD_ECORRUPT, "an edited file: %s", d.msg);
    snprintf(p, sizeof p, "%s/missing.json", dir);
    is_int(vix_order_load(p, &o, &d), ERD_ENOTFOUND, "a missing file");

    char shipped[600];
    const char *src = getenv("ERD_TEST_SRCDIR");
    snprintf(shipped, sizeof shipped, "%s/phonetics/models/order-v1.json", src ? src : ".");
    is_int(vix_order_load(shipped, &o, &d), ERD_OK, "the shipped order-v1.json loads: %s", d.msg);
}

static void test_rank(void)
{
    const double s[5] = {0.1, 0.7, 0.7, NAN, 0.9};
    size_t perm[5];
    vix_order_rank(s, 5, perm);
    ok(perm[0] == 4 && perm[1] == 1 && perm[2] == 2, "best first, ties in their old order");
    ok(perm[3] == 0 && perm[4] == 3, "a NaN score counts as the lowest");
}

/* The first-stage cosine of each result, from an explanation. */
static size_t resolve_firsts(vix_resolver *r, const vix_hypothesis *h, size_t nh, size_t k,
                             vix_result *res, double *first)
{
    vix_view *v = vix_resolver_acquire(r);
    vix_explain *ex = NULL;
    size_t n = 0;
    if (vix_resolve_explain(r, v, "video", h, nh, k, res, &n, NULL, NULL, &ex, NULL) != ERD_OK)
        n = 0;
    for (size_t i = 0; ex && i < n; i++)
        first[i] = ex->results[i].first;
    vix_explain_free(ex);
    vix_view_release(v);
    return n;
}

static void test_resolver(void)
{
    char db[256], chp[256], op[256], spec[700], id[VIX_CALIB_ID_MAX];
    erd_diag d = {0};
    vix_resolver *r = NULL;
    pho_channel *ch = fixture_flat_channel();
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(chp, sizeof chp, "%s/channel.txt", dir);
    snprintf(op, sizeof op, "%s/order.json", dir);
    is_int(ch ? pho_channel_save(ch, chp, "test", &d) : ERD_ENOMEM, ERD_OK, "channel saved");
    is_int(fixture_import(db, "video", fixture_six, &d), ERD_OK, "imported");
    is_int(fixture_build(db, "video", NULL, &d), ERD_OK, "built: %s", d.msg);
    vix_hypothesis h[2] = {{"fairest day off", 15, -5120, true},
                           {"ferris days off", 15, -5310, true}};
    vix_result plain[6], ordered[6];
    double f_plain[6], f_ordered[6];
    vix_resolver_opts ro = {.db_path = db, .rerank = chp, .calibration = "off"};
    is_int(vix_resolver_open(&ro, &r, &d), ERD_OK, "resolver without an order: %s", d.msg);
    size_t n = r ? resolve_firsts(r, h, 2, 6, plain, f_plain) : 0;
    if (r)
        vix_resolver_rerank_id(r, id, sizeof id);
    vix_resolver_close(r);
    r = NULL;
    ok(n == 6, "six results");

    /* an order by the first stage's cosine alone, over the top four */
    is_int(write_order(op, "first", 1.0, 4, VIX_ORDER_VERSION, id), ERD_OK, "order written");
    snprintf(spec, sizeof spec, "%s,order=order.json", chp);
    ro.rerank = spec;
    is_int(vix_resolver_open(&ro, &r, &d), ERD_OK, "order found beside the channel: %s", d.msg);
    size_t m = r ? resolve_firsts(r, h, 2, 6, ordered, f_ordered) : 0;
    ok(m == n, "as many results");
    int firsts_desc = 1, same_scores = 1, same_set = 1, tail_same = 1;
    for (size_t i = 0; i < m; i++) {
        same_scores &= ordered[i].score == plain[i].score;
        if (i < 4) {
            int found = 0;
            for (size_t j = 0; j < 4; j++)
                found |= ordered[i].rowid == plain[j].rowid;
            same_set &= found;
            firsts_desc &= i == 0 || f_ordered[i] <= f_ordered[i - 1];
        } else {
            tail_same &= ordered[i].rowid == plain[i].rowid;
        }
    }
    ok(same_set && firsts_desc, "the top four, now by their first-stage cosine");
    ok(tail_same, "results past the top four where they were");
    ok(same_scores, "the scores stay in their places: best first");
    char id2[VIX_CALIB_ID_MAX] = "";
    if (r)
        vix_resolver_rerank_id(r, id2, sizeof id2);
    ok(strstr(id2, ",order=fnv1a64:") != NULL, "rerank id names the order: %s", id2);
    vix_resolver_close(r);
    r = NULL;

    /* the opposite weight: the same four, the other way round */
    is_int(write_order(op, "first", -1.0, 4, VIX_ORDER_VERSION, id), ERD_OK, "reversed order");
    is_int(vix_resolver_open(&ro, &r, &d), ERD_OK, "reopened: %s", d.msg);
    m = r ? resolve_firsts(r, h, 2, 6, ordered, f_ordered) : 0;
    int asc = m >= 4, differs = 0;
    for (size_t i = 1; i < 4 && i < m; i++)
        asc &= f_ordered[i] >= f_ordered[i - 1];
    for (size_t i = 0; i < 4 && i < m; i++)
        differs |= f_ordered[i] != f_plain[i];
    ok(asc, "the top four by ascending first-stage cosine");
    ok(differs || f_plain[0] == f_plain[3], "the model, not the rerank, decided");
    vix_resolver_close(r);
    r = NULL;

    snprintf(spec, sizeof spec, "%s,weight=0.5,order=order.json", chp);
    ok(vix_resolver_open(&ro, &r, &d) == ERD_EMISMATCH && !r,
       "an order fitted under another rerank is refused");
    snprintf(spec, sizeof spec, "%s,order=missing.json", chp);
    ok(vix_resolver_open(&ro, &r, &d) == ERD_ENOTFOUND && !r, "a missing order is refused");
    pho_channel_destroy(ch);
}

int main(void)
{
    if (!tmpdir_make(dir, sizeof dir, "order")) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    test_file();
    test_rank();
    test_resolver();
    ok(tmpdir_remove(dir), "temp dir removed");
    return tap_done();
}
