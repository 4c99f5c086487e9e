/* Second-stage rerank: spec parsing, alignment scores under a learned
 * channel, reordering of candidates, and the resolver with rerank on/off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_explain.h"
#include "index/vix_index.h"
#include "index/vix_phrase.h"
#include "index/vix_rerank.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "fixture.h"
#include "phones.h"
#include "tap.h"
#include "tmpdir.h"

/* Phone ids (0 between words) as the rerank stores them: one byte each,
 * the word-start bit set on the first phone of a word. */
static size_t pack(const unsigned *ids, size_t n, uint8_t *out)
{
    pho_token t[64];
    size_t m = phones_tokens(ids, n < 64 ? n : 64, t);
    for (size_t i = 0; i < m; i++)
        out[i] = (uint8_t)(t[i].phone | (t[i].word_start ? VIX_RR_WORD_START : 0));
    return m;
}

/* A channel that has seen phone 10 heard as 11 most of the time. */
static pho_channel *learned(void)
{
    pho_channel_trainer *tr;
    pho_channel *ch = NULL;
    if (pho_channel_trainer_create(&tr) < 0)
        return NULL;
    for (unsigned k = 0; k < 300; k++) {
        pho_token r[4], h[4];
        unsigned ids[] = {1 + k % 9, 10, 30 + k % 7, 40};
        for (int i = 0; i < 4; i++) {
            r[i] = (pho_token){.phone = (uint8_t)ids[i], .word_start = i == 0 || i == 2};
            h[i] = r[i];
        }
        if (k % 4)
            h[1].phone = 11;
        pho_channel_trainer_add(tr, r, 4, h, 4);
    }
    pho_channel_train(tr, NULL, &ch, NULL, NULL);
    pho_channel_trainer_destroy(tr);
    return ch;
}

static void test_spec(void)
{
    char path[64];
    vix_rerank_opts o;
    int on = -1;
    is_int(vix_rerank_spec_parse("off", path, sizeof path, &o, &on, NULL), ERD_OK, "off parses");
    is_int(on, 0, "off disables");
    is_int(vix_rerank_spec_parse("ch.txt,weight=0.3,mode=global,candidates=20", path, sizeof path,
                                 &o, &on, NULL),
           ERD_OK, "full spec parses");
    ok(on == 1 && !strcmp(path, "ch.txt") && o.weight == 0.3 && o.mode == VIX_RR_GLOBAL &&
           o.candidates == 20,
       "spec values taken");
    ok(o.budget == VIX_RR_BUDGET, "budget defaults to VIX_RR_BUDGET");
    is_int(vix_rerank_spec_parse("ch.txt,budget=0", path, sizeof path, &o, &on, NULL), ERD_OK,
           "budget=0 parses");
    ok(o.budget == 0, "budget=0: no limit");
    ok(vix_rerank_spec_parse("ch.txt,budget=-5", path, sizeof path, &o, &on, NULL) == ERD_ECONFIG,
       "negative budget refused");
    on = -1;
    ok(vix_rerank_spec_parse("ch.txt,weight=2", path, sizeof path, &o, &on, NULL) == ERD_ECONFIG &&
           on == -1,
       "weight above 1 refused, nothing set");
    ok(vix_rerank_spec_parse("ch.txt,colour=red", path, sizeof path, &o, &on, NULL) == ERD_ECONFIG,
       "unknown option refused");
    ok(vix_rerank_spec_parse("ch.txt,mode=fuzzy", path, sizeof path, &o, &on, NULL) == ERD_ECONFIG,
       "unknown mode refused");
    ok(vix_rerank_spec_parse("a-very-long-channel-file-name-beyond-the-buffer.txt", path, 8, &o,
                             &on, NULL) == ERD_ECONFIG,
       "path longer than the buffer refused");
}

