/* The resolve path: one query struct (vix__query) goes through named stages -
 * normalise + G2P + encode of each hypothesis, search of the base and delta
 * indexes, aggregate (an entity's best vector), rerank (phone alignment, then
 * the learned ranker), calibrate (open-set features and probabilities),
 * explain - with its scratch memory carved from one block per request. */
#include "index/vix_assist.h"
#include "index/vix_resolve_internal.h"

/* Evidence weight of hypothesis `rank` (0 = best): 1 / sqrt(rank + 1).
 * In noise the recogniser's first guess is often no better than its
 * fourth, and a title garbled in one hypothesis survives in another, so
 * the list is weighed nearly evenly; the recogniser's scores do not enter
 * (their units differ from one recogniser to the next, and on simulated
 * queries a slope on them only lost).  Chosen on held-out simulated
 * queries (phonetics/models/README.md): the harmonic decay with a score
 * slope of 1e-5 that it replaces answered 1.2 points fewer right. */
static double vix__hyp_weight(size_t rank)
{
    return 1.0 / sqrt((double)(rank + 1));
}

/* A result with its first-stage score, which calibration looks at. */
typedef struct vix__ranked {
    vix_result res;
    double rerank; /* its own rerank score (res.score is its place's, once ordered) */
    double first;
    const vix__entity *ent; /* in the view the resolve holds */
    size_t rank_first;      /* place in the first stage's list, the rerank's candidate index */
} vix__ranked;

/* Negative when a goes before b: the better score, then the lower rowid. */
static int vix__cmp_score(const vix__ranked *a, const vix__ranked *b)
{
    const vix_result *x = &a->res, *y = &b->res;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->rowid > y->rowid) - (x->rowid < y->rowid);
}

/* p[0..n) best first, by glibc qsort's merge sort step for step (the same
 * halves, the left run first among equals), so the order is the one qsort
 * gave even where scores do not compare (NaN); without its indirect calls
 * and the malloc it makes for a list this long.  tmp has room for n. */
