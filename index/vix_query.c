/* The resolve path. */
#include "index/vix_resolve_internal.h"

/* Evidence weight of hypothesis `rank` (0 = best).  Rank decays
 * harmonically; the recogniser's score, when given, discounts hypotheses far
 * below the best one.  Scores are log-likelihoods in the recogniser's own
 * units, so only a gentle slope is safe across recognisers. */
static double vix__hyp_weight(const vix_hypothesis *hyps, size_t n, size_t rank)
{
    double w = 1.0 / (double)(rank + 1);
    double best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (hyps[i].has_score && hyps[i].score > best)
            best = hyps[i].score;
    if (hyps[rank].has_score && isfinite(best) && isfinite(hyps[rank].score))
        w *= fmax(0.25, exp(1e-5 * (hyps[rank].score - best)));
    return w;
}

/* A result with its first-stage score, which calibration looks at. */
typedef struct vix__ranked {
    vix_result res;
    double first;
    const vix__entity *ent; /* in the view the resolve holds */
    size_t rank_first;      /* place in the first stage's list, the rerank's candidate index */
} vix__ranked;

static int vix__cmp_score(const void *a, const void *b)
{
    const vix_result *x = &((const vix__ranked *)a)->res, *y = &((const vix__ranked *)b)->res;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->rowid > y->rowid) - (x->rowid < y->rowid);
}

/* Weighted share of hypotheses whose own best-aligned result, among the
 * first VIX_CALIB_AGREE_RANKS, is each of them: a list that agrees on one
 * entity is more often right than one split between several, which the
 * blended score (a weighted mean) cannot tell apart. */
static void vix__agreement(const vix_rerank_hyp *hyps, size_t n_hyps, const vix__ranked *found,
                           size_t n_found, const double *by_hyp, double *ret_agree)
{
    size_t m = n_found < VIX_CALIB_AGREE_RANKS ? n_found : VIX_CALIB_AGREE_RANKS;
    double wsum = 0;
    for (size_t i = 0; i < n_found; i++)
        ret_agree[i] = 0;
    for (size_t h = 0; h < n_hyps; h++) {
        double best = -1;
        size_t best_c = 0;
        /* by_hyp holds each candidate's best phrase, in first-stage order:
         * the first of equals in reranked order wins, as phrase by phrase */
        for (size_t c = 0; c < m; c++) {
            double s = by_hyp[h * n_found + found[c].rank_first];
            if (found[c].ent->n_phrases && s > best) {
                best = s;
                best_c = c;
            }
        }
        if (best >= 0)
            ret_agree[best_c] += hyps[h].weight;
        wsum += hyps[h].weight;
    }
    for (size_t i = 0; wsum > 0 && i < m; i++)
        ret_agree[i] /= wsum;
}

/* The learned second stage: replaces each candidate's blended score with
 * the ranker's probability, and shows the features to an observer. */