static void test_scores(const pho_channel *ch)
{
    vix_rerank *rr = NULL;
    vix_rerank_opts o;
    vix_rerank_opts_init(&o);
    is_int(vix_rerank_create(ch, &o, &rr, NULL), ERD_OK, "rerank created");
    if (!rr)
        return;
    uint8_t hyp[8], right[8], wrong[8], longp[16], part[8];
    size_t nh = pack((unsigned[]){3, 11, 0, 32, 40}, 5, hyp);
    size_t nr = pack((unsigned[]){3, 10, 0, 32, 40}, 5, right);
    size_t nw = pack((unsigned[]){3, 25, 0, 32, 41}, 5, wrong);
    ok(fabs(vix_rerank_pair(rr, hyp, nh, hyp, nh) - 1.0) < 1e-6, "exact match scores 1");
    double sr = vix_rerank_pair(rr, hyp, nh, right, nr), sw = vix_rerank_pair(rr, hyp, nh, wrong, nw);
    ok(sr > sw, "the learned confusion 10->11 scores above two unlearned ones (%g > %g)", sr, sw);
    ok(sr > 0.5, "one likely confusion costs little (%g)", sr);

    /* The first stage put the wrong entity first; rerank promotes the right one. */
    vix_rerank_phrase pr = {right, (uint16_t)nr, 0}, pw = {wrong, (uint16_t)nw, 0};
    vix_rerank_hyp hy = {hyp, nh, 1.0};
    vix_rerank_cand c[2] = {{&pw, 1, 0.80, 0, 0}, {&pr, 1, 0.74, 0, 0}};
    vix_rerank_score(rr, &hy, 1, c, 2);
    ok(c[1].score > c[0].score, "rerank: right candidate (%g) above the first stage's (%g)",
       c[1].score, c[0].score);
    ok(c[1].second > c[0].second, "alignment score decides it");

    /* A hypothesis that is the middle of a long title. */
    size_t nl = pack((unsigned[]){1, 2, 3, 0, 30, 31, 32, 0, 5, 6, 7, 8}, 12, longp);
    size_t np = pack((unsigned[]){30, 31, 32}, 3, part);
    double local = vix_rerank_pair(rr, part, np, longp, nl);
    vix_rerank_destroy(rr);
    rr = NULL;
    o.mode = VIX_RR_GLOBAL;
    vix_rerank_create(ch, &o, &rr, NULL);
    double global = vix_rerank_pair(rr, part, np, longp, nl);
    ok(local > global, "local alignment forgives an unspoken head and tail (%g > %g)", local,
       global);
    vix_rerank_destroy(rr);

    /* Weight 0: the first stage's scores and order stand. */
    o.weight = 0;
    vix_rerank_create(ch, &o, &rr, NULL);
    vix_rerank_cand d[2] = {{&pw, 1, 0.80, 0, 0}, {&pr, 1, 0.74, 0, 0}};
    vix_rerank_score(rr, &hy, 1, d, 2);
    ok(d[0].score == 0.80 && d[1].score == 0.74, "weight 0 leaves scores and order unchanged");
    vix_rerank_destroy(rr);
    vix_rerank_destroy(NULL);
}