static void vix__sort_ranked(const vix__ranked **p, size_t n, const vix__ranked **tmp)
{
    if (n <= 1)
        return;
    size_t n1 = n / 2, n2 = n - n1;
    const vix__ranked **b1 = p, **b2 = p + n1, **t = tmp;
    vix__sort_ranked(b1, n1, tmp);
    vix__sort_ranked(b2, n2, tmp);
    while (n1 > 0 && n2 > 0) {
        if (vix__cmp_score(*b1, *b2) <= 0) {
            *t++ = *b1++;
            n1--;
        } else {
            *t++ = *b2++;
            n2--;
        }
    }
    memcpy(t, b1, n1 * sizeof *t);
    memcpy(p, tmp, (n - n2) * sizeof *p);
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

/* One resolve as it goes through the stages: what was asked, the sizes it
 * works with, its scratch memory (one block, vix__query_carve) and what each
 * stage hands to the next. */
typedef struct vix__query {
    vix_resolver *r;
    const vix__base *base;
    const vix__delta *delta;
    const vix_hypothesis *hyps;
    size_t n, k;
    vix_explain *ex;  /* NULL: no explanation asked for */
    bool calibrate;   /* the open-set features are wanted: by the caller, the calibration or ex */
    bool learned;     /* the learned ranker or its observer sees the candidates */
    size_t dim, want, cand_base, cand_delta, seen_cap;
    size_t n_fits_cap; /* results whose alignments are fitted: k, or the order's top */
    uint32_t fits_valid; /* bit i: fits[i] holds found[i]'s fit in the current order */
    bool have_cq;      /* cq computed (it depends on the hypotheses alone) */
    size_t n_ordered;  /* leading results the order model placed, by order_score */
    double order_score[VIX_ORDER_TOP_MAX];
    vix_calib_query cq;

    /* scratch */
    float *q, *v, *scores, *dscores;
    int64_t *ids, *dids;
    vix_phrase *ph;
    vix__ranked *found, *found_tmp;
    const vix__ranked **order; /* 2 * want: for vix__sort_found */
    double *cal, *by_hyp, *rank_x;
    vix_result *rank_seen;
    uint16_t *picks; /* per hypothesis and candidate, the phrase that scored best */
    uint64_t *seen;  /* open addressing over the ids taken so far, at most half full */
    uint8_t *hyp_phones;
    vix_rerank_hyp *rr_hyps;
    vix_rerank_cand *rr_cands;
    vix_calib_fitness *fits;
    vix_explain_align *fit_work;

    /* what the stages found */
    size_t used, n_phones, n_found, n_out;
    double wsum, norm;
    double command; /* weighted sum of the hypotheses' command scores */
    vix_timing tm;
} vix__query;

/* Bump allocation in one block: a resolve makes a single malloc, not one
 * per buffer.  Without a block it only measures. */
typedef struct vix__arena {
    char *mem;
    size_t used;
} vix__arena;

static void *vix__take(vix__arena *a, size_t n, size_t size)
{
    size_t off = (a->used + (_Alignof(max_align_t) - 1)) & ~(size_t)(_Alignof(max_align_t) - 1);
    a->used = off + n * size;
    return a->mem ? a->mem + off : NULL;
}

/* Every scratch buffer of the query, in a; run once to measure and once to
 * hand the buffers out. */
static void vix__query_carve(vix__query *qy, vix__arena *a)
{
    bool rerank = qy->r->rerank != NULL;
    qy->q = vix__take(a, qy->dim, sizeof *qy->q);
    qy->v = vix__take(a, qy->dim, sizeof *qy->v);
    qy->scores = vix__take(a, qy->cand_base, sizeof *qy->scores);
    qy->ids = vix__take(a, qy->cand_base, sizeof *qy->ids);
    qy->dscores = vix__take(a, qy->cand_delta + 1, sizeof *qy->dscores);
    qy->dids = vix__take(a, qy->cand_delta + 1, sizeof *qy->dids);
    qy->ph = vix__take(a, 1, sizeof *qy->ph);
    qy->found = vix__take(a, qy->want, sizeof *qy->found);
    qy->found_tmp = vix__take(a, qy->want, sizeof *qy->found_tmp);
    qy->order = vix__take(a, 2 * qy->want, sizeof *qy->order);
    qy->seen = vix__take(a, qy->seen_cap, sizeof *qy->seen);
    if (qy->calibrate)
        qy->cal = vix__take(a, qy->want * (3 + VIX_CALIB_NFEAT + 1), sizeof *qy->cal);
    if (!rerank)
        return;
    qy->hyp_phones = vix__take(a, qy->n * VIX_RR_TOKENS_MAX, 1);
    qy->rr_hyps = vix__take(a, qy->n, sizeof *qy->rr_hyps);
    qy->rr_cands = vix__take(a, qy->want, sizeof *qy->rr_cands);
    if (qy->calibrate || qy->learned)
        qy->by_hyp = vix__take(a, qy->n * qy->want, sizeof *qy->by_hyp);
    if (qy->learned)
        qy->rank_x = vix__take(a, qy->want * (VIX_RANKER_NFEAT + 1), sizeof *qy->rank_x);
    if (qy->r->rank_observer)
        qy->rank_seen = vix__take(a, qy->want, sizeof *qy->rank_seen);
    if (qy->calibrate) {
        qy->picks = vix__take(a, qy->n * qy->want, sizeof *qy->picks);
        qy->fits = vix__take(a, qy->n_fits_cap, sizeof *qy->fits);
        qy->fit_work = vix__take(a, 1, sizeof *qy->fit_work);
    }
}

/* Why catalog is not in the view: never built or unknown, or an index
 * that did not load. */
static int vix__not_served(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    char name[72];
    erd_diag d;
    for (size_t i = 0; vix_resolver_unavailable(r, i, name, sizeof name, &d) == ERD_OK; i++)
        if (strcmp(name, catalog) == 0)
            return erd_fail(diag, ERD_ENOCATALOG,
                            "catalog \"%s\" is not served: its index did not load (%.160s); "
                            "rebuild it",
                            catalog, d.msg);
    return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%s\"", catalog);
}

