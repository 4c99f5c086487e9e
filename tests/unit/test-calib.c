/* Calibrated scores: the logistic fit, the per-rank probabilities, the
 * calibration file and a resolver that applies one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_calib.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "fixture.h"
#include "tap.h"
#include "tmpdir.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void test_fit(void)
{
    const size_t n = 40000;
    const double want[VIX_CALIB_NFEAT + 1] = {-1.0, 3.0, -2.0, 0, 1.5, 0.5, 0, 0, 0};
    double *x = calloc(n * VIX_CALIB_NFEAT, sizeof *x);
    uint8_t *y = calloc(n, 1);
    vix_calib_model m;
    erd_diag diag = {0};
    if (!x || !y) {
        ok(0, "allocation");
        free(x);
        free(y);
        return;
    }
    /* Features on different scales, plus one constant column (as log_rank
     * is for top results), which the fit must leave at 0. */
    for (size_t i = 0; i < n; i++) {
        double *xi = x + i * VIX_CALIB_NFEAT;
        xi[0] = uniform();
        xi[1] = uniform() * 0.5;
        xi[2] = 7;
        xi[3] = uniform() * 2 - 1;
        xi[4] = 3 * uniform();
        double t = want[0];
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            t += want[1 + f] * xi[f];
        y[i] = uniform() < 1 / (1 + exp(-t));
    }
    is_int(vix_calib_fit(x, y, n, 1e-6, &m, &diag), ERD_OK, "fit converges: %s", diag.msg);
    double worst = 0;
    for (int j = 0; j <= VIX_CALIB_NFEAT; j++)
        worst = fmax(worst, fabs(m.w[j] - want[j]));
    ok(worst < 0.15, "known coefficients recovered (largest error %.3f)", worst);
    ok(m.w[3] == 0, "constant feature gets weight 0 (%g)", m.w[3]);

    vix_calib_model strong;
    is_int(vix_calib_fit(x, y, n, 1e4, &strong, &diag), ERD_OK, "heavily penalised fit");
    ok(fabs(strong.w[1]) < fabs(m.w[1]) / 2, "L2 shrinks the weights (%.3f vs %.3f)", strong.w[1],
       m.w[1]);

    memset(y, 1, n);
    ok(vix_calib_fit(x, y, n, 1, &m, &diag) == ERD_EINVAL, "one outcome only: refused");
    ok(vix_calib_fit(x, y, 0, 1, &m, &diag) == ERD_EINVAL, "no rows: refused");
    free(x);
    free(y);
}

static void rechecksum(char *text, size_t cap);
static void sample_calib(vix_calib *c);

static double mean_log_loss(const vix_calib_model *m, const double *x, const uint8_t *y, size_t n)
{
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        double p = vix_calib_predict(m, x + i * VIX_CALIB_NFEAT);
        p = fmin(fmax(p, 1e-12), 1 - 1e-12);
        loss -= y[i] ? log(p) : log(1 - p);
    }
    return loss / (double)n;
}

/* Evidence that does not add up (right exactly when two features have the
 * same sign) is out of a linear model's reach; the tanh units learn it. */