static int vix__learned_rank(vix_resolver *r, const vix_rerank_hyp *hyps, size_t n_hyps,
                             const vix_rerank_cand *cands, vix__ranked *found, size_t n_found,
                             const double *by_hyp, erd_diag *diag)
{
    double *x = malloc(n_found * (VIX_RANKER_NFEAT + 1) * sizeof *x);
    vix_result *seen = r->rank_observer ? malloc(n_found * sizeof *seen) : NULL;
    if (!x || (r->rank_observer && !seen)) {
        free(x);
        free(seen);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    vix_rank_input in = {hyps, n_hyps, cands, n_found, by_hyp};
    vix_rank_features(&in, x);
    if (r->rank_observer) {
        for (size_t i = 0; i < n_found; i++)
            seen[i] = found[i].res;
        r->rank_observer(r->rank_observer_ctx, x, seen, n_found);
    }
    if (r->ranker) {
        double *p = x + n_found * VIX_RANKER_NFEAT;
        vix_ranker_probs(r->ranker, x, n_found, p);
        for (size_t i = 0; i < n_found; i++)
            found[i].res.score = p[i];
    }
    free(x);
    free(seen);
    return ERD_OK;
}

int vix_resolve(vix_resolver *r, const char *catalog, const vix_hypothesis *hyps, size_t n,
                size_t k, vix_result *ret_results, size_t *ret_n, vix_timing *timing,
                erd_diag *diag)
{
    return vix_resolve_features(r, catalog, hyps, n, k, ret_results, ret_n, timing, NULL, diag);
}

int vix_resolve_features(vix_resolver *r, const char *catalog, const vix_hypothesis *hyps,
                         size_t n, size_t k, vix_result *ret_results, size_t *ret_n,
                         vix_timing *timing, double *ret_features, erd_diag *diag)
{
    /* Without a view of its own, a caller's results point into the
     * resolver's current one: fine for tools that never sync. */
    vix_view *v = vix_resolver_acquire(r);
    int rc = vix_resolve_in(r, v, catalog, hyps, n, k, ret_results, ret_n, timing, ret_features,
                            diag);
    vix_view_release(v);
    return rc;
}

/* The open-set features of the first n_out results, and with ex their
 * alignments: each result's best phrase per hypothesis, aligned again with
 * its steps (a few alignments per result, against the rerank's thousands). */
static int vix__fits(const vix_resolver *r, const vix_rerank_hyp *hyps, size_t used,
                     const vix__ranked *found, size_t n_out, const uint16_t *picks,
                     size_t n_found, vix_calib_fitness *ret_fit, vix_explain *ex, erd_diag *diag)
{
    vix_explain_align *work = malloc(sizeof *work);
    int rc = work ? ERD_OK : ERD_ENOMEM;
    if (ex)
        ex->n_results = n_out; /* from here on vix_explain_free frees their alignments */
    for (size_t i = 0; rc == ERD_OK && i < n_out; i++) {
        vix_explain_align *align = NULL;
        if (ex) {
            align = ex->results[i].align = calloc(used, sizeof *align);
            if (!align) {
                rc = ERD_ENOMEM;
                break;
            }
        }
        rc = vix_explain_fit(r->rerank, hyps, used, found[i].ent->phrases, found[i].ent->n_phrases,
                             picks + found[i].rank_first, n_found, work, &ret_fit[i], align);
    }
    free(work);
    return rc < 0 ? erd_fail(diag, rc, "out of memory aligning the results") : ERD_OK;
}

/* What an explanation tells of the hypotheses and the scores' options. */
static void vix__explain_hyps(const vix_resolver *r, vix_explain *ex, const vix_phrase *ph,
                              size_t index, const vix_rerank_hyp *rr_hyp, double w)
{
    vix_explain_hyp *eh = &ex->hyps[ex->n_hyps++];
    eh->index = index;
    memcpy(eh->text, ph->text, sizeof eh->text);
    eh->weight = w;
    eh->n_phones = rr_hyp ? rr_hyp->n
                          : vix_rerank_pack(ph->tokens, ph->n_tokens, eh->phones, VIX_RR_TOKENS_MAX);
    if (rr_hyp)
        memcpy(eh->phones, rr_hyp->tokens, rr_hyp->n);
    ex->reranked = r->rerank != NULL;
    if (r->rerank) {
        ex->rerank_weight = vix_rerank_get_opts(r->rerank)->weight;
        ex->temperature = vix_rerank_get_opts(r->rerank)->temperature;
    }
}

int vix_resolve_in(vix_resolver *r, vix_view *view, const char *catalog,
                   const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                   size_t *ret_n, vix_timing *timing, double *ret_features, erd_diag *diag)
{
    return vix_resolve_explain(r, view, catalog, hyps, n, k, ret_results, ret_n, timing,
                               ret_features, NULL, diag);
}

int vix_resolve_explain(vix_resolver *r, vix_view *view, const char *catalog,
                        const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                        size_t *ret_n, vix_timing *timing, double *ret_features,
                        vix_explain **ret_explain, erd_diag *diag)
{
    const vix__catalog *cat = NULL;
    vix_explain *ex = NULL;
    vix_calib_fitness *fits = NULL;
    vix_timing tm = {0};
    float *q = NULL, *v = NULL, *scores = NULL, *dscores = NULL;
    int64_t *ids = NULL, *dids = NULL;
    vix_phrase *ph = NULL;
    uint8_t *hyp_phones = NULL;
    vix_rerank_hyp *rr_hyps = NULL;
    vix_rerank_cand *rr_cands = NULL;
    vix__ranked *found = NULL;
    double *cal = NULL, *by_hyp = NULL;
    uint16_t *picks = NULL; /* per hypothesis and candidate, the phrase that scored best */
    uint64_t *seen = NULL;
    size_t used = 0, n_phones = 0;
    double wsum = 0;
    int rc = ERD_OK;

    cat = vix__view_find(view, catalog);
    if (!cat)
        return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%s\"", catalog);
    const vix__base *base = cat->base;
    const vix__delta *delta = cat->delta;
    if (n == 0 || k == 0)
        return erd_fail(diag, ERD_EINVAL, "need at least one hypothesis and k >= 1");
    if (n > VIX_HYPS_MAX)
        n = VIX_HYPS_MAX;

    size_t dim = pho_encoder_dim(base->enc);
    /* With rerank, the first stage gathers more entities than asked for so
     * the second can promote one from below the top k. */
    size_t want = k;
    if (r->rerank && vix_rerank_get_opts(r->rerank)->candidates > want)
        want = vix_rerank_get_opts(r->rerank)->candidates;
    size_t cand = r->candidates > 4 * k ? r->candidates : 4 * k;
    if (r->rerank && cand < 2 * want)
        cand = 2 * want;
    if (cand > VIX_CANDIDATES_MAX)
        cand = VIX_CANDIDATES_MAX;
    /* Base results the delta masks are dropped: fetch that many more. */
    size_t cand_base = cand + (delta ? delta->n_masked : 0);
    if (cand_base > VIX_CANDIDATES_MAX)
        cand_base = VIX_CANDIDATES_MAX;
    size_t cand_delta = delta && delta->index ? cand : 0;
    q = calloc(dim, sizeof *q);
    v = malloc(dim * sizeof *v);
    scores = malloc(cand_base * sizeof *scores);
    ids = malloc(cand_base * sizeof *ids);
    dscores = malloc((cand_delta + 1) * sizeof *dscores);
    dids = malloc((cand_delta + 1) * sizeof *dids);
    ph = malloc(sizeof *ph);
    found = malloc(want * sizeof *found);
    int calibrate = ret_features || base->calibrated || ret_explain;
    if (calibrate)
        cal = malloc(want * (3 + VIX_CALIB_NFEAT + 1) * sizeof *cal);
    if (calibrate && r->rerank)
        fits = malloc((k < want ? k : want) * sizeof *fits);
    if (ret_explain && vix_explain_create(n, k, &ex, diag) < 0) {
        rc = ERD_ENOMEM;
        goto out;
    }
    if (r->rerank) {
        hyp_phones = malloc(n * VIX_RR_TOKENS_MAX);
        rr_hyps = malloc(n * sizeof *rr_hyps);
        rr_cands = malloc(want * sizeof *rr_cands);
        if (calibrate || r->ranker || r->rank_observer)
            by_hyp = malloc(n * want * sizeof *by_hyp);
        if (calibrate)
            picks = malloc(n * want * sizeof *picks);
    }
    /* open addressing over the ids taken so far, at most half full */
    size_t seen_cap = 16;
    while (seen_cap < 2 * want)
        seen_cap *= 2;
    seen = calloc(seen_cap, sizeof *seen);
    if (!q || !v || !scores || !ids || !dscores || !dids || !ph || !found || !seen ||
        (calibrate && (!cal || (r->rerank && !fits))) ||
        (r->rerank && (!hyp_phones || !rr_hyps || !rr_cands ||
                       ((calibrate || r->ranker || r->rank_observer) && !by_hyp) ||
                       (calibrate && !picks)))) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }

    /* The weighted sum of the hypotheses' unit vectors: its inner product
     * with an entity vector is the weighted sum of their cosines, so one
     * search scores every entity against the whole n-best list. */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = vix__ns();
        rc = vix_phrase_prepare(base->g2p, NULL, hyps[i].text, hyps[i].len, ph, diag);
        tm.g2p_ns += vix__ns() - t0;
        if (rc == ERD_EEMPTY)
            continue;
        if (rc < 0)
            goto out;
        t0 = vix__ns();
        pho_phrase phrase = {.text = ph->text, .tokens = ph->tokens, .n_tokens = ph->n_tokens};
        rc = pho_encoder_encode(base->enc, &phrase, v);
        tm.encode_ns += vix__ns() - t0;
        if (rc < 0) {
            rc = erd_fail(diag, rc, "encoding hypothesis %zu failed", i);
            goto out;
        }
        double w = vix__hyp_weight(hyps, n, i);
        for (size_t d = 0; d < dim; d++)
            q[d] += (float)w * v[d];
        if (r->rerank) {
            uint8_t *dst = hyp_phones + used * VIX_RR_TOKENS_MAX;
            rr_hyps[used] = (vix_rerank_hyp){
                .tokens = dst,
                .n = vix_rerank_pack(ph->tokens, ph->n_tokens, dst, VIX_RR_TOKENS_MAX),
                .weight = w};
        }
        if (ex)
            vix__explain_hyps(r, ex, ph, i, r->rerank ? &rr_hyps[used] : NULL, w);
        if (used == 0)
            n_phones = ph->n_tokens;
        wsum += w;
        used++;
    }
    if (used == 0) {
        rc = erd_fail(diag, ERD_EEMPTY, "no hypothesis has anything speakable");
        goto out;
    }
    double norm = 0;
    for (size_t d = 0; d < dim; d++)
        norm += (double)q[d] * q[d];
    norm = sqrt(norm);
    if (norm <= 0) {
        rc = erd_fail(diag, ERD_EEMPTY, "hypotheses carry no phonetic features");
        goto out;
    }
    for (size_t d = 0; d < dim; d++)
        q[d] = (float)(q[d] / norm);

    uint64_t t0 = vix__ns();
    rc = vix_index_search(base->index, 1, q, cand_base, scores, ids, diag);
    if (rc == ERD_OK && cand_delta)
        rc = vix_index_search(delta->index, 1, q, cand_delta, dscores, dids, diag);
    tm.search_ns = vix__ns() - t0;
    if (rc < 0)
        goto out;

    /* An entity owns one vector per name and spoken variant: keep its best.
     * Both lists come best first, so merging them visits every id's best
     * vector first. */
    t0 = vix__ns();
    size_t n_found = 0, bi = 0, di = 0;
    while (n_found < want) {
        bool from_base = bi < cand_base && ids[bi] >= 0;
        bool from_delta = di < cand_delta && dids[di] >= 0;
        if (from_base && from_delta)
            from_base = scores[bi] >= dscores[di];
        else if (!from_base && !from_delta)
            break;
        int64_t id = from_base ? ids[bi] : dids[di];
        float score = from_base ? scores[bi++] : dscores[di++];
        /* slot value id + 1: never the empty 0, as a negative id ended
         * the lists above */
        size_t slot = (size_t)erd_fnv1a64(ERD_FNV1A64_OFFSET, &id, sizeof id) & (seen_cap - 1);
        while (seen[slot] && seen[slot] != (uint64_t)id + 1)
            slot = (slot + 1) & (seen_cap - 1);
        if (seen[slot])
            continue;
        const vix__entity *e = from_base ? (vix__masked(delta, id) ? NULL
                                                                   : vix__set_find(&base->set, id))
                                         : vix__delta_find(delta, id);
        if (!e)
            continue; /* vector of an entity deleted or replaced since the build */
        seen[slot] = (uint64_t)id + 1; /* a masked base id may come again from the delta */
        double s = (double)score * norm / wsum; /* weighted mean cosine */
        s = s < 0 ? 0 : s > 1 ? 1 : s;
        found[n_found] = (vix__ranked){
            .res = {.rowid = e->rowid, .ext_id = e->ext_id, .name = e->name, .score = s},
            .first = s,
            .ent = e,
            .rank_first = n_found};
        n_found++;
    }
    tm.aggregate_ns = vix__ns() - t0;
    if (r->rerank) {
        t0 = vix__ns();
        for (size_t i = 0; i < n_found; i++)
            rr_cands[i] = (vix_rerank_cand){.phrases = found[i].ent->phrases,
                                            .n_phrases = found[i].ent->n_phrases,
                                            .first = found[i].first};
        /* by_hyp is for the ranker and, with picks, for the calibration:
         * agreement, and which phrase each result's alignment features
         * come from */
        vix_rerank_score_best(r->rerank, rr_hyps, used, rr_cands, n_found, by_hyp, picks);
        for (size_t i = 0; i < n_found; i++) {
            double s = rr_cands[i].score;
            found[i].res.score = s < 0 ? 0 : s > 1 ? 1 : s;
        }
        if ((r->ranker || r->rank_observer) && n_found &&
            (rc = vix__learned_rank(r, rr_hyps, used, rr_cands, found, n_found, by_hyp, diag)) < 0)
            goto out;
        tm.rerank_ns = vix__ns() - t0;
    }
    qsort(found, n_found, sizeof *found, vix__cmp_score);
    size_t n_out = n_found < k ? n_found : k;
    for (size_t i = 0; i < n_out; i++)
        ret_results[i] = found[i].res;
    if (calibrate && n_found) {
        /* Features come from the whole candidate list, not the k asked
         * for, so a result's probability does not depend on k. */
        double *sc = cal, *first = cal + want, *agree = cal + 2 * want, *x = cal + 3 * want;
        double *p = x + want * VIX_CALIB_NFEAT;
        t0 = vix__ns();
        for (size_t i = 0; i < n_found; i++) {
            sc[i] = found[i].res.score;
            first[i] = found[i].first;
            agree[i] = 0;
        }
        if (r->rerank)
            vix__agreement(rr_hyps, used, found, n_found, by_hyp, agree);
        if (r->rerank &&
            (rc = vix__fits(r, rr_hyps, used, found, n_out, picks, n_found, fits, ex, diag)) < 0)
            goto out;
        vix_calib_features(sc, first, agree, r->rerank ? fits : NULL, n_out, n_found, used,
                           n_phones, x);
        if (ret_features)
            memcpy(ret_features, x, n_out * VIX_CALIB_NFEAT * sizeof *x);
        if (base->calibrated) {
            vix_calib_probs(r->calib, x, n_out, p);
            for (size_t i = 0; i < n_out; i++)
                ret_results[i].score = p[i];
        }
        tm.aggregate_ns += vix__ns() - t0;
    }
    for (size_t i = 0; ex && i < n_out; i++) {
        vix_explain_result *er = &ex->results[i];
        er->first = found[i].first;
        er->second = r->rerank ? rr_cands[found[i].rank_first].second : 0;
        er->rerank = found[i].res.score;
        memcpy(er->features, cal + 3 * want + i * VIX_CALIB_NFEAT, sizeof er->features);
        er->score = ret_results[i].score;
        ex->n_results = i + 1;
        ex->calibrated = base->calibrated;
    }
    *ret_n = n_out;
    if (timing)
        *timing = tm;
    if (ret_explain) {
        *ret_explain = ex;
        ex = NULL;
    }
out:
    vix_explain_free(ex);
    free(fits);
    free(q);
    free(v);
    free(scores);
    free(ids);
    free(dscores);
    free(dids);
    free(ph);
    free(found);
    free(cal);
    free(by_hyp);
    free(picks);
    free(seen);
    free(hyp_phones);
    free(rr_hyps);
    free(rr_cands);
    return rc;
}