/* The catalog's parts, how many candidates each list is asked for, and the
 * scratch memory (*ret_block, for the caller to free). */
static int vix__query_plan(vix__query *qy, vix_view *view, const char *catalog, char **ret_block,
                           erd_diag *diag)
{
    vix_resolver *r = qy->r;
    const vix__catalog *cat = vix__view_find(view, catalog);
    if (!cat)
        return vix__not_served(r, catalog, diag);
    qy->base = cat->base;
    qy->delta = cat->delta;
    if (qy->n == 0 || qy->k == 0)
        return erd_fail(diag, ERD_EINVAL, "need at least one hypothesis and k >= 1");
    if (qy->n > VIX_HYPS_MAX)
        qy->n = VIX_HYPS_MAX;
    /* the order of the top results reads their open-set features */
    qy->calibrate = qy->calibrate || qy->base->calibrated || (r->rerank && r->order);
    qy->learned = r->rerank && (r->ranker || r->rank_observer);
    qy->dim = pho_encoder_dim(qy->base->enc);
    /* With rerank, the first stage gathers more entities than asked for so
     * the second can promote one from below the top k. */
    size_t k = qy->k, want = k;
    if (r->rerank && vix_rerank_get_opts(r->rerank)->candidates > want)
        want = vix_rerank_get_opts(r->rerank)->candidates;
    size_t cand = r->candidates > 4 * k ? r->candidates : 4 * k;
    if (r->rerank && cand < 2 * want)
        cand = 2 * want;
    if (cand > VIX_CANDIDATES_MAX)
        cand = VIX_CANDIDATES_MAX;
    /* Base results the delta masks are dropped: fetch that many more. */
    qy->cand_base = cand + (qy->delta ? qy->delta->n_masked : 0);
    if (qy->cand_base > VIX_CANDIDATES_MAX)
        qy->cand_base = VIX_CANDIDATES_MAX;
    qy->cand_delta = qy->delta && qy->delta->index ? cand : 0;
    qy->want = want;
    size_t fits = r->order && r->order->top > k ? r->order->top : k;
    qy->n_fits_cap = fits < want ? fits : want;
    qy->seen_cap = 16;
    while (qy->seen_cap < 2 * want)
        qy->seen_cap *= 2;

    vix__arena a = {0};
    vix__query_carve(qy, &a);
    a.mem = malloc(a.used);
    if (!a.mem)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    a.used = 0;
    vix__query_carve(qy, &a);
    memset(qy->q, 0, qy->dim * sizeof *qy->q);
    memset(qy->seen, 0, qy->seen_cap * sizeof *qy->seen);
    *ret_block = a.mem;
    return ERD_OK;
}

/* Normalise and G2P, then encode: hypothesis i's unit vector, weighted, is
 * added to the query vector, and its phones kept for the rerank.  Returns
 * ERD_EEMPTY, without a diag, for a hypothesis with nothing speakable. */
static int vix__stage_hypothesis(vix__query *qy, size_t i, erd_diag *diag)
{
    vix_resolver *r = qy->r;
    const vix_hypothesis *h = &qy->hyps[i];
    vix_phrase *ph = qy->ph;
    uint64_t t0 = erd_now_ns();
    int rc = vix_phrase_prepare(qy->base->g2p, NULL, h->text, h->len, ph, diag);
    qy->tm.g2p_ns += erd_now_ns() - t0;
    if (rc < 0)
        return rc;
    t0 = erd_now_ns();
    pho_phrase phrase = {.text = ph->text, .tokens = ph->tokens, .n_tokens = ph->n_tokens};
    rc = pho_encoder_encode(qy->base->enc, &phrase, qy->v);
    qy->tm.encode_ns += erd_now_ns() - t0;
    if (rc < 0)
        return erd_fail(diag, rc, "encoding hypothesis %zu failed", i);
    double w = vix__hyp_weight(i);
    for (size_t d = 0; d < qy->dim; d++)
        qy->q[d] += (float)w * qy->v[d];
    if (r->rerank) {
        uint8_t *dst = qy->hyp_phones + qy->used * VIX_RR_TOKENS_MAX;
        qy->rr_hyps[qy->used] = (vix_rerank_hyp){
            .tokens = dst,
            .n = vix_rerank_pack(ph->tokens, ph->n_tokens, dst, VIX_RR_TOKENS_MAX),
            .weight = w};
    }
    if (r->command && qy->calibrate) /* only the calibration reads it */
        qy->command += w * vix_command_score(r->command, ph->text, strlen(ph->text));
    if (qy->ex)
        vix__explain_hyps(r, qy->ex, ph, i, r->rerank ? &qy->rr_hyps[qy->used] : NULL, w);
    if (qy->used == 0)
        qy->n_phones = ph->n_tokens;
    qy->wsum += w;
    qy->used++;
    return ERD_OK;
}