static void test_fit_hidden(const char *dir)
{
    const size_t n = 2000;
    double *x = calloc(n * VIX_CALIB_NFEAT, sizeof *x);
    uint8_t *y = calloc(n, 1);
    vix_calib_model lin, m, again;
    erd_diag diag = {0};
    if (!x || !y) {
        ok(0, "allocation");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        double *xi = x + i * VIX_CALIB_NFEAT;
        xi[0] = 2 * uniform() - 1;
        xi[1] = 4 * uniform() - 2;
        xi[2] = uniform();
        y[i] = (xi[0] * xi[1] > 0) != (uniform() < 0.05);
    }
    is_int(vix_calib_fit(x, y, n, 1, &lin, &diag), ERD_OK, "linear start");
    vix_calib_hidden_opts ho = {.units = 4, .steps = 600, .l2 = 1e-4, .rate = 0.05, .seed = 3};
    m = lin;
    is_int(vix_calib_fit_hidden(x, y, n, &ho, &m, &diag), ERD_OK, "units trained: %s", diag.msg);
    double l_lin = mean_log_loss(&lin, x, y, n), l_hid = mean_log_loss(&m, x, y, n);
    ok(m.n_hidden == 4 && l_lin > 0.65 && l_hid < 0.45,
       "units learn what the linear model cannot (log loss %.3f -> %.3f)", l_lin, l_hid);
    again = lin;
    vix_calib_fit_hidden(x, y, n, &ho, &again, &diag);
    ok(!memcmp(&m, &again, sizeof m), "same rows and options: the same weights");
    ho.units = 0;
    ok(vix_calib_fit_hidden(x, y, n, &ho, &again, &diag) == ERD_EINVAL, "no units: refused");
    ho.units = VIX_CALIB_HIDDEN_MAX + 1;
    ok(vix_calib_fit_hidden(x, y, n, &ho, &again, &diag) == ERD_EINVAL, "too many: refused");

    /* the file keeps them exactly */
    vix_calib c, back;
    char path[256];
    sample_calib(&c);
    c.top = m;
    snprintf(path, sizeof path, "%s/hidden.txt", dir);
    is_int(vix_calib_save(&c, path, &diag), ERD_OK, "saved with units: %s", diag.msg);
    is_int(vix_calib_load(path, &back, &diag), ERD_OK, "loaded with units: %s", diag.msg);
    ok(!memcmp(&back.top, &m, sizeof m) && back.rest.n_hidden == 0,
       "units round-trip exactly, the rest model stays linear");
    ok(vix_calib_predict(&back.top, x) == vix_calib_predict(&m, x), "same prediction after load");

    /* more units than the reader holds: refused, not overrun */
    static char text[65536];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = '\0';
    char *h = strstr(text, "\ntop_hidden 4\n");
    if (h) {
        memcpy(h + 12, "9", 1);
        rechecksum(text, sizeof text);
        tmpdir_write(path, text, strlen(text));
        ok(vix_calib_load(path, &back, &diag) == ERD_ECORRUPT, "unit count past the lines: "
                                                               "refused");
    } else {
        ok(0, "top_hidden line written");
    }
out:
    free(x);
    free(y);
}

static void sample_calib(vix_calib *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->encoder_id, sizeof c->encoder_id, "baseline-ngram-v1/1024");
    snprintf(c->rerank_id, sizeof c->rerank_id, "off");
    snprintf(c->provenance, sizeof c->provenance, "test");
    c->no_match_threshold = 0.125;
    double top[] = {-4, 6, 8, 0, 1, 1, 0.2, 0.1, 0};
    double rest[] = {-6, 5, 1, -6, 0.5, 1, 0.1, 0.1, -0.5};
    memcpy(c->top.w, top, sizeof top);
    memcpy(c->rest.w, rest, sizeof rest);
}

static void test_probs(void)
{
    vix_calib c;
    sample_calib(&c);
    /* A near tie at the top, where two independent models would overshoot
     * 1 in total without the cap. */
    double score[] = {0.95, 0.94, 0.93, 0.5, 0.2, 0.1}, first[] = {0.9, 0.9, 0.9, 0.4, 0.2, 0.1};
    double agree[] = {0.4, 0.3, 0.3, 0, 0, 0}, x[6 * VIX_CALIB_NFEAT], p[6];
    vix_calib_features(score, first, agree, NULL, 5, 6, &(vix_calib_query){3, 12, 0, 0, 0}, x);
    ok(fabs(x[VIX_CF_MARGIN] - 0.01) < 1e-12 && x[4 * VIX_CALIB_NFEAT + VIX_CF_MARGIN] > 0.099,
       "margin is to the next result, the last one's included");
    ok(x[2 * VIX_CALIB_NFEAT + VIX_CF_GAP] > 0.0199 && x[VIX_CF_GAP] == 0, "gap to the top");
    vix_calib_probs(&c, x, 5, p);
    int in_range = 1, monotone = 1;
    double sum = 0;
    for (int i = 0; i < 5; i++) {
        in_range &= p[i] >= 0 && p[i] <= 1;
        if (i)
            monotone &= p[i] <= p[i - 1];
        sum += p[i];
    }
    ok(in_range, "probabilities in [0, 1]");
    ok(monotone, "probabilities never increase with rank (%.3f %.3f %.3f %.3f %.3f)", p[0], p[1],
       p[2], p[3], p[4]);
    ok(sum <= 1 + 1e-12, "probabilities of one list sum to at most 1 (%.4f)", sum);
    ok(fabs(p[0] - vix_calib_predict(&c.top, x)) < 1e-15, "top result keeps its model's value");
    double raw1 = vix_calib_predict(&c.rest, x + VIX_CALIB_NFEAT);
    ok(raw1 > 1 - p[0] && fabs(p[1] - (1 - p[0])) < 1e-12,
       "rank 2 capped by what the top left over (%.3f -> %.3f)", raw1, p[1]);
    /* NaN features (a degenerate query) must not come out as a score */
    x[VIX_CF_SCORE] = NAN;
    vix_calib_probs(&c, x, 1, p);
    ok(p[0] >= 0 && p[0] <= 1, "NaN feature still gives a probability");
}

