#include "index/vix_rerank.h"

#include <errno.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_internal.h"
#include "index/vix_phrase.h"

struct vix_rerank {
    vix_rerank_opts opts;
    /* sub[r][h] with the boundary cost folded in per word-start pair:
     * cost[(r | ws_r<<7)][(h | ws_h<<7)] would be 64 KB; two 48x48 tables
     * per boundary pair keep the hot rows in L1. */
    float sub[2][2][PHO_N_PHONES][PHO_N_PHONES];
    float del[PHO_N_PHONES];
    float ins[2][PHO_N_PHONES];
    float self[2][PHO_N_PHONES]; /* cost of hearing a phone as itself, boundary kept */
};

void vix_rerank_opts_init(vix_rerank_opts *opts)
{
    *opts = (vix_rerank_opts){
        .weight = 0.7, .candidates = 100, .budget = VIX_RR_BUDGET, .mode = VIX_RR_LOCAL,
        .skip = 1.0, .temperature = 2.0};
}

static int vix__rr_num(const char *key, const char *v, double lo, double hi, double *ret,
                       erd_diag *diag)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo) || !(x <= hi))
        return erd_fail(diag, ERD_ECONFIG, "rerank: %s wants a number in [%g, %g], not \"%s\"",
                        key, lo, hi, v);
    *ret = x;
    return ERD_OK;
}