/* The weighted sum of the hypotheses' unit vectors: its inner product with
 * an entity vector is the weighted sum of their cosines, so one search
 * scores every entity against the whole n-best list. */
static int vix__stage_encode(vix__query *qy, erd_diag *diag)
{
    for (size_t i = 0; i < qy->n; i++) {
        int rc = vix__stage_hypothesis(qy, i, diag);
        if (rc < 0 && rc != ERD_EEMPTY)
            return rc;
    }
    if (qy->used == 0)
        return erd_fail(diag, ERD_EEMPTY, "no hypothesis has anything speakable");
    double norm = 0;
    for (size_t d = 0; d < qy->dim; d++)
        norm += (double)qy->q[d] * qy->q[d];
    norm = sqrt(norm);
    if (norm <= 0)
        return erd_fail(diag, ERD_EEMPTY, "hypotheses carry no phonetic features");
    for (size_t d = 0; d < qy->dim; d++)
        qy->q[d] = (float)(qy->q[d] / norm);
    qy->norm = norm;
    return ERD_OK;
}

static int vix__stage_search(vix__query *qy, erd_diag *diag)
{
    uint64_t t0 = erd_now_ns();
    int rc = vix_index_search(qy->base->index, 1, qy->q, qy->cand_base, qy->scores, qy->ids, diag);
    if (rc == ERD_OK && qy->cand_delta)
        rc = vix_index_search(qy->delta->index, 1, qy->q, qy->cand_delta, qy->dscores, qy->dids,
                              diag);
    qy->tm.search_ns = erd_now_ns() - t0;
    return rc < 0 ? rc : ERD_OK;
}

/* id's slot in seen: the one holding id + 1 if it was taken, else the
 * empty one where it goes (never the empty 0: a negative id ends the lists). */
static size_t vix__seen_slot(const vix__query *qy, int64_t id)
{
    size_t mask = qy->seen_cap - 1;
    size_t slot = (size_t)erd_fnv1a64(ERD_FNV1A64_OFFSET, &id, sizeof id) & mask;
    while (qy->seen[slot] && qy->seen[slot] != (uint64_t)id + 1)
        slot = (slot + 1) & mask;
    return slot;
}

/* An entity owns one vector per name and spoken variant: keep its best.
 * Both lists come best first, so merging them visits every id's best
 * vector first. */
static void vix__stage_aggregate(vix__query *qy)
{
    const vix__base *base = qy->base;
    const vix__delta *delta = qy->delta;
    uint64_t t0 = erd_now_ns();
    size_t n_found = 0, bi = 0, di = 0;
    while (n_found < qy->want) {
        bool from_base = bi < qy->cand_base && qy->ids[bi] >= 0;
        bool from_delta = di < qy->cand_delta && qy->dids[di] >= 0;
        if (from_base && from_delta)
            from_base = qy->scores[bi] >= qy->dscores[di];
        else if (!from_base && !from_delta)
            break;
        int64_t id = from_base ? qy->ids[bi] : qy->dids[di];
        float score = from_base ? qy->scores[bi++] : qy->dscores[di++];
        size_t slot = vix__seen_slot(qy, id);
        if (qy->seen[slot])
            continue;
        const vix__entity *e = from_base ? (vix__masked(delta, id) ? NULL
                                                                   : vix__set_find(&base->set, id))
                                         : vix__delta_find(delta, id);
        if (!e)
            continue; /* vector of an entity deleted or replaced since the build */
        qy->seen[slot] = (uint64_t)id + 1; /* a masked base id may come again from the delta */
        double s = (double)score * qy->norm / qy->wsum; /* weighted mean cosine */
        s = s < 0 ? 0 : s > 1 ? 1 : s;
        qy->found[n_found] = (vix__ranked){
            .res = {.rowid = e->rowid, .ext_id = e->ext_id, .name = e->name, .score = s},
            .first = s,
            .ent = e,
            .rank_first = n_found};
        n_found++;
    }
    qy->n_found = n_found;
    if (qy->ex)
        qy->ex->candidates = n_found;
    qy->tm.aggregate_ns = erd_now_ns() - t0;
}