/* An edited file's checksum line made right again (for files that must
 * be refused for what they say, not for the checksum). */
static void rechecksum(char *text, size_t cap)
{
    char *ck = strstr(text, "checksum fnv1a64:");
    if (!ck)
        return;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char *p = text; p < ck; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    snprintf(ck, cap - (size_t)(ck - text), "checksum fnv1a64:%016llx\n", (unsigned long long)h);
}

static void test_file(const char *dir)
{
    char path[256], bad[256];
    vix_calib c, back;
    erd_diag diag = {0};
    sample_calib(&c);
    snprintf(path, sizeof path, "%s/cal.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.txt", dir);
    is_int(vix_calib_save(&c, path, &diag), ERD_OK, "saved: %s", diag.msg);
    is_int(vix_calib_load(path, &back, &diag), ERD_OK, "loaded back: %s", diag.msg);
    ok(!memcmp(&c.top, &back.top, sizeof c.top) && !memcmp(&c.rest, &back.rest, sizeof c.rest),
       "weights round-trip exactly");
    is_str(back.encoder_id, c.encoder_id, "encoder id round-trips");
    is_str(back.rerank_id, c.rerank_id, "rerank id round-trips");
    ok(back.no_match_threshold == c.no_match_threshold, "no-match threshold round-trips");

    char buf[8192];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    ok(len > 100, "file read (%zu bytes)", len);

    /* one digit of a weight changed */
    char *w = strstr(buf, "\ntop ");
    if (w) {
        char save = w[6];
        w[6] = w[6] == '1' ? '2' : '1';
        tmpdir_write(bad, buf, len);
        w[6] = save;
        ok(vix_calib_load(bad, &back, &diag) == ERD_ECORRUPT, "edited weight refused: %s",
           diag.msg);
    }
    tmpdir_write(bad, buf, len / 2);
    ok(vix_calib_load(bad, &back, &diag) == ERD_ECORRUPT, "truncated file refused");
    tmpdir_write(bad, "", 0);
    ok(vix_calib_load(bad, &back, &diag) == ERD_ECORRUPT, "empty file refused");

    /* a well-formed file for another feature set, checksum recomputed by
     * saving through a renamed header would need the writer: patch the
     * version and fix the checksum by hand instead */
    char other[8192];
    snprintf(other, sizeof other, "%s", buf);
    char *v = strstr(other, "erd-calibration 3\n");
    char *ck = strstr(other, "checksum fnv1a64:");
    if (v && ck) {
        v[16] = '9';
        rechecksum(other, sizeof other);
        tmpdir_write(bad, other, strlen(other));
        ok(vix_calib_load(bad, &back, &diag) == ERD_EMISMATCH, "other version refused: %s",
           diag.msg);
    }
    snprintf(bad, sizeof bad, "%s/missing.txt", dir);
    ok(vix_calib_load(bad, &back, &diag) == ERD_ENOTFOUND, "missing file: ENOTFOUND");
}

/* Drops the last `drop` numbers of every model row and the last `drop`
 * names of the features line: the file an erd with fewer features wrote. */
static size_t older_text(const char *in, char *out, size_t cap, int drop)
{
    static const char *rows[] = {"top ", "top_mean ", "top_scale ", "top_unit ",
                                 "rest ", "rest_mean ", "rest_scale ", "rest_unit ", "features "};
    size_t len = 0;
    for (const char *line = in; *line && len + 1 < cap;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        int cut = 0;
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            cut |= strncmp(line, rows[r], strlen(rows[r])) == 0;
        for (int d = 0; cut && d < drop; d++)
            while (n > 0 && line[--n] != (line[0] == 'f' ? ',' : ' '))
                ;
        if (len + n + 2 > cap)
            break;
        memcpy(out + len, line, n);
        len += n;
        out[len++] = '\n';
        line += (nl ? (size_t)(nl - line) + 1 : strlen(line));
    }
    out[len] = '\0';
    return len;
}