static void test_resolver(const pho_channel *ch_in)
{
    char dir[200], db[256], chp[256], spec[300];
    pho_channel *ch = (pho_channel *)ch_in;
    erd_diag diag = {0};
    ok(tmpdir_make(dir, sizeof dir, "rerank"), "temp dir");
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(chp, sizeof chp, "%s/channel.txt", dir);
    is_int(pho_channel_save(ch, chp, "test", &diag), ERD_OK, "channel saved");

    is_int(fixture_import(db, "video", fixture_six, &diag), ERD_OK, "catalog imported: %s",
           diag.msg);
    vix_build_result br;
    is_int(fixture_build(db, "video", &br, &diag), ERD_OK, "catalog built: %s", diag.msg);

    vix_hypothesis hyps[2] = {{"ferris viewers day off", 22, -5120, true},
                              {"faris viewers day off", 21, -5310, true}};
    vix_result off_res[6], on_res[6];
    size_t n_off = 0, n_on = 0;
    vix_timing tm;
    vix_resolver *r = NULL;
    vix_resolver_opts ro = {.db_path = db, .rerank = "off"};
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver, rerank off");
    if (r) {
        is_int(vix_resolve(r, "video", hyps, 2, 6, off_res, &n_off, &tm, &diag), ERD_OK,
               "resolve without rerank");
        ok(tm.rerank_ns == 0, "rerank off: no rerank time");
        int sorted = 1;
        for (size_t i = 1; i < n_off; i++)
            sorted &= off_res[i - 1].score >= off_res[i].score;
        ok(sorted && n_off == 6, "first stage alone: 6 results, sorted by its score");
    }
    vix_resolver_close(r);
    r = NULL;

    snprintf(spec, sizeof spec, "%s,weight=0", chp);
    ro.rerank = spec;
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver, rerank weight 0: %s", diag.msg);
    if (r) {
        vix_resolve(r, "video", hyps, 2, 6, on_res, &n_on, &tm, &diag);
        int same = n_on == n_off;
        for (size_t i = 0; same && i < n_on; i++)
            same = on_res[i].rowid == off_res[i].rowid;
        ok(same, "rerank with weight 0 keeps the first stage's order");
    }
    vix_resolver_close(r);
    r = NULL;

    ro.rerank = chp;
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver, rerank on: %s", diag.msg);
    if (r) {
        is_int(vix_resolve(r, "video", hyps, 2, 3, on_res, &n_on, &tm, &diag), ERD_OK,
               "resolve with rerank");
        ok(n_on == 3 && !strcmp(on_res[0].ext_id, "c"), "Ferris Bueller first (got %s)",
           n_on ? on_res[0].ext_id : "nothing");
        ok(tm.rerank_ns > 0, "rerank timed");
        vix_hypothesis part = {"mockingjay", 10, 0, false};
        vix_resolve(r, "video", &part, 1, 1, on_res, &n_on, NULL, &diag);
        ok(n_on == 1 && !strcmp(on_res[0].ext_id, "b"), "an alias is among the reranked phrases");
    }
    vix_resolver_close(r);
    r = NULL;

    snprintf(spec, sizeof spec, "%s/missing.txt", dir);
    ro.rerank = spec;
    ok(vix_resolver_open(&ro, &r, &diag) == ERD_ENOTFOUND && r == NULL,
       "missing channel file: resolver not opened");
    ok(tmpdir_remove(dir), "cleanup");
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The batched scoring (SIMD lanes, pairs sorted by length, twin
 * hypotheses copied) must give each candidate exactly what aligning its
 * phrases one pair at a time gives, in both modes. */
static void test_batched_equals_pairwise(const pho_channel *ch)
{
    enum { N_CANDS = 37, MAX_PHRASES = 4, N_HYPS = 4 };
    static uint8_t store[N_CANDS * MAX_PHRASES][VIX_RR_TOKENS_MAX + 8];
    static vix_rerank_phrase phrases[N_CANDS][MAX_PHRASES];
    uint8_t hyp_tokens[N_HYPS][24];
    vix_rerank_hyp hyps[N_HYPS];
    vix_rerank_cand cands[N_CANDS];
    double by_hyp[N_HYPS * N_CANDS];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
#define NEXT() xorshift(&x)
    for (size_t h = 0; h < N_HYPS; h++) {
        size_t n = h == 2 ? hyps[1].n : 3 + NEXT() % 18;
        for (size_t i = 0; i < n; i++)
            hyp_tokens[h][i] = h == 2 ? hyp_tokens[1][i] /* a twin of hypothesis 1 */
                                      : (uint8_t)(1 + NEXT() % (PHO_N_PHONES - 1)) |
                                            (i == 0 || NEXT() % 4 == 0 ? VIX_RR_WORD_START : 0);
        hyps[h] = (vix_rerank_hyp){hyp_tokens[h], n, 1.0 / (double)(h + 1)};
    }
    size_t used = 0;
    for (size_t c = 0; c < N_CANDS; c++) {
        size_t np = c % 7 == 3 ? 0 : 1 + NEXT() % MAX_PHRASES; /* some without phrases */
        for (size_t p = 0; p < np; p++) {
            /* lengths from 0 to past the alignment's cut */
            size_t n = p == 0 && c % 11 == 5 ? 0 : NEXT() % (VIX_RR_TOKENS_MAX + 6);
            for (size_t i = 0; i < n; i++)
                store[used][i] = (uint8_t)(1 + NEXT() % (PHO_N_PHONES - 1)) |
                                 (i == 0 || NEXT() % 5 == 0 ? VIX_RR_WORD_START : 0);
            phrases[c][p] = (vix_rerank_phrase){store[used++], (uint16_t)n, (uint8_t)(NEXT() % 3 == 0)};
        }
        cands[c] = (vix_rerank_cand){phrases[c], np, (double)(NEXT() % 1000) / 1000.0, 0, 0};
    }
#undef NEXT
    static const char *const levels[] = {"base", "avx2", "avx512", "auto"};
    for (int run = 0; run < 8; run++) {
        int mode = run % 2 ? VIX_RR_LOCAL : VIX_RR_GLOBAL;
        vix_simd_limit(levels[run / 2], NULL);
        vix_rerank_opts o;
        vix_rerank_opts_init(&o);
        o.mode = mode;
        vix_rerank *rr = NULL;
        if (vix_rerank_create(ch, &o, &rr, NULL) != ERD_OK)
            break;
        vix_rerank_score_each(rr, hyps, N_HYPS, cands, N_CANDS, by_hyp);
        size_t bad_pair = 0, bad_cand = 0;
        double wsum = 0;
        for (size_t h = 0; h < N_HYPS; h++)
            wsum += hyps[h].weight;
        for (size_t c = 0; c < N_CANDS; c++) {
            double acc = 0;
            for (size_t h = 0; h < N_HYPS; h++) {
                double best = 0;
                for (size_t p = 0; p < cands[c].n_phrases; p++) {
                    const vix_rerank_phrase *ph = &cands[c].phrases[p];
                    double s = vix_rerank_pair(rr, hyps[h].tokens, hyps[h].n, ph->tokens, ph->n);
                    if (ph->derived)
                        s *= VIX_DERIVED_SCALE;
                    best = s > best ? s : best;
                }
                bad_pair += by_hyp[h * N_CANDS + c] != best;
                if (cands[c].n_phrases)
                    acc += hyps[h].weight * best;
            }
            double second = acc / wsum;
            bad_cand += cands[c].second != second ||
                        cands[c].score != (1 - o.weight) * cands[c].first + o.weight * second;
        }
        ok(bad_pair == 0 && bad_cand == 0,
           "%s mode, simd %s (%s): batched scores equal pair-by-pair ones bit for bit (%zu "
           "pairs, %zu candidates differ)",
           mode == VIX_RR_LOCAL ? "local" : "global", levels[run / 2], vix_simd_name(), bad_pair,
           bad_cand);
        vix_rerank_destroy(rr);
    }
}

/* A rerank with the default options in local (mode 1) or global mode,
 * its options in *ret_opts; NULL when it cannot be made. */
static vix_rerank *mode_rerank(const pho_channel *ch, int mode, vix_rerank_opts *ret_opts)
{
    vix_rerank *rr = NULL;
    vix_rerank_opts_init(ret_opts);
    ret_opts->mode = mode ? VIX_RR_LOCAL : VIX_RR_GLOBAL;
    return vix_rerank_create(ch, ret_opts, &rr, NULL) == ERD_OK ? rr : NULL;
}

/* count random phones, the first starting a word */
static void random_phones(uint64_t *x, uint8_t *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = (uint8_t)(1 + xorshift(x) % (PHO_N_PHONES - 1)) |
                 (i == 0 || xorshift(x) % 4 == 0 ? VIX_RR_WORD_START : 0);
}

enum { SH_HYPS = 11, SH_CANDS = 53, SH_PHRASES = 3, SH_LONG = VIX_RR_TOKENS_MAX + 6 };

/* Hypotheses that share heads of phones in every way the batched scoring
 * reuses columns: a shared head with another tail, a prefix of an earlier
 * one (no column left to compute), a chain (a child's child), one past the
 * alignment's cut, a twin, lengths 0 and 1, and a first phone that differs
 * only in its word-start bit. */
static void shared_hyps(uint64_t *x, uint8_t (*tok)[SH_LONG], vix_rerank_hyp *hyps)
{
    static const struct { size_t from, head, n; } shape[SH_HYPS] = {
        {0, 0, 30},  /* 0: alone */
        {0, 12, 20}, /* 1: 0's first 12, then its own */
        {0, 7, 7},   /* 2: a prefix of 0 */
        {1, 20, 26}, /* 3: 1 extended: a child of a child */
        {0, 0, 0},   /* 4: empty */
        {0, 1, 1},   /* 5: 0's first phone alone */
        {1, 20, 20}, /* 6: a twin of 1 */
        {0, 30, SH_LONG - 2}, /* 7: 0 extended past the cut */
        {7, SH_LONG - 4, SH_LONG}, /* 8: shares more than the cut with 7 */
        {0, 0, 9},   /* 9: 0's phones, its first without the word-start bit */
        {9, 4, 15},  /* 10: a child of 9 */
    };
    for (size_t h = 0; h < SH_HYPS; h++) {
        random_phones(x, tok[h], shape[h].n);
        memcpy(tok[h], tok[shape[h].from], shape[h].head);
        hyps[h] = (vix_rerank_hyp){tok[h], shape[h].n, 1.0 / (double)(h + 1)};
    }
    memcpy(tok[9], tok[0], 9);
    tok[9][0] &= (uint8_t)~VIX_RR_WORD_START;
}

/* Candidates with 0 to SH_PHRASES phrases of lengths 0 to past the cut,
 * some of them copies of a hypothesis (exact matches score 1). */
static void shared_cands(uint64_t *x, uint8_t (*store)[SH_LONG],
                         vix_rerank_phrase (*phrases)[SH_PHRASES], const vix_rerank_hyp *hyps,
                         vix_rerank_cand *cands)
{
    size_t used = 0;
    for (size_t c = 0; c < SH_CANDS; c++) {
        size_t np = c % 9 == 4 ? 0 : 1 + xorshift(x) % SH_PHRASES;
        for (size_t p = 0; p < np; p++) {
            size_t n = xorshift(x) % SH_LONG;
            random_phones(x, store[used], n);
            if (c % 5 == 0 && p == 0) {
                n = hyps[c % SH_HYPS].n;
                memcpy(store[used], hyps[c % SH_HYPS].tokens, n);
            }
            phrases[c][p] = (vix_rerank_phrase){store[used++], (uint16_t)n, (uint8_t)(c % 3 == 1)};
        }
        cands[c] = (vix_rerank_cand){phrases[c], np, (double)(xorshift(x) % 1000) / 1000.0, 0, 0};
    }
}

/* Pairs, picks and candidates where the batched scoring differs from
 * aligning each pair alone (the first phrase of the best score is the
 * pick, as the batched scoring promises). */
static size_t shared_diffs(const vix_rerank *rr, const vix_rerank_hyp *hyps,
                           const vix_rerank_cand *cands, const double *by_hyp,
                           const uint16_t *picks)
{
    size_t bad = 0;
    for (size_t c = 0; c < SH_CANDS; c++) {
        double acc = 0, wsum = 0;
        for (size_t h = 0; h < SH_HYPS; h++) {
            double best = 0;
            uint16_t pick = VIX_RR_NO_PHRASE;
            for (size_t p = 0; p < cands[c].n_phrases; p++) {
                const vix_rerank_phrase *ph = &cands[c].phrases[p];
                double s = vix_rerank_pair(rr, hyps[h].tokens, hyps[h].n, ph->tokens, ph->n);
                s *= ph->derived ? VIX_DERIVED_SCALE : 1;
                if (s > best) {
                    best = s;
                    pick = (uint16_t)p;
                }
            }
            bad += by_hyp[h * SH_CANDS + c] != best || picks[h * SH_CANDS + c] != pick;
            acc += cands[c].n_phrases ? hyps[h].weight * best : 0;
            wsum += hyps[h].weight;
        }
        bad += cands[c].second != acc / wsum;
    }
    return bad;
}

/* Hypotheses that start from another's columns score exactly as alone, in
 * every lane, at every instruction set and in both modes. */
static void test_shared_heads_equal_pairwise(const pho_channel *ch)
{
    static uint8_t tok[SH_HYPS][SH_LONG], store[SH_CANDS * SH_PHRASES][SH_LONG];
    static vix_rerank_phrase phrases[SH_CANDS][SH_PHRASES];
    static double by_hyp[SH_HYPS * SH_CANDS];
    static uint16_t picks[SH_HYPS * SH_CANDS];
    vix_rerank_hyp hyps[SH_HYPS];
    vix_rerank_cand cands[SH_CANDS];
    uint64_t x = 0x2545f4914f6cdd1dULL;
    shared_hyps(&x, tok, hyps);
    shared_cands(&x, store, phrases, hyps, cands);
    static const char *const levels[] = {"base", "avx2", "avx512", "auto"};
    for (int run = 0; run < 8; run++) {
        vix_rerank_opts o;
        vix_rerank_opts_init(&o);
        o.mode = run % 2 ? VIX_RR_LOCAL : VIX_RR_GLOBAL;
        vix_simd_limit(levels[run / 2], NULL);
        vix_rerank *rr = NULL;
        if (vix_rerank_create(ch, &o, &rr, NULL) != ERD_OK)
            break;
        vix_rerank_score_best(rr, hyps, SH_HYPS, cands, SH_CANDS, by_hyp, picks);
        size_t bad = shared_diffs(rr, hyps, cands, by_hyp, picks);
        ok(bad == 0, "%s mode, simd %s (%s): shared heads score as alone (%zu differ)",
           o.mode == VIX_RR_LOCAL ? "local" : "global", levels[run / 2], vix_simd_name(), bad);
        vix_rerank_destroy(rr);
    }
}

/* The moves of vix_rerank_align written out plainly from the channel's
 * costs: the whole table, each cell taking the diagonal unless up is
 * strictly cheaper, then left unless strictly cheaper still; the path
 * walked back from the cheapest end.  Writes the ops' kinds and phones in
 * order, returns their number; *ret_extra as vix_rerank_align's. */
static size_t plain_align(const pho_channel_costs *k, const vix_rerank_opts *o, const uint8_t *h,
                          size_t nh, const uint8_t *r, size_t nr, vix_rerank_op *ops,
                          float *ret_extra)
{
    enum { W = 40, H = VIX_RR_TOKENS_MAX + 1 };
    static float t[H][W];
    static uint8_t mv[H][W]; /* 0 diagonal, 1 up, 2 left */
    const float skip = o->mode == VIX_RR_LOCAL ? (float)o->skip : 1e6f;
    float self = 0, lead = 0, best = 1e30f;
    nr = nr > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : nr;
    t[0][0] = 0;
    for (size_t j = 1; j <= nh; j++) {
        unsigned hp = h[j - 1] & 0x7f, hw = h[j - 1] >> 7;
        t[0][j] = t[0][j - 1] + (k->ins[hp] + k->boundary[0][hw]);
        mv[0][j] = 2;
        self += k->sub[hp][hp] + k->boundary[hw][hw];
    }
    size_t end = 0;
    for (size_t i = 1; i <= nr; i++) {
        unsigned rp = r[i - 1] & 0x7f, rw = r[i - 1] >> 7;
        float del = k->sub[rp][0];
        lead += del < skip ? del : skip;
        t[i][0] = lead;
        mv[i][0] = 1;
        for (size_t j = 1; j <= nh; j++) {
            unsigned hp = h[j - 1] & 0x7f, hw = h[j - 1] >> 7;
            float c[3] = {t[i - 1][j - 1] + (k->sub[rp][hp] + k->boundary[rw][hw]),
                          t[i - 1][j] + del, t[i][j - 1] + (k->ins[hp] + k->boundary[0][hw])};
            mv[i][j] = c[1] < c[0];
            mv[i][j] = c[2] < c[mv[i][j]] ? 2 : mv[i][j];
            t[i][j] = c[mv[i][j]];
        }
        float tail = t[i][nh] + (float)(nr - i) * skip;
        if (o->mode == VIX_RR_LOCAL && tail < best) {
            best = tail;
            end = i;
        }
    }
    if (nr == 0 || t[nr][nh] < best) {
        best = t[nr][nh];
        end = nr;
    }
    size_t n = 0;
    for (size_t i = nr; i > end; i--)
        ops[n++] = (vix_rerank_op){VIX_RR_OP_DEL, 0, r[i - 1], 0};
    for (size_t i = end, j = nh; i || j;) {
        int m = mv[i][j];
        int match = m == 0 && (h[j - 1] & 0x7f) == (r[i - 1] & 0x7f);
        ops[n++] = (vix_rerank_op){m == 1 ? VIX_RR_OP_DEL : m == 2 ? VIX_RR_OP_INS
                                                      : match ? VIX_RR_OP_MATCH : VIX_RR_OP_SUB,
                                   m == 1 ? 0 : h[j - 1], m == 2 ? 0 : r[i - 1], 0};
        i -= m != 2;
        j -= m != 1;
    }
    for (size_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
        vix_rerank_op x = ops[a];
        ops[a] = ops[b];
        ops[b] = x;
    }
    *ret_extra = best - self;
    return n;
}

/* vix_rerank_align takes exactly the plain table's path, ties included
 * (few phones, so equal costs are common), and its extra cost bit for
 * bit; lengths 0, 1 and past the cut. */
static void test_align_equals_plain(const pho_channel *ch)
{
    pho_channel_costs k;
    pho_channel_costs_get(ch, &k);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int mode = 0; mode < 2; mode++) {
        vix_rerank_opts o;
        vix_rerank *rr = mode_rerank(ch, mode, &o);
        if (!rr)
            return;
        size_t bad = 0;
        for (int t = 0; t < 400; t++) {
            uint8_t hyp[39], ref[VIX_RR_TOKENS_MAX + 4];
            size_t nh = t < 3 ? (size_t)t : xorshift(&x) % 39;
            size_t nr = t % 7 == 0 ? (size_t)t % 2 : xorshift(&x) % (VIX_RR_TOKENS_MAX + 4);
            for (size_t i = 0; i < nh; i++)
                hyp[i] = (uint8_t)(1 + xorshift(&x) % 6) | (xorshift(&x) % 4 ? 0 : VIX_RR_WORD_START);
            for (size_t i = 0; i < nr; i++)
                ref[i] = (uint8_t)(1 + xorshift(&x) % 6) | (xorshift(&x) % 4 ? 0 : VIX_RR_WORD_START);
            vix_rerank_op got[39 + VIX_RR_TOKENS_MAX + 4], want[39 + VIX_RR_TOKENS_MAX + 4];
            size_t n_got = 0;
            float e_got = -1, e_want;
            size_t n_want = plain_align(&k, &o, hyp, nh, ref, nr, want, &e_want);
            if (vix_rerank_align(rr, hyp, nh, ref, nr, got, &n_got, &e_got) != ERD_OK)
                break;
            int same = n_got == n_want && memcmp(&e_got, &e_want, sizeof e_got) == 0;
            for (size_t i = 0; same && i < n_got; i++)
                same = got[i].op == want[i].op && got[i].hyp == want[i].hyp &&
                       got[i].ref == want[i].ref;
            bad += !same;
        }
        ok(bad == 0, "%s mode: alignments take the plain table's path and cost (%zu differ)",
           mode ? "local" : "global", bad);
        vix_rerank_destroy(rr);
    }
}