/* The learned second stage: replaces each candidate's blended score with
 * the ranker's probability, and shows the features to an observer. */
static void vix__stage_learned_rank(vix__query *qy)
{
    vix_resolver *r = qy->r;
    size_t n_found = qy->n_found;
    double *x = qy->rank_x;
    vix_rank_input in = {qy->rr_hyps, qy->used, qy->rr_cands, n_found, qy->by_hyp};
    vix_rank_features(&in, x);
    if (r->rank_observer) {
        for (size_t i = 0; i < n_found; i++)
            qy->rank_seen[i] = qy->found[i].res;
        r->rank_observer(r->rank_observer_ctx, x, qy->rank_seen, n_found);
    }
    if (r->ranker) {
        double *p = x + n_found * VIX_RANKER_NFEAT;
        vix_ranker_probs(r->ranker, x, n_found, p);
        for (size_t i = 0; i < n_found; i++)
            qy->found[i].res.score = p[i];
    }
}

/* How many of the first-stage candidates, best first, the rerank aligns
 * within its budget of alignment cells (hypothesis phones times phrase
 * phones): a long title asked in full would otherwise cost milliseconds over
 * 200 long names, the tail of every latency figure, while its right answer
 * is near the top of the first stage already.  Never fewer than the floor,
 * nor than the results asked for.  Phones are counted before the alignment
 * cuts long phrases (VIX_RR_TOKENS_MAX): the count is an upper bound. */
static size_t vix__rerank_afford(const vix__query *qy)
{
    size_t budget = vix_rerank_get_opts(qy->r->rerank)->budget, floor = VIX_RERANK_FLOOR;
    if (floor < qy->k)
        floor = qy->k;
    if (!budget || qy->n_found <= floor)
        return qy->n_found;
    size_t hyp_phones = 0, cells = 0;
    for (size_t h = 0; h < qy->used; h++)
        hyp_phones += qy->rr_hyps[h].n;
    for (size_t i = 0; i < qy->n_found; i++) {
        const vix__entity *e = qy->found[i].ent;
        size_t phones = 0;
        for (size_t p = 0; p < e->n_phrases; p++)
            phones += e->phrases[p].n;
        cells += hyp_phones * phones;
        if (cells > budget && i >= floor)
            return i;
    }
    return qy->n_found;
}

/* The second stage: each candidate's phrases aligned with the hypotheses'
 * phones, blended with the first stage's score; then the learned ranker. */
static void vix__stage_rerank(vix__query *qy)
{
    vix_resolver *r = qy->r;
    if (!r->rerank)
        return;
    uint64_t t0 = erd_now_ns();
    qy->n_found = vix__rerank_afford(qy);
    if (qy->ex)
        qy->ex->aligned = qy->n_found;
    for (size_t i = 0; i < qy->n_found; i++)
        qy->rr_cands[i] = (vix_rerank_cand){.phrases = qy->found[i].ent->phrases,
                                            .n_phrases = qy->found[i].ent->n_phrases,
                                            .first = qy->found[i].first};
    /* by_hyp is for the ranker and, with picks, for the calibration:
     * agreement, and which phrase each result's alignment features come from */
    vix_rerank_score_best(r->rerank, qy->rr_hyps, qy->used, qy->rr_cands, qy->n_found, qy->by_hyp,
                          qy->picks);
    for (size_t i = 0; i < qy->n_found; i++) {
        double s = qy->rr_cands[i].score;
        qy->found[i].res.score = s < 0 ? 0 : s > 1 ? 1 : s;
    }
    if (qy->learned && qy->n_found)
        vix__stage_learned_rank(qy);
    for (size_t i = 0; i < qy->n_found; i++)
        qy->found[i].rerank = qy->found[i].res.score;
    qy->tm.rerank_ns = erd_now_ns() - t0;
}