/* A file fitted before the last features were added still loads: those
 * features weigh nothing, the others keep their weights. */
static void test_older_file(const char *dir)
{
    enum { DROP = 2 };
    static char text[65536], older[65536];
    char path[256];
    erd_diag diag = {0};
    vix_calib c, back;
    sample_calib(&c);
    c.top.n_hidden = 2;
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        c.top.mean[f] = 0.5 * f;
        c.top.scale[f] = 1.0 + f;
        for (int j = 0; j < 2; j++)
            c.top.in[j][1 + f] = 0.01 * (f + 1) * (j ? -1 : 1);
        c.top.w[1 + f] = c.rest.w[1 + f] = 0.1 * (f + 1);
    }
    c.top.out[0] = 1.5;
    c.top.out[1] = -0.5;
    snprintf(path, sizeof path, "%s/older.txt", dir);
    is_int(vix_calib_save(&c, path, &diag), ERD_OK, "saved: %s", diag.msg);
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = '\0';
    len = older_text(text, older, sizeof older, DROP);
    rechecksum(older, sizeof older);
    tmpdir_write(path, older, strlen(older));
    is_int(vix_calib_load(path, &back, &diag), ERD_OK, "file of %d features fewer loads: %s",
           DROP, diag.msg);
    int kept = 1, dropped = 1;
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        int old = f < VIX_CALIB_NFEAT - DROP;
        double w[] = {back.top.w[1 + f], back.rest.w[1 + f], back.top.in[0][1 + f],
                      back.top.in[1][1 + f], back.top.mean[f], back.top.scale[f]};
        double want[] = {c.top.w[1 + f], c.rest.w[1 + f], c.top.in[0][1 + f],
                         c.top.in[1][1 + f], c.top.mean[f], c.top.scale[f]};
        for (size_t i = 0; i < sizeof w / sizeof *w; i++) {
            kept &= !old || w[i] == want[i];
            dropped &= old || w[i] == 0;
        }
    }
    ok(kept, "the features it names keep their weights");
    ok(dropped, "the features it lacks weigh nothing");
    double x[VIX_CALIB_NFEAT], x0[VIX_CALIB_NFEAT];
    for (int k = 0; k < VIX_CALIB_NFEAT; k++)
        x[k] = x0[k] = 0.2 * k;
    x[VIX_CALIB_NFEAT - 1] = 9;
    ok(vix_calib_predict(&back.top, x) == vix_calib_predict(&back.top, x0),
       "its predictions ignore the features it lacks");
    /* a list that is not a first part of ours: refused */
    char *feat = strstr(older, "features ");
    if (feat) {
        feat[9] = 'X';
        rechecksum(older, sizeof older);
        tmpdir_write(path, older, strlen(older));
        is_int(vix_calib_load(path, &back, &diag), ERD_EMISMATCH, "other features refused: %s",
               diag.msg);
    }
}

static const char catalog[] =
    "{\"id\":\"a\",\"name\":\"The Hunger Games\"}\n"
    "{\"id\":\"b\",\"name\":\"Mockingjay\"}\n"
    "{\"id\":\"c\",\"name\":\"Ferris Bueller's Day Off\"}\n"
    "{\"id\":\"d\",\"name\":\"Ferris Wheel\"}\n"
    "{\"id\":\"e\",\"name\":\"Day of the Dead\"}\n"
    "{\"id\":\"f\",\"name\":\"Harry Potter\"}\n"
    "{\"id\":\"g\",\"name\":\"Harriet\"}\n";

/* The open-set features: what each alignment counts, weighted over the
 * hypotheses, and the worst values when nothing was aligned. */
