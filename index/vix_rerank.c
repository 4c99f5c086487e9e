#include "index/vix_rerank.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
        .weight = 0.7, .candidates = 100, .mode = VIX_RR_LOCAL, .skip = 1.0, .temperature = 2.0};
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
        double x;
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
        } else if (!strcmp(kv, "skip")) {
            if ((rc = vix__rr_num(kv, v, 0, 100, &o.skip, diag)) < 0)
                return rc;
        } else if (!strcmp(kv, "temperature")) {
            if ((rc = vix__rr_num(kv, v, 0.01, 100, &o.temperature, diag)) < 0)
                return rc;
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

void vix_rerank_score(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                      vix_rerank_cand *cands, size_t n_cands)
{
    double wsum = 0;
    for (size_t h = 0; h < n_hyps; h++)
        wsum += hyps[h].weight;
    for (size_t c = 0; c < n_cands; c++) {
        vix_rerank_cand *cd = &cands[c];
        double acc = 0;
        for (size_t h = 0; h < n_hyps && cd->n_phrases; h++) {
            double best = 0;
            for (size_t p = 0; p < cd->n_phrases; p++) {
                const vix_rerank_phrase *ph = &cd->phrases[p];
                double s = vix_rerank_pair(rr, hyps[h].tokens, hyps[h].n, ph->tokens, ph->n);
                if (ph->derived)
                    s *= VIX_DERIVED_SCALE;
                best = s > best ? s : best;
            }
            acc += hyps[h].weight * best;
        }
        cd->second = wsum > 0 ? acc / wsum : 0;
        cd->score = (1 - rr->opts.weight) * cd->first + rr->opts.weight * cd->second;
    }
}