/* found[0..n) best first: like qsort for records this size, the pointers
 * are sorted and the records then moved once, into the spare array, which
 * becomes found. */
static void vix__sort_found(vix__query *qy)
{
    const vix__ranked **p = qy->order, **tmp = qy->order + qy->want;
    for (size_t i = 0; i < qy->n_found; i++)
        p[i] = &qy->found[i];
    vix__sort_ranked(p, qy->n_found, tmp);
    for (size_t i = 0; i < qy->n_found; i++)
        qy->found_tmp[i] = *p[i];
    vix__ranked *sorted = qy->found_tmp;
    qy->found_tmp = qy->found;
    qy->found = sorted;
}

/* The open-set features of the first n_out results, and with an
 * explanation their alignments: each result's best phrase per hypothesis,
 * aligned again with its steps (a few alignments per result, against the
 * rerank's thousands). */
static int vix__fits(vix__query *qy, size_t n, vix_explain *ex, erd_diag *diag)
{
    int rc = ERD_OK;
    if (ex)
        ex->n_results = n; /* from here on vix_explain_free frees their alignments */
    for (size_t i = 0; rc == ERD_OK && i < n; i++) {
        if (!ex && i < 32 && (qy->fits_valid >> i & 1))
            continue; /* aligned for the order of the top results already */
        const vix__ranked *f = &qy->found[i];
        vix_explain_align *align = NULL;
        if (ex) {
            align = ex->results[i].align = calloc(qy->used, sizeof *align);
            if (!align) {
                rc = ERD_ENOMEM;
                break;
            }
        }
        /* the top result is told apart from the next, the others from the top */
        const vix__entity *rival = qy->n_found > 1 ? qy->found[i ? 0 : 1].ent : NULL;
        rc = vix_explain_fit(qy->r->rerank, qy->rr_hyps, qy->used, f->ent->phrases,
                             f->ent->n_phrases, qy->picks + f->rank_first, qy->n_found,
                             rival && rival->n_phrases ? &rival->phrases[0] : NULL,
                             qy->fit_work, &qy->fits[i], align);
        if (rc == ERD_OK && i < 32)
            qy->fits_valid |= 1u << i;
    }
    return rc < 0 ? erd_fail(diag, rc, "out of memory aligning the results") : ERD_OK;
}

/* What the query brings to every result's features: how far the
 * hypotheses stray from the first one (aligned under the rerank's channel,
 * the first as the reference), and the recogniser's own gap between its
 * first two. */
static int vix__calib_query(vix__query *qy, vix_calib_query *ret)
{
    vix_calib_query q = {.n_hyps = qy->used, .n_phones = qy->n_phones};
    const vix_hypothesis *h = qy->hyps;
    if (qy->n > 1 && h[0].has_score && h[1].has_score && h[0].score > h[1].score)
        q.asr_gap = log1p((h[0].score - h[1].score) / 1000);
    double wsum = 0;
    const vix_rerank_hyp *rh = qy->rr_hyps;
    for (size_t i = 1; qy->r->rerank && i < qy->used; i++) {
        float extra = 0;
        size_t n_ops;
        bool twin = rh[i].n == rh[0].n && memcmp(rh[i].tokens, rh[0].tokens, rh[0].n) == 0;
        if (!twin && vix_rerank_align(qy->r->rerank, rh[i].tokens, rh[i].n, rh[0].tokens, rh[0].n,
                                      qy->fit_work->ops, &n_ops, &extra) < 0)
            return ERD_ENOMEM;
        double per_phone = rh[i].n && extra > 0 ? extra / (double)rh[i].n : 0;
        q.spread += rh[i].weight * (per_phone < VIX_CALIB_FIT_MAX ? per_phone : VIX_CALIB_FIT_MAX);
        wsum += rh[i].weight;
    }
    q.spread = wsum > 0 ? q.spread / wsum : 0;
    q.command = qy->wsum > 0 ? qy->command / qy->wsum : 0;
    *ret = q;
    return ERD_OK;
}