static void test_fitness(void)
{
    vix_calib_fitness acc = {0};
    /* 10 heard phones, 6 matched, 8 of the name's 10 heard, 1 of 3 words
     * missed; then a perfect hypothesis of weight 1 */
    vix_calib_counts a = {.extra = 5, .n_hyp = 10, .n_ref = 10, .matched = 6, .heard = 8,
                          .hyp_words = 3, .hyp_words_missed = 1, .ref_words = 2,
                          .ref_words_missed = 0};
    vix_calib_counts b = {.extra = -0.5, .n_hyp = 4, .n_ref = 4, .matched = 4, .heard = 4,
                          .hyp_words = 1, .ref_words = 1};
    vix_calib_fit_add(&acc, 3, &a);
    vix_calib_fit_add(&acc, 1, &b);
    vix_calib_fit_finish(&acc, 4);
    ok(fabs(acc.fit - 3 * 0.5 / 4) < 1e-12, "fit: weighted mean extra cost per phone, a "
                                              "negative extra counted as 0 (%.4f)", acc.fit);
    ok(acc.best_fit == 0, "best_fit: the best hypothesis's");
    ok(fabs(acc.cover - (3 * 0.6 + 1) / 4) < 1e-12 && fabs(acc.ref_cover - (3 * 0.8 + 1) / 4) < 1e-12,
       "cover and ref_cover: weighted shares (%.4f, %.4f)", acc.cover, acc.ref_cover);
    ok(fabs(acc.word_miss - 3.0 / 3 / 4) < 1e-12 && acc.ref_word_miss == 0,
       "word_miss: weighted share of words with no phone matched (%.4f)", acc.word_miss);
    ok(acc.len_ratio == 0, "len_ratio: log of heard over named phones, 0 for equal lengths");
    vix_calib_counts run = {.extra = 1, .n_hyp = 8, .n_ref = 8, .matched = 4, .gap_run = 4};
    vix_calib_fitness g = {0};
    vix_calib_fit_add(&g, 2, &run);
    vix_calib_fit_finish(&g, 2);
    ok(g.gap_run == 0.5, "gap_run: share of the heard phones in the longest unmatched run");
    vix_calib_counts far = {.extra = 1e9, .n_hyp = 2, .n_ref = 9};
    vix_calib_fitness one = {0};
    vix_calib_fit_add(&one, 1, &far);
    vix_calib_fit_finish(&one, 1);
    ok(one.fit == 8 && one.cover == 0, "a hopeless alignment is capped at 8 nats per phone");
    /* the second word of the phrase is missed by both hypotheses that
     * aligned it, the first by one only; a hypothesis on another phrase
     * (an alias) does not count */
    vix_calib_counts w1 = {.n_hyp = 4, .n_ref = 4, .phrase = 0, .n_words = 2,
                           .word_hit = {1, 0.25}, .word_hit_min = 0.25, .worst_span = 3},
                     w2 = {.n_hyp = 4, .n_ref = 4, .phrase = 0, .n_words = 2,
                           .word_hit = {0.5, 0.0}, .word_hit_min = 0, .worst_span = 100},
                     w3 = {.n_hyp = 4, .n_ref = 4, .phrase = 1, .n_words = 1, .word_hit = {0}};
    vix_calib_fitness st = {0};
    vix_calib_fit_add(&st, 1, &w1);
    vix_calib_fit_add(&st, 1, &w2);
    vix_calib_fit_add(&st, 2, &w3);
    vix_calib_fit_finish(&st, 4);
    ok(fabs(st.steady_miss - (1 - 0.125)) < 1e-12,
       "steady_miss: the name word least matched across hypotheses of one phrase (%.4f)",
       st.steady_miss);
    ok(fabs(st.word_hit_min - 0.25 / 4) < 1e-12 && fabs(st.worst_span - 33.0 / 4) < 1e-12,
       "word_hit_min a weighted mean; worst_span capped at 30 nats (%.4f, %.4f)",
       st.word_hit_min, st.worst_span);
    vix_calib_fitness none = {0};
    vix_calib_fit_finish(&none, 0);
    ok(none.fit == 8 && none.best_fit == 8 && none.cover == 0 && none.word_miss == 1 &&
           none.ref_word_miss == 1 && none.steady_miss == 1 && none.word_hit_min == 0,
       "nothing aligned: the worst values");

    double score[] = {0.9, 0.5}, first[] = {0.8, 0.4}, agree[] = {1, 0}, x[2 * VIX_CALIB_NFEAT];
    vix_calib_fitness fits[2] = {acc, none};
    vix_calib_features(score, first, agree, fits, 2, 2, &(vix_calib_query){2, 10, 0.5, 1.5, 2.5}, x);
    ok(x[VIX_CF_SPREAD] == 0.5 && x[VIX_CALIB_NFEAT + VIX_CF_ASR_GAP] == 1.5 &&
           x[VIX_CF_COMMAND] == 2.5 && x[VIX_CALIB_NFEAT + VIX_CF_COMMAND] == 2.5,
       "the query's spread, recogniser gap and command score reach every result");
    ok(x[VIX_CF_FIT] == acc.fit && x[VIX_CF_COVER] == acc.cover &&
           x[VIX_CF_REF_WORD_MISS] == acc.ref_word_miss &&
           x[VIX_CALIB_NFEAT + VIX_CF_WORD_MISS] == 1,
       "features carry each result's own alignment counts");
    ok(fabs(x[VIX_CF_SCORE_SQ] - 0.81) < 1e-12 && x[VIX_CF_FIT_SQ] == acc.fit * acc.fit &&
           x[VIX_CF_COVER_BOTH] == acc.cover * acc.ref_cover,
       "the curvature terms are products of the others");
    ok(x[VIX_CF_ONE_HYP] == 0 && x[VIX_CF_ONE_FIT] == 0 && x[VIX_CF_ONE_COVER] == 0,
       "two hypotheses: the single-hypothesis terms are 0");
    vix_calib_features(score, first, agree, fits, 2, 2, &(vix_calib_query){1, 10, 0, 0, 0}, x);
    ok(x[VIX_CF_ONE_HYP] == 1 && x[VIX_CF_ONE_FIT] == x[VIX_CF_FIT] &&
           x[VIX_CF_ONE_COVER] == x[VIX_CF_COVER] && x[VIX_CF_ONE_GAP_RUN] == x[VIX_CF_GAP_RUN],
       "one hypothesis: they repeat fit, cover and gap_run");
    vix_calib_features(score, first, agree, NULL, 2, 2, &(vix_calib_query){2, 10, 0, 0, 0}, x);
    ok(x[VIX_CF_FIT] == 8 && x[VIX_CF_COVER] == 0, "without rerank: the worst values");
}