int vix_rerank_spec_parse(const char *spec, char *path, size_t path_cap, vix_rerank_opts *ret,
                          int *ret_enabled, erd_diag *diag)
{
    vix_rerank_opts o;
    char buf[1024];
    int rc;

    vix_rerank_opts_init(&o);
    if (!spec || !strcmp(spec, "off") || !strcmp(spec, "false") || !strcmp(spec, "no")) {
        *ret = o;
        *ret_enabled = 0;
        return ERD_OK;
    }
    if (strlen(spec) >= sizeof buf)
        return erd_fail(diag, ERD_ECONFIG, "rerank: spec too long");
    memcpy(buf, spec, strlen(spec) + 1);
    char *save = NULL, *file = strtok_r(buf, ",", &save);
    if (!file || !*file)
        return erd_fail(diag, ERD_ECONFIG, "rerank: wants off or a channel file");
    if (strlen(file) >= path_cap)
        return erd_fail(diag, ERD_ECONFIG, "rerank: channel path too long");
    for (char *kv = strtok_r(NULL, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        double x = 0;
        if (!eq)
            return erd_fail(diag, ERD_ECONFIG, "rerank: \"%s\" is not KEY=VALUE", kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (!strcmp(kv, "weight")) {
            if ((rc = vix__rr_num(kv, v, 0, 1, &o.weight, diag)) < 0)
                return rc;
        } else if (!strcmp(kv, "candidates")) {
            if ((rc = vix__rr_num(kv, v, 1, 1000, &x, diag)) < 0)
                return rc;
            o.candidates = (size_t)x;
        } else if (!strcmp(kv, "budget")) {
            if ((rc = vix__rr_num(kv, v, 0, 1e12, &x, diag)) < 0)
                return rc;
            o.budget = (size_t)x;
        } else if (!strcmp(kv, "skip")) {
            if ((rc = vix__rr_num(kv, v, 0, 100, &o.skip, diag)) < 0)
                return rc;
        } else if (!strcmp(kv, "temperature")) {
            if ((rc = vix__rr_num(kv, v, 0.01, 100, &o.temperature, diag)) < 0)
                return rc;
        } else if (!strcmp(kv, "ranker")) {
            if (!*v || strlen(v) >= sizeof o.ranker)
                return erd_fail(diag, ERD_ECONFIG, "rerank: ranker file name empty or too long");
            memcpy(o.ranker, v, strlen(v) + 1);
        } else if (!strcmp(kv, "order")) {
            if (!*v || strlen(v) >= sizeof o.order)
                return erd_fail(diag, ERD_ECONFIG, "rerank: order file name empty or too long");
            memcpy(o.order, v, strlen(v) + 1);
        } else if (!strcmp(kv, "command")) {
            if (!*v || strlen(v) >= sizeof o.command)
                return erd_fail(diag, ERD_ECONFIG, "rerank: command file name empty or too long");
            memcpy(o.command, v, strlen(v) + 1);
        } else if (!strcmp(kv, "mode")) {
            if (!strcmp(v, "local"))
                o.mode = VIX_RR_LOCAL;
            else if (!strcmp(v, "global"))
                o.mode = VIX_RR_GLOBAL;
            else
                return erd_fail(diag, ERD_ECONFIG, "rerank: mode is local or global, not \"%s\"",
                                v);
        } else {
            return erd_fail(diag, ERD_ECONFIG, "rerank: unknown option \"%s\"", kv);
        }
    }
    memcpy(path, file, strlen(file) + 1);
    *ret = o;
    *ret_enabled = 1;
    return ERD_OK;
}

int vix_rerank_create(const pho_channel *ch, const vix_rerank_opts *opts, vix_rerank **ret,
                      erd_diag *diag)
{
    pho_channel_costs *c = malloc(sizeof *c);
    vix_rerank *rr = calloc(1, sizeof *rr);
    if (!c || !rr) {
        free(c);
        free(rr);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    if (opts)
        rr->opts = *opts;
    else
        vix_rerank_opts_init(&rr->opts);
    pho_channel_costs_get(ch, c);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (unsigned r = 0; r < PHO_N_PHONES; r++)
                for (unsigned h = 0; h < PHO_N_PHONES; h++)
                    rr->sub[a][b][r][h] = r && h ? c->sub[r][h] + c->boundary[a][b] : 1e6f;
    for (unsigned p = 0; p < PHO_N_PHONES; p++) {
        rr->del[p] = p ? c->sub[p][0] : 1e6f;
        for (int b = 0; b < 2; b++) {
            rr->ins[b][p] = p ? c->ins[p] + c->boundary[0][b] : 1e6f;
            rr->self[b][p] = rr->sub[b][b][p][p];
        }
    }
    free(c);
    *ret = rr;
    return ERD_OK;
}

void vix_rerank_destroy(vix_rerank *rr)
{
    free(rr);
}

const vix_rerank_opts *vix_rerank_get_opts(const vix_rerank *rr)
{
    return &rr->opts;
}

size_t vix_rerank_pack(const pho_token *tokens, size_t n, uint8_t *out, size_t cap)
{
    size_t m = n < cap ? n : cap;
    for (size_t i = 0; i < m; i++)
        out[i] = (uint8_t)(tokens[i].phone | (tokens[i].word_start ? VIX_RR_WORD_START : 0));
    return m;
}

#define VIX__PH(t) ((t) & 0x7fu)
#define VIX__WS(t) ((t) >> 7)

/* Cost of hearing hyp when ref was said, minus the cost of hearing hyp when
 * hyp itself was said: what the channel must explain beyond a perfect
 * match.  In local mode the phrase's unheard head and tail cost skip per
 * phone instead of a deletion each, so "hunger games" against "The Hunger
 * Games: Mockingjay" pays a little per dropped phone, not the full price. */
static float vix__rr_extra(const vix_rerank *rr, const uint8_t *hyp, size_t nh, const uint8_t *ref,
                           size_t nr)
{
    float row[VIX_RR_TOKENS_MAX + 1], self = 0;
    float skip = rr->opts.mode == VIX_RR_LOCAL ? (float)rr->opts.skip : 1e6f;
    if (nh > VIX_RR_TOKENS_MAX)
        nh = VIX_RR_TOKENS_MAX;
    if (nr > VIX_RR_TOKENS_MAX)
        nr = VIX_RR_TOKENS_MAX;
    row[0] = 0;
    for (size_t j = 1; j <= nh; j++) {
        uint8_t h = hyp[j - 1];
        row[j] = row[j - 1] + rr->ins[VIX__WS(h)][VIX__PH(h)];
        self += rr->self[VIX__WS(h)][VIX__PH(h)];
    }
    float best = nr == 0 ? row[nh] : 1e30f, lead = 0;
    for (size_t i = 1; i <= nr; i++) {
        uint8_t r = ref[i - 1];
        unsigned rp = VIX__PH(r), rw = VIX__WS(r);
        float del = rr->del[rp];
        float diag = row[0];
        float lead_step = del < skip ? del : skip;
        lead += lead_step;
        row[0] = lead;
        const float (*sub0)[PHO_N_PHONES][PHO_N_PHONES] = rr->sub[rw];
        for (size_t j = 1; j <= nh; j++) {
            uint8_t h = hyp[j - 1];
            float m = diag + sub0[VIX__WS(h)][rp][VIX__PH(h)];
            float d = row[j] + del;
            float in = row[j - 1] + rr->ins[VIX__WS(h)][VIX__PH(h)];
            diag = row[j];
            m = d < m ? d : m;
            row[j] = in < m ? in : m;
        }
        /* The phrase's remaining phones may go unheard at skip each. */
        if (rr->opts.mode == VIX_RR_LOCAL) {
            float tail = row[nh] + (float)(nr - i) * skip;
            best = tail < best ? tail : best;
        }
    }
    if (nr > 0 && row[nh] < best)
        best = row[nh];
    float extra = best - self;
    return extra > 0 ? extra : 0;
}

static double vix__rr_similarity(const vix_rerank *rr, float extra, size_t nh)
{
    size_t n = nh < 1 ? 1 : nh > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : nh;
    return exp(-(double)extra / ((double)n * rr->opts.temperature));
}

double vix_rerank_pair(const vix_rerank *rr, const uint8_t *hyp, size_t n_hyp, const uint8_t *ref,
                       size_t n_ref)
{
    return vix__rr_similarity(rr, vix__rr_extra(rr, hyp, n_hyp, ref, n_ref), n_hyp);
}

double vix_rerank_similarity(const vix_rerank *rr, float extra, size_t n_hyp)
{
    return vix__rr_similarity(rr, extra > 0 ? extra : 0, n_hyp);
}

#define VIX__ALIGN_STACK_CELLS (48 * 64)

/* Which of the three moves vix__rr_extra's recurrence took into cell
 * (i, j), by its own comparisons. */
enum { VIX__FROM_DIAG, VIX__FROM_UP, VIX__FROM_LEFT };

/* Walks the moves back from (i, j) to the origin, writing the steps in
 * reverse into ops; returns their number. */
static size_t vix__rr_trace(const vix_rerank *rr, const uint8_t *hyp, const uint8_t *ref,
                            const uint8_t *from, size_t cols, size_t i, size_t j, float skip,
                            vix_rerank_op *ops)
{
    size_t n = 0;
    while (i > 0 || j > 0) {
        uint8_t h = j ? hyp[j - 1] : 0, r = i ? ref[i - 1] : 0;
        float self = j ? rr->self[VIX__WS(h)][VIX__PH(h)] : 0;
        int move = i == 0 ? VIX__FROM_LEFT : j == 0 ? VIX__FROM_UP : from[i * cols + j];
        if (move == VIX__FROM_LEFT) {
            ops[n++] = (vix_rerank_op){VIX_RR_OP_INS, h, 0,
                                       rr->ins[VIX__WS(h)][VIX__PH(h)] - self};
            j--;
        } else if (move == VIX__FROM_UP) {
            float del = rr->del[VIX__PH(r)];
            /* column 0 is the unheard head of the phrase */
            ops[n++] = (vix_rerank_op){VIX_RR_OP_DEL, 0, r, j == 0 && del > skip ? skip : del};
            i--;
        } else {
            float c = rr->sub[VIX__WS(r)][VIX__WS(h)][VIX__PH(r)][VIX__PH(h)];
            ops[n++] = (vix_rerank_op){VIX__PH(r) == VIX__PH(h) ? VIX_RR_OP_MATCH : VIX_RR_OP_SUB,
                                       h, r, c - self};
            i--;
            j--;
        }
    }
    return n;
}

/* Row i of vix_rerank_align's table and its moves: vix__rr_extra's cells,
 * the same comparisons deciding the move.  The left neighbour and the
 * diagonal stay in registers (the byte stores to from would otherwise make
 * the compiler reload them). */
static void vix__rr_align_row(const float *sub, const float *ins, const size_t *at_h, float del,
                              const float *up, float *row, uint8_t *from, size_t nh)
{
    float left = row[0], diag = up[0];
    for (size_t j = 1; j <= nh; j++) {
        float u = up[j];
        float m = diag + sub[at_h[j]];
        float d = u + del;
        float in = left + ins[j];
        bool from_up = d < m;
        m = from_up ? d : m;
        bool from_left = in < m;
        m = from_left ? in : m;
        from[j] = from_left ? VIX__FROM_LEFT : from_up ? VIX__FROM_UP : VIX__FROM_DIAG;
        row[j] = m;
        left = m;
        diag = u;
    }
}

int vix_rerank_align(const vix_rerank *rr, const uint8_t *hyp, size_t nh, const uint8_t *ref,
                     size_t nr, vix_rerank_op *ret_ops, size_t *ret_n_ops, float *ret_extra)
{
    if (nh > VIX_RR_TOKENS_MAX)
        nh = VIX_RR_TOKENS_MAX;
    if (nr > VIX_RR_TOKENS_MAX)
        nr = VIX_RR_TOKENS_MAX;
    const size_t cols = nh + 1;
    /* the calibration aligns a few dozen pairs per resolve: names and
     * hypotheses of usual lengths fit on the stack */
    float cell_stack[VIX__ALIGN_STACK_CELLS];
    uint8_t from_stack[VIX__ALIGN_STACK_CELLS];
    bool small = (nr + 1) * cols <= VIX__ALIGN_STACK_CELLS;
    float *cell = small ? cell_stack : malloc((nr + 1) * cols * sizeof *cell);
    uint8_t *from = small ? from_stack : malloc((nr + 1) * cols);
    if (!cell || !from) {
        if (!small) {
            free(cell);
            free(from);
        }
        return ERD_ENOMEM;
    }
    const float skip = rr->opts.mode == VIX_RR_LOCAL ? (float)rr->opts.skip : 1e6f;
    float self = 0, lead = 0;
    /* per hypothesis phone, its insertion cost and its part of the sub
     * table's index, looked up once rather than once per row */
    float ins[VIX_RR_TOKENS_MAX + 1];
    size_t at_h[VIX_RR_TOKENS_MAX + 1];
    cell[0] = 0;
    for (size_t j = 1; j <= nh; j++) {
        uint8_t h = hyp[j - 1];
        ins[j] = rr->ins[VIX__WS(h)][VIX__PH(h)];
        at_h[j] = VIX__WS(h) * PHO_N_PHONES * PHO_N_PHONES + VIX__PH(h);
        cell[j] = cell[j - 1] + ins[j];
        self += rr->self[VIX__WS(h)][VIX__PH(h)];
    }
    /* the end of the path: row end_i, then its tail unheard at skip each */
    float best = nr == 0 ? cell[nh] : 1e30f;
    size_t end_i = 0;
    for (size_t i = 1; i <= nr; i++) {
        uint8_t r = ref[i - 1];
        float del = rr->del[VIX__PH(r)];
        float *row = cell + i * cols, *up = row - cols;
        /* sub[ws(r)][ws(h)][ph(r)][ph(h)] is sub[r's part + at_h[j]] */
        const float *sub = &rr->sub[0][0][0][0] +
                           VIX__WS(r) * 2 * PHO_N_PHONES * PHO_N_PHONES + VIX__PH(r) * PHO_N_PHONES;
        lead += del < skip ? del : skip;
        row[0] = lead;
        vix__rr_align_row(sub, ins, at_h, del, up, row, from + i * cols, nh);
        if (rr->opts.mode == VIX_RR_LOCAL) {
            float tail = row[nh] + (float)(nr - i) * skip;
            if (tail < best) {
                best = tail;
                end_i = i;
            }
        }
    }
    if (nr > 0 && cell[nr * cols + nh] < best) {
        best = cell[nr * cols + nh];
        end_i = nr;
    }
    size_t n = 0;
    for (size_t i = nr; i > end_i; i--)
        ret_ops[n++] = (vix_rerank_op){VIX_RR_OP_DEL, 0, ref[i - 1], skip};
    n += vix__rr_trace(rr, hyp, ref, from, cols, end_i, nh, skip, ret_ops + n);
    for (size_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
        vix_rerank_op t = ret_ops[a];
        ret_ops[a] = ret_ops[b];
        ret_ops[b] = t;
    }
    if (!small) {
        free(cell);
        free(from);
    }
    *ret_n_ops = n;
    *ret_extra = best - self;
    return ERD_OK;
}

/* ---- batched alignment: one hypothesis against many phrases at once ----
 *
 * vix__rr_extra is bound by the latency of its row recurrence (each cell
 * waits for its left neighbour).  Aligning VIX__LANES phrases side by side,
 * one per SIMD lane, runs that many independent recurrences per step; each
 * lane performs exactly the float operations of vix__rr_extra in the same
 * order, so the scores are bit for bit the same. */
#define VIX__LANES 16
#define VIX__ROW (VIX_RR_TOKENS_MAX + 1)
#define VIX__SYMS (2 * PHO_N_PHONES) /* a reference phone with its word-start bit */

/* One hypothesis with its channel costs laid out by position: the cost of
 * hearing hyp position j when reference symbol sym was said is
 * sub_j[j * VIX__SYMS + sym], so every lane of a step reads one row (the
 * AVX-512 kernel loads it into registers and permutes). */
typedef struct vix__rr_prep {
    size_t nh;
    float self;
    float ins[VIX__ROW];
    float sub_j[VIX__ROW * VIX__SYMS];
} vix__rr_prep;

static void vix__rr_prepare(const vix_rerank *rr, const uint8_t *hyp, size_t nh, vix__rr_prep *p)
{
    if (nh > VIX_RR_TOKENS_MAX)
        nh = VIX_RR_TOKENS_MAX;
    p->nh = nh;
    p->self = 0;
    p->ins[0] = 0;
    for (size_t j = 1; j <= nh; j++) {
        uint8_t h = hyp[j - 1];
        p->ins[j] = rr->ins[VIX__WS(h)][VIX__PH(h)];
        p->self += rr->self[VIX__WS(h)][VIX__PH(h)];
    }
    for (size_t j = 1; j <= nh; j++) {
        uint8_t h = hyp[j - 1];
        float *row = p->sub_j + j * VIX__SYMS;
        for (unsigned rw = 0; rw < 2; rw++)
            for (unsigned rp = 0; rp < PHO_N_PHONES; rp++)
                row[rw * PHO_N_PHONES + rp] = rr->sub[rw][VIX__WS(h)][rp][VIX__PH(h)];
    }
}

/* What a batch of VIX__LANES phrases needs at each of its rows, whichever
 * hypothesis it is aligned with: worked out once per resolve, not once per
 * hypothesis (the per-lane scalar work of a row cost a third of the
 * alignment).  Row i (1-based) of batch b is entry (b's first row + i - 1)
 * of each array, VIX__LANES lanes wide; a lane past its phrase's end has
 * sym 0, del of phone 0 and keeps its last row0. */
typedef struct vix__rr_plan {
    size_t n_batches;
    size_t *first_row; /* per batch, then the total */
    int32_t *sym;      /* reference symbol: word-start bit * PHO_N_PHONES + phone */
    float *del;        /* cost of deleting it */
    float *row0;       /* column 0 after the row: the phrase's unheard head so far */
    float *left;       /* the phrase's phones after this row, times skip (local mode) */
    uint16_t *act;     /* lanes still inside their phrase */
} vix__rr_plan;

/* N-best hypotheses often share their first phones ("time of the gypsies",
 * "time of the gypsy is"): columns 0..from of an alignment depend only on
 * those, so a hypothesis starts from the column another one left at from
 * (the same float values, bit for bit) and computes the rest.  in and out
 * are laid out like the plan's row0: one VIX__LANES-wide entry per plan
 * row. */
typedef struct vix__rr_share {
    size_t from;         /* columns 0..from are given: the plan's row0 when 0 */
    const float *in;     /* column from of every row */
    size_t n_out;        /* columns left for later hypotheses */
    const size_t *out_col;
    float *const *out;
} vix__rr_share;

/* Leaves pl empty: a failed vix__rr_plan_make frees what it had, and its
 * caller frees again on the way out. */
static void vix__rr_plan_free(vix__rr_plan *pl)
{
    void *bufs[] = {pl->first_row, pl->sym, pl->del, pl->row0, pl->left, pl->act};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    memset(pl, 0, sizeof *pl);
}

/* The plan of phrases ph[0..n) (longest first, as vix__rr_sort_pairs
 * leaves them) in batches of VIX__LANES.  ERD_ENOMEM when out of memory. */
static int vix__rr_plan_make(const vix_rerank *rr, const vix_rerank_phrase *const *ph, size_t n,
                             vix__rr_plan *pl)
{
    const float skip = rr->opts.mode == VIX_RR_LOCAL ? (float)rr->opts.skip : 1e6f;
    size_t nb = (n + VIX__LANES - 1) / VIX__LANES, rows = 0;
    memset(pl, 0, sizeof *pl);
    pl->n_batches = nb;
    pl->first_row = malloc((nb + 1) * sizeof *pl->first_row);
    if (!pl->first_row)
        return ERD_ENOMEM;
    for (size_t b = 0; b < nb; b++) {
        size_t maxnr = 0;
        for (size_t l = 0; l < VIX__LANES && b * VIX__LANES + l < n; l++) {
            size_t nr = ph[b * VIX__LANES + l]->n;
            nr = nr > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : nr;
            maxnr = nr > maxnr ? nr : maxnr;
        }
        pl->first_row[b] = rows;
        rows += maxnr;
    }
    pl->first_row[nb] = rows;
    pl->sym = malloc((rows * VIX__LANES + 1) * sizeof *pl->sym);
    pl->del = malloc((rows * VIX__LANES + 1) * sizeof *pl->del);
    pl->row0 = malloc((rows * VIX__LANES + 1) * sizeof *pl->row0);
    pl->left = malloc((rows * VIX__LANES + 1) * sizeof *pl->left);
    pl->act = malloc((rows + 1) * sizeof *pl->act);
    if (!pl->sym || !pl->del || !pl->row0 || !pl->left || !pl->act) {
        vix__rr_plan_free(pl);
        return ERD_ENOMEM;
    }
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *refs[VIX__LANES];
        size_t nrs[VIX__LANES];
        float lead[VIX__LANES];
        for (size_t l = 0; l < VIX__LANES; l++) {
            size_t k = b * VIX__LANES + l;
            refs[l] = k < n ? ph[k]->tokens : NULL;
            nrs[l] = k >= n ? 0 : ph[k]->n > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : ph[k]->n;
            lead[l] = 0;
        }
        size_t maxnr = pl->first_row[b + 1] - pl->first_row[b];
        for (size_t i = 1; i <= maxnr; i++) {
            size_t at = pl->first_row[b] + i - 1;
            uint16_t act = 0;
            for (size_t l = 0; l < VIX__LANES; l++) {
                int on = i <= nrs[l];
                uint8_t r = on ? refs[l][i - 1] : 0;
                unsigned rp = VIX__PH(r), rw = VIX__WS(r);
                float del = rr->del[rp];
                float lead_step = del < skip ? del : skip;
                if (on) {
                    act |= (uint16_t)(1u << l);
                    lead[l] += lead_step;
                }
                pl->sym[at * VIX__LANES + l] = (int32_t)(rw * PHO_N_PHONES + rp);
                pl->del[at * VIX__LANES + l] = del;
                pl->row0[at * VIX__LANES + l] = lead[l];
                pl->left[at * VIX__LANES + l] = (float)(nrs[l] - (on ? i : 0)) * skip;
            }
            pl->act[at] = act;
        }
    }
    return 0;
}

/* Extra cost (as vix__rr_extra) of p against batch b of the plan; lanes
 * whose phrase is empty are left to the caller. */
static inline __attribute__((always_inline)) void
vix__rr_lanes(const vix_rerank *rr, const vix__rr_prep *p, const vix__rr_plan *pl, size_t b,
              const vix__rr_share *sh, float *ret_extra)
{
    float row[VIX__ROW][VIX__LANES];
    float diag[VIX__LANES], best[VIX__LANES];
    const int local = rr->opts.mode == VIX_RR_LOCAL;
    const size_t nh = p->nh;
    const size_t r0 = pl->first_row[b], maxnr = pl->first_row[b + 1] - r0;

    for (size_t l = 0; l < VIX__LANES; l++) {
        best[l] = 1e30f;
        row[0][l] = 0;
    }
    for (size_t j = 1; j <= nh; j++)
        for (size_t l = 0; l < VIX__LANES; l++)
            row[j][l] = row[j - 1][l] + p->ins[j];
    for (size_t i = 1; i <= maxnr; i++) {
        const size_t at = (r0 + i - 1) * VIX__LANES;
        const int32_t *sym = pl->sym + at;
        const float *del = pl->del + at;
        const uint16_t act = pl->act[r0 + i - 1];
        for (size_t l = 0; l < VIX__LANES; l++) {
            diag[l] = row[sh->from][l];
            row[sh->from][l] = sh->in[at + l];
        }
        for (size_t j = sh->from + 1; j <= nh; j++) {
            const float in_cost = p->ins[j];
            for (size_t l = 0; l < VIX__LANES; l++) {
                float m = diag[l] + p->sub_j[j * VIX__SYMS + (size_t)sym[l]];
                float d = row[j][l] + del[l];
                float in = row[j - 1][l] + in_cost;
                diag[l] = row[j][l];
                m = d < m ? d : m;
                m = in < m ? in : m;
                row[j][l] = act >> l & 1 ? m : row[j][l];
            }
        }
        for (size_t k = 0; k < sh->n_out; k++)
            memcpy(sh->out[k] + at, row[sh->out_col[k]], sizeof row[0]);
        if (local)
            for (size_t l = 0; l < VIX__LANES; l++) {
                float tail = row[nh][l] + pl->left[at + l];
                best[l] = act >> l & 1 && tail < best[l] ? tail : best[l];
            }
    }
    for (size_t l = 0; l < VIX__LANES; l++) {
        float bl = row[nh][l] < best[l] ? row[nh][l] : best[l];
        float extra = bl - p->self;
        ret_extra[l] = extra > 0 ? extra : 0;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* vix__rr_lanes with the cost lookup done by register permutes, which the
 * compiler will not emit on its own (it loads the 16 lanes one by one).
 * _mm512_min_ps(a, b) is a < b ? a : b, the comparison the scalar code
 * makes, and no FMA is formed, so every lane's sums match vix__rr_extra's.
 *
 * A row's cells wait each on its left neighbour (an add and a min), so one
 * batch leaves the vector units idle half the time: two batches go side by
 * side through each row, sharing the hypothesis's cost row loads. */
typedef struct vix__rr_b512 {
    __m512 row[VIX__ROW];
    __m512 best;
    size_t r0, maxnr;
} vix__rr_b512;

/* Row i of a batch: each lane's reference symbol and deletion cost, and
 * which lanes are still inside their phrase. */
typedef struct vix__rr_r512 {
    __m512i sym;
    __m512 del, diag, left;
    __mmask16 mid, high, act;
} vix__rr_r512;

__attribute__((target("avx512f"))) static inline void
vix__rr_b512_init(vix__rr_b512 *st, const vix__rr_prep *p, const vix__rr_plan *pl, size_t b)
{
    st->r0 = pl->first_row[b];
    st->maxnr = pl->first_row[b + 1] - st->r0;
    st->best = _mm512_set1_ps(1e30f);
    st->row[0] = _mm512_setzero_ps();
    for (size_t j = 1; j <= p->nh; j++)
        st->row[j] = _mm512_add_ps(st->row[j - 1], _mm512_set1_ps(p->ins[j]));
}

/* Row i's lane data; column sh->from set from sh->in, the previous row's
 * value there becoming the first diagonal. */
__attribute__((target("avx512f"))) static inline vix__rr_r512
vix__rr_b512_begin(vix__rr_b512 *st, const vix__rr_plan *pl, const vix__rr_share *sh, size_t i)
{
    const size_t at = (st->r0 + i - 1) * VIX__LANES;
    vix__rr_r512 r;
    r.act = pl->act[st->r0 + i - 1];
    r.del = _mm512_loadu_ps(pl->del + at);
    /* each lane's symbol, 0..95: three two-register permutes look it up
     * in a row of sub_j, the symbol's top bits pick which (a gather would
     * load the 16 lanes one by one) */
    r.sym = _mm512_loadu_si512(pl->sym + at);
    r.mid = _mm512_cmpge_epi32_mask(r.sym, _mm512_set1_epi32(32));
    r.high = _mm512_cmpge_epi32_mask(r.sym, _mm512_set1_epi32(64));
    r.diag = st->row[sh->from];
    st->row[sh->from] = _mm512_loadu_ps(sh->in + at);
    r.left = st->row[sh->from];
    return r;
}

__attribute__((target("avx512f"))) static inline __m512 vix__rr_cost512(const float *tj,
                                                                        const vix__rr_r512 *r)
{
    __m512 c = _mm512_permutex2var_ps(_mm512_loadu_ps(tj), r->sym, _mm512_loadu_ps(tj + 16));
    c = _mm512_mask_mov_ps(c, r->mid, _mm512_permutex2var_ps(_mm512_loadu_ps(tj + 32), r->sym,
                                                             _mm512_loadu_ps(tj + 48)));
    return _mm512_mask_mov_ps(c, r->high, _mm512_permutex2var_ps(_mm512_loadu_ps(tj + 64), r->sym,
                                                                 _mm512_loadu_ps(tj + 80)));
}

/* Cell (i, j) from its three neighbours, as vix__rr_extra's loop body. */
__attribute__((target("avx512f"))) static inline void
vix__rr_cell512(vix__rr_b512 *st, vix__rr_r512 *r, size_t j, __m512 c, __m512 ins)
{
    __m512 up = st->row[j];
    __m512 m = _mm512_add_ps(r->diag, c);
    __m512 d = _mm512_add_ps(up, r->del);
    __m512 in = _mm512_add_ps(r->left, ins);
    r->diag = up;
    m = _mm512_min_ps(d, m);
    m = _mm512_min_ps(in, m);
    r->left = _mm512_mask_mov_ps(up, r->act, m);
    st->row[j] = r->left;
}

/* After row i: the columns later hypotheses start from, and in local mode
 * the path that leaves the phrase's remaining phones unheard. */
__attribute__((target("avx512f"))) static inline void
vix__rr_b512_end(vix__rr_b512 *st, const vix__rr_r512 *r, const vix__rr_plan *pl,
                 const vix__rr_share *sh, size_t i, size_t nh, int local)
{
    const size_t at = (st->r0 + i - 1) * VIX__LANES;
    for (size_t k = 0; k < sh->n_out; k++)
        _mm512_storeu_ps(sh->out[k] + at, st->row[sh->out_col[k]]);
    if (local) {
        __m512 tail = _mm512_add_ps(st->row[nh], _mm512_loadu_ps(pl->left + at));
        __mmask16 better = _mm512_mask_cmp_ps_mask(r->act, tail, st->best, _CMP_LT_OQ);
        st->best = _mm512_mask_mov_ps(st->best, better, tail);
    }
}

__attribute__((target("avx512f"))) static inline void
vix__rr_b512_finish(const vix__rr_b512 *st, const vix__rr_prep *p, float *ret_extra)
{
    __m512 bl = _mm512_min_ps(st->row[p->nh], st->best);
    __m512 extra = _mm512_sub_ps(bl, _mm512_set1_ps(p->self));
    _mm512_storeu_ps(ret_extra, _mm512_max_ps(extra, _mm512_setzero_ps()));
}

/* Batches b and b + 1 (when n_b is 2; b + 1 has no more rows than b, the
 * plan being longest first): ret_extra gets VIX__LANES extras per batch. */
__attribute__((target("avx512f"))) static void
vix__rr_lanes_avx512(const vix_rerank *rr, const vix__rr_prep *p, const vix__rr_plan *pl,
                     size_t b, size_t n_b, const vix__rr_share *sh, float *ret_extra)
{
    vix__rr_b512 st[2];
    const int local = rr->opts.mode == VIX_RR_LOCAL;
    const size_t nh = p->nh;
    vix__rr_b512_init(&st[0], p, pl, b);
    vix__rr_b512_init(&st[1], p, pl, n_b > 1 ? b + 1 : b);
    const size_t both = n_b > 1 ? st[1].maxnr : 0;
    for (size_t i = 1; i <= both; i++) {
        vix__rr_r512 r0 = vix__rr_b512_begin(&st[0], pl, sh, i);
        vix__rr_r512 r1 = vix__rr_b512_begin(&st[1], pl, sh, i);
        for (size_t j = sh->from + 1; j <= nh; j++) {
            const float *tj = p->sub_j + j * VIX__SYMS;
            const __m512 ins = _mm512_set1_ps(p->ins[j]);
            vix__rr_cell512(&st[0], &r0, j, vix__rr_cost512(tj, &r0), ins);
            vix__rr_cell512(&st[1], &r1, j, vix__rr_cost512(tj, &r1), ins);
        }
        vix__rr_b512_end(&st[0], &r0, pl, sh, i, nh, local);
        vix__rr_b512_end(&st[1], &r1, pl, sh, i, nh, local);
    }
    for (size_t i = both + 1; i <= st[0].maxnr; i++) {
        vix__rr_r512 r0 = vix__rr_b512_begin(&st[0], pl, sh, i);
        for (size_t j = sh->from + 1; j <= nh; j++)
            vix__rr_cell512(&st[0], &r0, j, vix__rr_cost512(p->sub_j + j * VIX__SYMS, &r0),
                            _mm512_set1_ps(p->ins[j]));
        vix__rr_b512_end(&st[0], &r0, pl, sh, i, nh, local);
    }
    vix__rr_b512_finish(&st[0], p, ret_extra);
    if (n_b > 1)
        vix__rr_b512_finish(&st[1], p, ret_extra + VIX__LANES);
}
__attribute__((target("avx2"))) static void
vix__rr_lanes_avx2(const vix_rerank *rr, const vix__rr_prep *p, const vix__rr_plan *pl, size_t b,
                   size_t n_b, const vix__rr_share *sh, float *ret_extra)
{
    for (size_t k = 0; k < n_b; k++)
        vix__rr_lanes(rr, p, pl, b + k, sh, ret_extra + k * VIX__LANES);
}
#endif
static void vix__rr_lanes_base(const vix_rerank *rr, const vix__rr_prep *p, const vix__rr_plan *pl,
                               size_t b, size_t n_b, const vix__rr_share *sh, float *ret_extra)
{
    for (size_t k = 0; k < n_b; k++)
        vix__rr_lanes(rr, p, pl, b + k, sh, ret_extra + k * VIX__LANES);
}

/* Extras of batches b .. b + n_b - 1 (n_b is 1 or 2). */
typedef void (*vix__rr_lanes_fn)(const vix_rerank *, const vix__rr_prep *, const vix__rr_plan *,
                                 size_t, size_t, const vix__rr_share *, float *);

static vix__rr_lanes_fn vix__rr_lanes_pick(void)
{
    switch (vix__isa()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case VIX__ISA_AVX512_VNNI:
    case VIX__ISA_AVX512_BF16:
    case VIX__ISA_AVX512:
        return vix__rr_lanes_avx512;
    case VIX__ISA_AVX2:
        return vix__rr_lanes_avx2;
#endif
    default:
        return vix__rr_lanes_base;
    }
}

/* The one-pair-at-a-time scoring, for when the batch buffers cannot be had;
 * by_hyp as vix_rerank_score_each's. */
static void vix__rr_score_pairwise(const vix_rerank *rr, const vix_rerank_hyp *hyps,
                                   size_t n_hyps, vix_rerank_cand *cands, size_t n_cands,
                                   double *acc, double *by_hyp, uint16_t *best_phrase)
{
    for (size_t c = 0; c < n_cands; c++) {
        const vix_rerank_cand *cd = &cands[c];
        acc[c] = 0;
        for (size_t h = 0; h < n_hyps; h++) {
            double best = 0;
            uint16_t pick = VIX_RR_NO_PHRASE;
            for (size_t p = 0; p < cd->n_phrases; p++) {
                const vix_rerank_phrase *ph = &cd->phrases[p];
                double s = vix_rerank_pair(rr, hyps[h].tokens, hyps[h].n, ph->tokens, ph->n);
                if (ph->derived)
                    s *= VIX_DERIVED_SCALE;
                if (s > best) {
                    best = s;
                    pick = p < VIX_RR_NO_PHRASE ? (uint16_t)p : VIX_RR_NO_PHRASE;
                }
            }
            if (by_hyp)
                by_hyp[h * n_cands + c] = best;
            if (best_phrase)
                best_phrase[h * n_cands + c] = pick;
            if (cd->n_phrases)
                acc[c] += hyps[h].weight * best;
        }
    }
}

/* Orders the pairs by phrase length, longest first, keeping the order of
 * equal lengths (a counting sort: a resolve has a thousand pairs or more,
 * and an insertion sort over them cost as much as a tenth of the rerank). */
static void vix__rr_sort_pairs(const size_t *cand, const vix_rerank_phrase *const *ph, size_t n,
                               size_t *ret_cand, const vix_rerank_phrase **ret_ph)
{
    size_t start[VIX_RR_TOKENS_MAX + 2] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len = ph[i]->n > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : ph[i]->n;
        start[VIX_RR_TOKENS_MAX - len + 1]++;
        /* the plan reads the phones next: entities lie all over the heap */
        __builtin_prefetch(ph[i]->tokens);
    }
    for (size_t b = 1; b < VIX_RR_TOKENS_MAX + 2; b++)
        start[b] += start[b - 1];
    for (size_t i = 0; i < n; i++) {
        size_t len = ph[i]->n > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : ph[i]->n;
        size_t at = start[VIX_RR_TOKENS_MAX - len]++;
        ret_cand[at] = cand[i];
        ret_ph[at] = ph[i];
    }
}

static size_t vix__rr_cut(size_t n)
{
    return n > VIX_RR_TOKENS_MAX ? VIX_RR_TOKENS_MAX : n;
}

/* How the hypotheses of a resolve share work: a twin (same phones as an
 * earlier one) copies that one's scores; any other starts from the columns
 * of the earlier distinct hypothesis with the longest head of phones in
 * common (vix__rr_share). */
typedef struct vix__rr_family {
    size_t *twin;    /* per hypothesis: the first with its phones (itself if none earlier) */
    size_t *parent;  /* the earlier distinct hypothesis it starts from */
    size_t *from;    /* how many phones they share; 0: it starts from scratch */
    float **col;     /* column from of the parent's alignment, per plan row; NULL when from is 0 */
    size_t *out_col; /* one hypothesis's vix__rr_share outputs, filled as it runs */
    float **out;
    float *cols;
} vix__rr_family;

/* Leaves f empty, as vix__rr_plan_free. */
static void vix__rr_family_free(vix__rr_family *f)
{
    free(f->twin);
    free(f->cols);
    memset(f, 0, sizeof *f);
}

static size_t vix__rr_common(const vix_rerank_hyp *a, const vix_rerank_hyp *b)
{
    size_t n = vix__rr_cut(a->n) < vix__rr_cut(b->n) ? vix__rr_cut(a->n) : vix__rr_cut(b->n);
    size_t k = 0;
    while (k < n && a->tokens[k] == b->tokens[k])
        k++;
    return k;
}

/* Each hypothesis's twin, parent and shared head, and room for the columns
 * (rows plan rows each).  ERD_ENOMEM when out of memory. */
static int vix__rr_family_make(const vix_rerank_hyp *hyps, size_t n, size_t rows,
                               vix__rr_family *f)
{
    memset(f, 0, sizeof *f);
    /* one block: size_t and pointer arrays alike, n entries each */
    f->twin = malloc((n + 1) * (4 * sizeof(size_t) + 2 * sizeof(float *)));
    if (!f->twin)
        return ERD_ENOMEM;
    f->parent = f->twin + n;
    f->from = f->parent + n;
    f->out_col = f->from + n;
    f->col = (float **)(void *)(f->out_col + n);
    f->out = f->col + n;
    size_t n_cols = 0;
    for (size_t h = 0; h < n; h++) {
        f->twin[h] = f->parent[h] = h;
        f->from[h] = 0;
        for (size_t j = 0; j < h && f->twin[h] == h; j++)
            if (hyps[j].n == hyps[h].n && memcmp(hyps[j].tokens, hyps[h].tokens, hyps[h].n) == 0)
                f->twin[h] = j;
        for (size_t j = 0; j < h && f->twin[h] == h; j++) {
            size_t k = f->twin[j] == j ? vix__rr_common(&hyps[j], &hyps[h]) : 0;
            if (k > f->from[h]) {
                f->from[h] = k;
                f->parent[h] = j;
            }
        }
        n_cols += f->twin[h] == h && f->from[h] > 0;
    }
    f->cols = malloc((n_cols * rows + 1) * VIX__LANES * sizeof *f->cols);
    if (!f->cols) {
        vix__rr_family_free(f);
        return ERD_ENOMEM;
    }
    for (size_t h = 0, k = 0; h < n; h++)
        f->col[h] = f->twin[h] == h && f->from[h] > 0 ? f->cols + k++ * rows * VIX__LANES : NULL;
    return ERD_OK;
}

/* Hypothesis h's vix__rr_share: where it starts, and the columns its
 * children start from. */
static vix__rr_share vix__rr_family_share(const vix__rr_family *f, size_t n, size_t h,
                                          const vix__rr_plan *pl)
{
    size_t n_out = 0;
    for (size_t g = h + 1; g < n; g++)
        if (f->col[g] && f->parent[g] == h) {
            f->out_col[n_out] = f->from[g];
            f->out[n_out++] = f->col[g];
        }
    return (vix__rr_share){f->from[h], f->col[h] ? f->col[h] : pl->row0, n_out, f->out_col,
                           f->out};
}

/* One hypothesis against every sorted pair: bh[c] its best phrase score
 * for candidate c, ph_of[c] (when not NULL) which phrase. */
static void vix__rr_score_hyp(const vix_rerank *rr, vix__rr_lanes_fn lanes,
                              const vix_rerank_hyp *hyp, const vix__rr_prep *prep,
                              const vix__rr_plan *plan, const vix__rr_share *sh,
                              const vix_rerank_cand *cands, size_t n_cands,
                              const size_t *sorted_cand, const vix_rerank_phrase *const *sorted_ph,
                              size_t n_pairs, double *bh, uint16_t *ph_of)
{
    for (size_t c = 0; c < n_cands; c++) {
        bh[c] = 0;
        if (ph_of)
            ph_of[c] = VIX_RR_NO_PHRASE;
    }
    float extra[2 * VIX__LANES];
    for (size_t b = 0; b < n_pairs; b += VIX__LANES) {
        size_t m = n_pairs - b < VIX__LANES ? n_pairs - b : VIX__LANES;
        /* batches go through the kernel two at a time */
        if (b % (2 * VIX__LANES) == 0)
            lanes(rr, prep, plan, b / VIX__LANES, b + VIX__LANES < n_pairs ? 2 : 1, sh, extra);
        const float *ex = extra + b % (2 * VIX__LANES);
        for (size_t l = 0; l < m; l++) {
            const vix_rerank_phrase *ph = sorted_ph[b + l];
            float e = ph->n ? ex[l] : vix__rr_extra(rr, hyp->tokens, hyp->n, ph->tokens, 0);
            double sc = vix__rr_similarity(rr, e, hyp->n);
            if (ph->derived)
                sc *= VIX_DERIVED_SCALE;
            size_t c = sorted_cand[b + l];
            if (sc > bh[c]) {
                bh[c] = sc;
                if (ph_of) {
                    size_t at = (size_t)(ph - cands[c].phrases);
                    ph_of[c] = at < VIX_RR_NO_PHRASE ? (uint16_t)at : VIX_RR_NO_PHRASE;
                }
            }
        }
    }
}

/* Every (candidate, phrase) pair scored lane-wise, hypothesis by
 * hypothesis; acc[c] sums hypotheses in the same order as the pairwise
 * loop.  by_hyp as vix_rerank_score_each's, or NULL. */
static int vix__rr_score_batched(const vix_rerank *rr, const vix_rerank_hyp *hyps,
                                 size_t n_hyps, const vix_rerank_cand *cands, size_t n_cands,
                                 double *acc, double *by_hyp, uint16_t *best_phrase)
{
    const vix__rr_lanes_fn lanes = vix__rr_lanes_pick();
    size_t n_pairs = 0;
    for (size_t c = 0; c < n_cands; c++)
        n_pairs += cands[c].n_phrases;
    vix__rr_plan plan = {0};
    vix__rr_family fam = {0};
    vix__rr_prep *prep = malloc(sizeof *prep);
    /* the pairs in candidate order, then sorted into the second half */
    size_t *pair_cand = malloc(2 * (n_pairs + 1) * sizeof *pair_cand);
    const vix_rerank_phrase **pair_ph = malloc(2 * (n_pairs + 1) * sizeof *pair_ph);
    /* best[h * n_cands + c]: hypothesis h's best phrase of candidate c */
    double *own_best = NULL, *best = by_hyp;
    if (!best && n_hyps && n_cands <= SIZE_MAX / sizeof(double) / n_hyps)
        best = own_best = malloc((n_hyps * n_cands + 1) * sizeof *best);
    int rc = ERD_ENOMEM;
    if (!prep || !pair_cand || !pair_ph || !best)
        goto out;
    n_pairs = 0;
    for (size_t c = 0; c < n_cands; c++) {
        acc[c] = 0;
        __builtin_prefetch(cands[c].phrases); /* the sort reads their lengths next */
        for (size_t p = 0; p < cands[c].n_phrases; p++) {
            pair_cand[n_pairs] = c;
            pair_ph[n_pairs++] = &cands[c].phrases[p];
        }
    }
    /* A batch runs as long as its longest phrase: phrases of like length
     * side by side waste fewer lanes (measured: half the lanes idle when
     * taken in candidate order).  A candidate's best is a max, which does
     * not depend on the order its phrases are scored in. */
    vix__rr_sort_pairs(pair_cand, pair_ph, n_pairs, pair_cand + n_pairs, pair_ph + n_pairs);
    const size_t *sorted_cand = pair_cand + n_pairs;
    const vix_rerank_phrase *const *sorted_ph = pair_ph + n_pairs;
    if ((rc = vix__rr_plan_make(rr, sorted_ph, n_pairs, &plan)) < 0 ||
        (rc = vix__rr_family_make(hyps, n_hyps, plan.first_row[plan.n_batches], &fam)) < 0)
        goto out;
    for (size_t h = 0; h < n_hyps; h++) {
        double *bh = best + h * n_cands;
        uint16_t *ph_of = best_phrase ? best_phrase + h * n_cands : NULL;
        size_t twin = fam.twin[h];
        if (twin < h) {
            /* n-best lists often hold the same sounds spelt two ways */
            memcpy(bh, best + twin * n_cands, n_cands * sizeof *bh);
            if (ph_of)
                memcpy(ph_of, best_phrase + twin * n_cands, n_cands * sizeof *ph_of);
        } else {
            vix__rr_prepare(rr, hyps[h].tokens, hyps[h].n, prep);
            vix__rr_share sh = vix__rr_family_share(&fam, n_hyps, h, &plan);
            vix__rr_score_hyp(rr, lanes, &hyps[h], prep, &plan, &sh, cands, n_cands, sorted_cand,
                              sorted_ph, n_pairs, bh, ph_of);
        }
        for (size_t c = 0; c < n_cands; c++)
            if (cands[c].n_phrases)
                acc[c] += hyps[h].weight * bh[c];
    }
    rc = ERD_OK;
out:
    vix__rr_family_free(&fam);
    vix__rr_plan_free(&plan);
    free(prep);
    free(pair_cand);
    free(pair_ph);
    free(own_best);
    return rc;
}

void vix_rerank_score_each(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                           vix_rerank_cand *cands, size_t n_cands, double *ret_by_hyp)
{
    vix_rerank_score_best(rr, hyps, n_hyps, cands, n_cands, ret_by_hyp, NULL);
}

void vix_rerank_score_best(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                           vix_rerank_cand *cands, size_t n_cands, double *ret_by_hyp,
                           uint16_t *ret_best_phrase)
{
    double wsum = 0;
    for (size_t h = 0; h < n_hyps; h++)
        wsum += hyps[h].weight;
    double *acc = malloc((n_cands + 1) * sizeof *acc);
    if (!acc) {
        /* out of memory: score pair by pair, one candidate at a time */
        for (size_t c = 0; c < n_cands; c++) {
            double one = 0, part;
            for (size_t h = 0; h < n_hyps; h++) {
                vix__rr_score_pairwise(rr, &hyps[h], 1, &cands[c], 1, &part,
                                       ret_by_hyp ? &ret_by_hyp[h * n_cands + c] : NULL,
                                       ret_best_phrase ? &ret_best_phrase[h * n_cands + c]
                                                       : NULL);
                one += part;
            }
            cands[c].second = wsum > 0 ? one / wsum : 0;
            cands[c].score = (1 - rr->opts.weight) * cands[c].first + rr->opts.weight * cands[c].second;
        }
        return;
    }
    if (vix__rr_score_batched(rr, hyps, n_hyps, cands, n_cands, acc, ret_by_hyp,
                              ret_best_phrase) < 0)
        vix__rr_score_pairwise(rr, hyps, n_hyps, cands, n_cands, acc, ret_by_hyp,
                               ret_best_phrase);
    for (size_t c = 0; c < n_cands; c++) {
        vix_rerank_cand *cd = &cands[c];
        cd->second = wsum > 0 ? acc[c] / wsum : 0;
        cd->score = (1 - rr->opts.weight) * cd->first + rr->opts.weight * cd->second;
    }
    free(acc);
}

void vix_rerank_score(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                      vix_rerank_cand *cands, size_t n_cands)
{
    vix_rerank_score_each(rr, hyps, n_hyps, cands, n_cands, NULL);
}