/* The open-set features of the first n results, in qy->cal's rows after
 * the three per-result columns (score, first-stage score, agreement over
 * all n_found), with their alignments in ex when explaining. */
static int vix__features(vix__query *qy, size_t n, vix_explain *ex, erd_diag *diag)
{
    vix_resolver *r = qy->r;
    size_t want = qy->want, n_found = qy->n_found;
    double *sc = qy->cal, *first = qy->cal + want, *agree = qy->cal + 2 * want;
    double *x = qy->cal + 3 * want;
    for (size_t i = 0; i < n_found; i++) {
        sc[i] = qy->found[i].res.score;
        first[i] = qy->found[i].first;
        agree[i] = 0;
    }
    if (r->rerank)
        vix__agreement(qy->rr_hyps, qy->used, qy->found, n_found, qy->by_hyp, agree);
    int rc;
    if (r->rerank && (rc = vix__fits(qy, n, ex, diag)) < 0)
        return rc;
    if (!qy->have_cq) {
        if (vix__calib_query(qy, &qy->cq) < 0)
            return erd_fail(diag, ERD_ENOMEM, "out of memory aligning the hypotheses");
        qy->have_cq = true;
    }
    vix_calib_features(sc, first, agree, r->rerank ? qy->fits : NULL, n, n_found, &qy->cq, x);
    return ERD_OK;
}

/* The order of the top results (vix_order.h): the first `top` results'
 * open-set features scored by the order model; the entities move, the
 * scores stay where they were, so that they still fall best first. */
static int vix__stage_order(vix__query *qy, erd_diag *diag)
{
    const vix_order *o = qy->r->order;
    if (!o || !qy->r->rerank)
        return ERD_OK;
    const size_t m = qy->n_found < o->top ? qy->n_found : o->top;
    if (m < 2)
        return ERD_OK;
    uint64_t t0 = erd_now_ns();
    int rc = vix__features(qy, m, NULL, diag);
    if (rc < 0)
        return rc;
    const double *x = qy->cal + 3 * qy->want;
    double s[VIX_ORDER_TOP_MAX];
    size_t perm[VIX_ORDER_TOP_MAX];
    for (size_t i = 0; i < m; i++)
        s[i] = vix_order_score(o, x + i * VIX_CALIB_NFEAT);
    vix_order_rank(s, m, perm);
    for (size_t i = 0; i < m; i++) {
        qy->found_tmp[i] = qy->found[perm[i]];
        qy->found_tmp[i].res.score = qy->found[i].res.score;
    }
    memcpy(qy->found, qy->found_tmp, m * sizeof *qy->found);
    for (size_t i = 0; i < m; i++)
        qy->order_score[i] = s[perm[i]];
    qy->n_ordered = m;
    /* a result's fit is aligned against a rival (the top result's against
     * the second, the others' against the top): while the top stays, the
     * fits move with their results and the calibration aligns again only
     * the top's, if its second changed */
    if (perm[0] == 0) {
        vix_calib_fitness moved[VIX_ORDER_TOP_MAX];
        uint32_t valid = qy->fits_valid & ~((1u << m) - 1);
        for (size_t i = 0; i < m; i++) {
            moved[i] = qy->fits[perm[i]];
            valid |= (qy->fits_valid >> perm[i] & 1u) << i;
        }
        memcpy(qy->fits, moved, m * sizeof *moved);
        qy->fits_valid = perm[1] == 1 ? valid : valid & ~1u;
    } else {
        qy->fits_valid = 0;
    }
    qy->tm.rerank_ns += erd_now_ns() - t0;
    return ERD_OK;
}

/* The open-set features, and with a calibration in force each result's
 * probability of being the entity meant.  Features come from the whole
 * candidate list, not the k asked for, so a result's probability does not
 * depend on k. */