static void test_resolver(const char *dir)
{
    char db[256], cal_path[256], other_path[256], bad_path[256];
    erd_diag diag = {0};
    snprintf(db, sizeof db, "%s/t.db", dir);
    is_int(fixture_import(db, "video", catalog, &diag), ERD_OK, "catalog imported: %s", diag.msg);
    vix_build_result br;
    is_int(fixture_build(db, "video", &br, &diag), ERD_OK, "catalog built: %s", diag.msg);

    vix_hypothesis hyps[2] = {{"ferris viewers day off", 22, -5120, true},
                              {"faris viewers day off", 21, -5310, true}};
    vix_result raw[7], res[7];
    double feat[7 * VIX_CALIB_NFEAT];
    size_t n_raw = 0, n = 0;
    vix_resolver *r = NULL;
    vix_resolver_opts ro = {.db_path = db, .rerank = "off", .calibration = "off"};
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver, calibration off");
    char rerank_id[VIX_CALIB_ID_MAX] = "";
    if (r) {
        is_int(vix_resolve_features(r, "video", hyps, 2, 7, raw, &n_raw, NULL, feat, &diag),
               ERD_OK, "resolve with features");
        ok(n_raw == 7 && feat[VIX_CF_SCORE] == raw[0].score && feat[VIX_CF_LOG_HYPS] > 1,
           "features describe the uncalibrated results");
        is_int(vix_resolver_calibrated(r, 0, &diag), ERD_ENOTFOUND, "calibration off reported");
        vix_resolver_rerank_id(r, rerank_id, sizeof rerank_id);
        is_str(rerank_id, "off", "rerank id off");
    }
    vix_resolver_close(r);
    r = NULL;

    vix_calib c;
    sample_calib(&c);
    snprintf(cal_path, sizeof cal_path, "%s/cal.txt", dir);
    vix_calib_save(&c, cal_path, &diag);
    ro.calibration = cal_path;
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver with calibration: %s", diag.msg);
    if (r) {
        is_int(vix_resolver_calibrated(r, 0, &diag), ERD_OK, "catalog calibrated: %s", diag.msg);
        vix_view *v = vix_resolver_acquire(r);
        double t = -1;
        ok(vix_view_no_match_threshold(r, v, "video", &t) == ERD_OK && t == c.no_match_threshold,
           "the file's no-match threshold is served for a calibrated catalog (%g)", t);
        ok(vix_view_no_match_threshold(r, v, "nope", &t) == ERD_ENOCATALOG, "unknown catalog");
        vix_view_release(v);
        for (size_t k = 1; k <= 7; k += 3) {
            is_int(vix_resolve(r, "video", hyps, 2, k, res, &n, NULL, &diag), ERD_OK,
                   "calibrated resolve, k=%zu", k);
            int good = n == k;
            double sum = 0;
            for (size_t i = 0; good && i < n; i++) {
                good &= res[i].score >= 0 && res[i].score <= 1 && res[i].rowid == raw[i].rowid;
                if (i)
                    good &= res[i].score <= res[i - 1].score;
                sum += res[i].score;
            }
            ok(good && sum <= 1 + 1e-9,
               "k=%zu: scores in [0,1], non-increasing, sum %.3f <= 1, same order", k, sum);
            ok(fabs(res[0].score - raw[0].score) > 1e-6 || raw[0].score == 0,
               "k=%zu: the top score is the calibrated one (%.4f vs raw %.4f)", k, res[0].score,
               raw[0].score);
        }
    }
    vix_resolver_close(r);
    r = NULL;

    /* fitted on another encoder: served uncalibrated, and said so */
    snprintf(c.encoder_id, sizeof c.encoder_id, "model:elsewhere.bin#00000000");
    snprintf(other_path, sizeof other_path, "%s/other.txt", dir);
    vix_calib_save(&c, other_path, &diag);
    ro.calibration = other_path;
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver with another encoder's file");
    if (r) {
        is_int(vix_resolver_calibrated(r, 0, &diag), ERD_EMISMATCH, "encoder mismatch reported");
        vix_view *v = vix_resolver_acquire(r);
        double t = -1;
        ok(vix_view_no_match_threshold(r, v, "video", &t) == ERD_ENOTFOUND && t == -1,
           "uncalibrated scores: no threshold from the file");
        vix_view_release(v);
        ok(strstr(diag.msg, "elsewhere") != NULL, "message names the file's encoder: %s",
           diag.msg);
        vix_resolve(r, "video", hyps, 2, 7, res, &n, NULL, &diag);
        int same = n == n_raw;
        for (size_t i = 0; same && i < n; i++)
            same = res[i].score == raw[i].score;
        ok(same, "mismatched encoder: uncalibrated scores");
    }
    vix_resolver_close(r);
    r = NULL;

    /* fitted under another rerank configuration */
    sample_calib(&c);
    snprintf(c.rerank_id, sizeof c.rerank_id, "channel=fnv1a64:0000000000000000,weight=0.7");
    vix_calib_save(&c, other_path, &diag);
    is_int(vix_resolver_open(&ro, &r, &diag), ERD_OK, "resolver with another rerank's file");
    if (r)
        is_int(vix_resolver_calibrated(r, 0, &diag), ERD_EMISMATCH, "rerank mismatch reported");
    vix_resolver_close(r);
    r = NULL;

    /* a damaged file stops the resolver from opening */
    snprintf(bad_path, sizeof bad_path, "%s/damaged.txt", dir);
    static const char damaged[] = "erd-calibration 3\nfeatures x\nchecksum fnv1a64:0000000000000000\n";
    tmpdir_write(bad_path, damaged, sizeof damaged - 1);
    ro.calibration = bad_path;
    ok(vix_resolver_open(&ro, &r, &diag) == ERD_ECORRUPT && r == NULL,
       "damaged calibration: resolver not opened");
    snprintf(bad_path, sizeof bad_path, "%s/missing.txt", dir);
    ok(vix_resolver_open(&ro, &r, &diag) == ERD_ENOTFOUND && r == NULL,
       "missing calibration: resolver not opened");
}

int main(void)
{
    char dir[200];
    test_fit();
    test_probs();
    test_fitness();
    if (!tmpdir_make(dir, sizeof dir, "calib")) {
        ok(0, "temp dir");
        return tap_done();
    }
    test_file(dir);
    test_fit_hidden(dir);
    test_older_file(dir);
    test_resolver(dir);
    ok(tmpdir_remove(dir), "cleanup");
    return tap_done();
}