/* The explained alignment is the scored one: same extra cost (so the same
 * pair score, bit for bit), steps whose costs add up to it, every phone
 * of both sides accounted for once, in order. */
static void test_align(const pho_channel *ch)
{
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (int mode = 0; mode < 2; mode++) {
        vix_rerank_opts o;
        vix_rerank *rr = mode_rerank(ch, mode, &o);
        if (!rr)
            return;
        size_t bad_score = 0, bad_sum = 0, bad_cover = 0;
        for (int t = 0; t < 300; t++) {
            uint8_t hyp[40], ref[VIX_RR_TOKENS_MAX + 4];
            size_t nh = xorshift(&x) % 30, nr = t == 7 ? 0 : xorshift(&x) % (VIX_RR_TOKENS_MAX + 4);
            for (size_t i = 0; i < nh; i++)
                hyp[i] = (uint8_t)(1 + xorshift(&x) % 12) | (xorshift(&x) % 4 ? 0 : VIX_RR_WORD_START);
            for (size_t i = 0; i < nr; i++)
                ref[i] = i < nh && xorshift(&x) % 3 ? hyp[i]
                                                     : (uint8_t)(1 + xorshift(&x) % 12) |
                                                           (xorshift(&x) % 4 ? 0 : VIX_RR_WORD_START);
            vix_rerank_op ops[40 + VIX_RR_TOKENS_MAX + 4];
            size_t n_ops = 0;
            float extra = -1;
            if (vix_rerank_align(rr, hyp, nh, ref, nr, ops, &n_ops, &extra) != ERD_OK)
                break;
            bad_score += vix_rerank_similarity(rr, extra, nh) != vix_rerank_pair(rr, hyp, nh, ref, nr);
            double sum = 0;
            size_t hi = 0, ri = 0;
            int order_ok = 1;
            for (size_t i = 0; i < n_ops; i++) {
                sum += ops[i].cost;
                if (ops[i].op != VIX_RR_OP_DEL)
                    order_ok &= hi < nh && ops[i].hyp == hyp[hi++];
                if (ops[i].op != VIX_RR_OP_INS)
                    order_ok &= ri < nr && ops[i].ref == ref[ri++];
                if (ops[i].op == VIX_RR_OP_MATCH)
                    order_ok &= (ops[i].hyp & 0x7f) == (ops[i].ref & 0x7f);
            }
            size_t nr_cut = nr > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : nr;
            bad_sum += !(fabs(sum - extra) <= 1e-3 * (1 + fabs(extra)));
            bad_cover += !order_ok || hi != nh || ri != nr_cut;
        }
        ok(bad_score == 0 && bad_sum == 0 && bad_cover == 0,
           "%s mode: alignments score as vix_rerank_pair (%zu differ), their step costs sum to "
           "the extra cost (%zu differ), they consume both sides in order (%zu do not)",
           mode ? "local" : "global", bad_score, bad_sum, bad_cover);
        vix_rerank_destroy(rr);
    }
    vix_rerank *rr = NULL;
    if (vix_rerank_create(ch, NULL, &rr, NULL) != ERD_OK)
        return;
    uint8_t h[4], r[4];
    unsigned said[] = {1, 10, 0, 30, 40}, heard[] = {1, 11, 0, 30, 40};
    size_t nh = pack(heard, 5, h), nr = pack(said, 5, r), n_ops = 0;
    vix_rerank_op ops[8];
    float extra;
    vix_rerank_align(rr, h, nh, r, nr, ops, &n_ops, &extra);
    ok(n_ops == 4 && ops[0].op == VIX_RR_OP_MATCH && ops[1].op == VIX_RR_OP_SUB &&
           ops[2].op == VIX_RR_OP_MATCH && ops[3].op == VIX_RR_OP_MATCH && ops[0].cost == 0,
       "the channel's usual confusion aligns as one substitution between matches");
    vix_rerank_destroy(rr);
}