static int vix__stage_calibrate(vix__query *qy, vix_result *ret_results, double *ret_features,
                                erd_diag *diag)
{
    vix_resolver *r = qy->r;
    size_t want = qy->want, n_found = qy->n_found, n_out = qy->n_out;
    if (!qy->calibrate || !n_found)
        return ERD_OK;
    double *x = qy->cal + 3 * want;
    double *p = x + want * VIX_CALIB_NFEAT;
    uint64_t t0 = erd_now_ns();
    int rc = vix__features(qy, n_out, qy->ex, diag);
    if (rc < 0)
        return rc;
    if (ret_features)
        memcpy(ret_features, x, n_out * VIX_CALIB_NFEAT * sizeof *x);
    if (qy->base->calibrated) {
        vix_calib_probs(r->calib, x, n_out, p);
        for (size_t i = 0; i < n_out; i++)
            ret_results[i].score = p[i];
    }
    qy->tm.aggregate_ns += erd_now_ns() - t0;
    return ERD_OK;
}

/* Each result's scores stage by stage, for an explanation. */
static void vix__stage_explain(vix__query *qy, const vix_result *results)
{
    vix_explain *ex = qy->ex;
    for (size_t i = 0; ex && i < qy->n_out; i++) {
        const vix__ranked *f = &qy->found[i];
        vix_explain_result *er = &ex->results[i];
        er->first = f->first;
        er->second = qy->r->rerank ? qy->rr_cands[f->rank_first].second : 0;
        er->rerank = qy->r->rerank ? f->rerank : f->res.score;
        memcpy(er->features, qy->cal + 3 * qy->want + i * VIX_CALIB_NFEAT, sizeof er->features);
        er->score = results[i].score;
        er->ordered = i < qy->n_ordered;
        er->order = er->ordered ? qy->order_score[i] : 0;
        ex->n_results = i + 1;
        ex->calibrated = qy->base->calibrated;
    }
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

int vix_resolve_in(vix_resolver *r, vix_view *view, const char *catalog,
                   const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                   size_t *ret_n, vix_timing *timing, double *ret_features, erd_diag *diag)
{
    return vix_resolve_explain(r, view, catalog, hyps, n, k, ret_results, ret_n, timing,
                               ret_features, NULL, diag);
}

/* The stages in order: plan, normalise + G2P + encode, search, aggregate,
 * rerank (with the learned ranker), order, calibrate, explain. */
int vix_resolve_explain(vix_resolver *r, vix_view *view, const char *catalog,
                        const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                        size_t *ret_n, vix_timing *timing, double *ret_features,
                        vix_explain **ret_explain, erd_diag *diag)
{
    vix__query qy = {.r = r, .hyps = hyps, .n = n, .k = k,
                     .calibrate = ret_features || ret_explain};
    char *block = NULL;
    int rc = vix__query_plan(&qy, view, catalog, &block, diag);
    if (rc < 0)
        return rc;
    if (ret_explain && (rc = vix_explain_create(qy.n, k, &qy.ex, diag)) < 0) {
        rc = ERD_ENOMEM;
        goto out;
    }
    vix_assist_enter();
    if ((rc = vix__stage_encode(&qy, diag)) >= 0 && (rc = vix__stage_search(&qy, diag)) >= 0) {
        vix__stage_aggregate(&qy);
        vix__stage_rerank(&qy);
    }
    vix_assist_leave();
    if (rc < 0)
        goto out;
    vix__sort_found(&qy);
    if ((rc = vix__stage_order(&qy, diag)) < 0)
        goto out;
    qy.n_out = qy.n_found < k ? qy.n_found : k;
    for (size_t i = 0; i < qy.n_out; i++)
        ret_results[i] = qy.found[i].res;
    if ((rc = vix__stage_calibrate(&qy, ret_results, ret_features, diag)) < 0)
        goto out;
    vix__stage_explain(&qy, ret_results);
    *ret_n = qy.n_out;
    if (timing)
        *timing = qy.tm;
    if (ret_explain) {
        *ret_explain = qy.ex;
        qy.ex = NULL;
    }
out:
    vix_explain_free(qy.ex);
    free(block);
    return rc;
}