/* The open-set counts of one result: a name asked for word by word, a
 * sibling that differs in its last word, told apart from another sibling
 * by that word alone. */
static void test_explain_fit(const pho_channel *ch)
{
    vix_rerank *rr = NULL;
    vix_explain_align *work = malloc(sizeof *work);
    if (!work || vix_rerank_create(ch, NULL, &rr, NULL) != ERD_OK) {
        ok(0, "rerank for the open-set counts");
        free(work);
        return;
    }
    uint8_t h[8], said[8], sib[8], other[8];
    unsigned heard_ids[] = {1, 10, 0, 30, 40}, said_ids[] = {1, 10, 0, 30, 40},
             sib_ids[] = {1, 10, 0, 20, 21}, other_ids[] = {1, 10, 0, 25, 26};
    vix_rerank_hyp hyp = {.tokens = h, .n = pack(heard_ids, 5, h), .weight = 1};
    vix_rerank_phrase name = {.tokens = said, .n = (uint16_t)pack(said_ids, 5, said)},
                      sibling = {.tokens = sib, .n = (uint16_t)pack(sib_ids, 5, sib)},
                      another = {.tokens = other, .n = (uint16_t)pack(other_ids, 5, other)};
    vix_calib_fitness right, missing, alone;
    vix_explain_fit(rr, &hyp, 1, &name, 1, NULL, 0, &sibling, work, &right, NULL);
    vix_explain_fit(rr, &hyp, 1, &sibling, 1, NULL, 0, &another, work, &missing, NULL);
    vix_explain_fit(rr, &hyp, 1, &sibling, 1, NULL, 0, NULL, work, &alone, NULL);
    ok(right.distinct_hit == 1 && right.word_hit_min == 1 && right.steady_miss == 0,
       "the name said: every phone of the word its sibling lacks matched");
    ok(missing.distinct_hit == 0 && missing.word_hit_min == 0 && missing.steady_miss == 1,
       "a sibling of it: none of the word that tells it from another sibling (%.2f)",
       missing.distinct_hit);
    ok(fabs(alone.distinct_hit - 0.5) < 1e-12,
       "no rival: the share of the whole name matched (%.2f)", alone.distinct_hit);

    /* the name said whole, heard against an entity that has it only as the
     * shortened form of a longer title */
    uint8_t longer[12];
    unsigned longer_ids[] = {1, 10, 0, 30, 40, 0, 5, 6, 7};
    vix_rerank_phrase titles[] = {
        {.tokens = longer, .n = (uint16_t)pack(longer_ids, 9, longer)},
        {.tokens = said, .n = name.n, .derived = 1}};
    vix_calib_fitness shortened;
    vix_explain_fit(rr, &hyp, 1, titles, 2, NULL, 0, NULL, work, &shortened, NULL);
    ok(right.short_form == 0 && right.whole_share == 1,
       "a name as written: no shortened form, all of it (%.2f, %.2f)", right.short_form,
       right.whole_share);
    ok(shortened.short_form == 1 &&
           fabs(shortened.whole_share - (double)name.n / (double)titles[0].n) < 1e-12 &&
           shortened.whole_share < 1,
       "a longer title's shortened form: short_form 1, whole_share its share in phones "
       "(%.2f = %u / %u)", shortened.whole_share, (unsigned)name.n, (unsigned)titles[0].n);
    vix_rerank_destroy(rr);
    free(work);
}

int main(void)
{
    test_spec();
    pho_channel *ch = learned();
    ok(ch != NULL, "channel learned");
    if (ch) {
        test_scores(ch);
        test_batched_equals_pairwise(ch);
        test_shared_heads_equal_pairwise(ch);
        test_align(ch);
        test_align_equals_plain(ch);
        test_explain_fit(ch);
        test_resolver(ch);
    }
    pho_channel_destroy(ch);
    return tap_done();
}
