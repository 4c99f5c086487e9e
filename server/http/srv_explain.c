#include "server/http/srv_explain.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "index/vix_phrase.h"
#include "phonetics/pho_g2p.h"
#include "phonetics/pho_inventory.h"
#include "proto/erd_clock.h"
#include "server/http/srv_request.h"

double srv_no_match_threshold(const char *spec, double min_score, const vix_resolver *resolver,
                              const vix_view *view, const char *catalog)
{
    double t = 0;
    if (min_score >= 0)
        return min_score;
    if (spec && cfg_no_match_threshold(spec, catalog, &t) == 1)
        return t;
    if (vix_view_no_match_threshold(resolver, view, catalog, &t) == ERD_OK)
        return t;
    return 0;
}

static json_t *srv__phone(uint8_t packed)
{
    return json_string(pho_phone_symbol(packed & 0x7fu));
}

/* Packed phones as symbols, and the indices where words start. */
static json_t *srv__phones(const uint8_t *p, size_t n, json_t **ret_starts)
{
    json_t *a = json_array(), *starts = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, srv__phone(p[i]));
        if (p[i] & VIX_RR_WORD_START)
            json_array_append_new(starts, json_integer((json_int_t)i));
    }
    *ret_starts = starts;
    return a;
}

static json_t *srv__alignment(const vix_explain_align *al)
{
    json_t *a = json_array();
    for (size_t i = 0; i < al->n_ops; i++) {
        const vix_rerank_op *op = &al->ops[i];
        json_array_append_new(
            a, json_pack("{s:s, s:o, s:o, s:f}", "op", vix_explain_op_name(op->op), "hyp",
                         op->op == VIX_RR_OP_DEL ? json_null() : srv__phone(op->hyp), "ref",
                         op->op == VIX_RR_OP_INS ? json_null() : srv__phone(op->ref), "cost",
                         (double)op->cost));
    }
    return a;
}

/* One hypothesis against one result: the phrase it matched and how. */
static json_t *srv__explain_hyp(const srv_answer *a, size_t i, size_t h)
{
    const vix_explain *ex = a->explain;
    const vix_explain_hyp *eh = &ex->hyps[h];
    const vix_explain_align *al = &ex->results[i].align[h];
    json_t *starts, *phones = srv__phones(eh->phones, eh->n_phones, &starts);
    json_t *o = json_pack("{s:i, s:s, s:o, s:o, s:f}", "index", (json_int_t)eh->index, "text",
                          eh->text, "phones", phones, "word_starts", starts, "weight", eh->weight);
    if (al->phrase == SIZE_MAX) { /* an entity without phrases: nothing aligned */
        json_object_set_new(o, "alignment", json_array());
        return o;
    }
    char text[1024] = "";
    const char *kind = "unknown";
    erd_diag d = {0};
    if (vix_resolver_phrase_text(a->resolver, a->catalog, a->results[i].ext_id, al->phrase, text,
                                 sizeof text, &kind, &d) < 0)
        text[0] = '\0'; /* changed since the resolve: the phones still tell */
    json_t *rstarts, *ref = srv__phones(al->ref, al->n_ref, &rstarts);
    json_object_set_new(o, "phrase",
                        json_pack("{s:i, s:s, s:s, s:o, s:o, s:b}", "index", (json_int_t)al->phrase,
                                  "text", text, "kind", kind, "phones", ref, "word_starts",
                                  rstarts, "derived", al->derived));
    json_object_set_new(o, "alignment", srv__alignment(al));
    /* what the rerank made of the steps: their sum, clamped at 0, per
     * phone and temperature, through exp, times the short form's scale */
    json_object_set_new(o, "cost", json_real((double)al->extra));
    json_object_set_new(o, "score", json_real(al->score));
    return o;
}

static json_t *srv__explain_result(const srv_answer *a, size_t i)
{
    const vix_explain *ex = a->explain;
    const vix_explain_result *er = &ex->results[i];
    json_t *feats = json_object(), *hyps = json_array();
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        json_object_set_new(feats, vix_calib_feature_name(f), json_real(er->features[f]));
    for (size_t h = 0; er->align && h < ex->n_hyps; h++)
        json_array_append_new(hyps, srv__explain_hyp(a, i, h));
    json_t *o = json_pack("{s:f, s:f, s:f, s:o, s:f, s:b, s:o}", "first_stage_cosine", er->first,
                          "alignment_score", er->second, "rerank_score", er->rerank, "features",
                          feats, "probability", er->score, "calibrated", ex->calibrated,
                          "hypotheses", hyps);
    if (o && er->ordered)
        json_object_set_new(o, "order_score", json_real(er->order));
    /* the phrase the best-weighted hypothesis matched names the result */
    for (size_t h = 0; o && h < ex->n_hyps; h++) {
        json_t *ph = json_object_get(json_array_get(hyps, h), "phrase");
        if (json_is_object(ph)) {
            json_object_set(o, "matched", ph);
            break;
        }
    }
    return o;
}

static json_t *srv__timing(const srv_answer *a)
{
    const vix_timing *t = a->timing;
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "parse_ms", (double)a->parse_ns / 1e6,
                     "g2p_ms", (double)(t->normalize_ns + t->g2p_ns) / 1e6, "encode_ms",
                     (double)t->encode_ns / 1e6, "search_ms", (double)t->search_ns / 1e6,
                     "aggregate_ms", (double)t->aggregate_ns / 1e6, "rerank_ms",
                     (double)t->rerank_ns / 1e6);
}

int srv_write_answer(const srv_answer *a, char **ret_json, size_t *ret_len, erd_diag *diag)
{
    if (!a->explain)
        return srv_write_answer_plain(a->results, a->n, a->match, ret_json, ret_len, diag);
    const vix_explain *ex = a->explain;
    json_t *results = json_array(), *hyps = json_array();
    for (size_t i = 0; i < a->n; i++) {
        double s = isfinite(a->results[i].score) ? a->results[i].score : 0;
        json_t *r = json_pack("{s:s, s:s, s:f}", "id", a->results[i].ext_id, "name",
                              a->results[i].name, "score", s);
        if (i < ex->n_results)
            json_object_set_new(r, "explain", srv__explain_result(a, i));
        json_array_append_new(results, r);
    }
    for (size_t h = 0; h < ex->n_hyps; h++) {
        json_t *starts, *ph = srv__phones(ex->hyps[h].phones, ex->hyps[h].n_phones, &starts);
        json_array_append_new(hyps, json_pack("{s:i, s:s, s:o, s:o, s:f}", "index",
                                              (json_int_t)ex->hyps[h].index, "text",
                                              ex->hyps[h].text, "phones", ph, "word_starts",
                                              starts, "weight", ex->hyps[h].weight));
    }
    json_t *root = json_pack(
        "{s:o, s:b, s:f, s:{s:o, s:o, s:f, s:f, s:o, s:I, s:I}}", "results", results, "match",
        a->match, "threshold", a->threshold, "explain", "hypotheses", hyps, "timing",
        srv__timing(a), "rerank_weight", ex->rerank_weight, "temperature", ex->temperature,
        "reranked", json_boolean(ex->reranked), "candidates", (json_int_t)ex->candidates,
        "aligned", (json_int_t)ex->aligned);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!out)
        return erd_fail(diag, ERD_ENOMEM, "out of memory serialising the explanation");
    *ret_json = out;
    *ret_len = strlen(out);
    return ERD_OK;
}

int srv_answer_resolve(vix_resolver *resolver, vix_view *view, const struct srv_resolve_req *req,
                       const char *spec, vix_result *results, vix_timing *timing,
                       srv_answer *ret, erd_diag *diag)
{
    vix_explain *ex = NULL;
    size_t n_out = 0;
    int rc = vix_resolve_explain(resolver, view, req->catalog, req->hyps, req->n_hyps, req->k,
                                 results, &n_out, timing, NULL, req->explain ? &ex : NULL, diag);
    if (rc < 0)
        return rc;
    if (n_out > req->k)
        n_out = req->k;
    srv_answer a = {.resolver = resolver, .catalog = req->catalog, .results = results, .n = n_out,
                    .explain = ex, .timing = timing};
    a.threshold = srv_no_match_threshold(spec, req->min_score, resolver, view, req->catalog);
    a.match = n_out > 0 && results[0].score >= a.threshold;
    *ret = a;
    return ERD_OK;
}

void srv_answer_clear(srv_answer *a)
{
    vix_explain_free((vix_explain *)a->explain);
    a->explain = NULL;
}

int srv_resolve_answer(vix_resolver *resolver, vix_view *view, const struct srv_resolve_req *req,
                       const char *spec, unsigned long long parse_ns, vix_result *results,
                       vix_timing *ret_timing, unsigned long long *ret_serialise_ns,
                       char **ret_json, size_t *ret_len, erd_diag *diag)
{
    srv_answer a;
    int rc = srv_answer_resolve(resolver, view, req, spec, results, ret_timing, &a, diag);
    if (rc < 0)
        return rc;
    unsigned long long t0 = erd_now_ns();
    a.parse_ns = parse_ns;
    rc = srv_write_answer(&a, ret_json, ret_len, diag);
    srv_answer_clear(&a);
    *ret_serialise_ns = erd_now_ns() - t0;
    return rc;
}

static void srv__print_phones(FILE *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i && p[i] & VIX_RR_WORD_START ? " | " : i ? " " : "",
                pho_phone_symbol(p[i] & 0x7fu));
}

/* One alignment as a line of steps: a match is its phone, the others
 * [said>heard cost], [+heard cost] (inserted), [-said cost] (not heard). */
static void srv__print_alignment(FILE *out, const vix_explain_align *al)
{
    for (size_t i = 0; i < al->n_ops; i++) {
        const vix_rerank_op *op = &al->ops[i];
        const char *h = pho_phone_symbol(op->hyp & 0x7fu), *r = pho_phone_symbol(op->ref & 0x7fu);
        fputs(i ? " " : "", out);
        switch (op->op) {
        case VIX_RR_OP_MATCH: fprintf(out, op->cost ? "%s(%.2f)" : "%s", h, (double)op->cost); break;
        case VIX_RR_OP_SUB: fprintf(out, "[%s>%s %.2f]", r, h, (double)op->cost); break;
        case VIX_RR_OP_INS: fprintf(out, "[+%s %.2f]", h, (double)op->cost); break;
        default: fprintf(out, "[-%s %.2f]", r, (double)op->cost); break;
        }
    }
}

static void srv__print_result(FILE *out, const srv_answer *a, size_t i)
{
    const vix_explain *ex = a->explain;
    const vix_explain_result *er = &ex->results[i];
    fprintf(out, "   first-stage cosine %.4f, alignment %.4f, rerank %.4f", er->first, er->second,
            er->rerank);
    if (er->ordered)
        fprintf(out, ", order %.4f", er->order);
    fprintf(out, " -> %s %.4f\n   features:", ex->calibrated ? "probability" : "score", er->score);
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        fprintf(out, " %s %.3f", vix_calib_feature_name(f), er->features[f]);
    fputc('\n', out);
    for (size_t h = 0; er->align && h < ex->n_hyps; h++) {
        const vix_explain_align *al = &er->align[h];
        fprintf(out, "   hypothesis %zu \"%s\" (weight %.3f)", ex->hyps[h].index + 1,
                ex->hyps[h].text, ex->hyps[h].weight);
        if (al->phrase == SIZE_MAX) {
            fputs(": no phrase\n", out);
            continue;
        }
        char text[1024] = "?";
        const char *kind = "?";
        erd_diag d = {0};
        (void)vix_resolver_phrase_text(a->resolver, a->catalog, a->results[i].ext_id, al->phrase,
                                       text, sizeof text, &kind, &d);
        fprintf(out, " vs %s \"%s\": cost %.3f, score %.4f\n      heard: ", kind, text,
                (double)al->extra, al->score);
        srv__print_phones(out, ex->hyps[h].phones, ex->hyps[h].n_phones);
        fputs("\n      name:  ", out);
        srv__print_phones(out, al->ref, al->n_ref);
        fputs("\n      steps: ", out);
        srv__print_alignment(out, al);
        fputc('\n', out);
    }
}

void srv_explain_print(FILE *out, const srv_answer *a)
{
    for (size_t i = 0; i < a->n; i++) {
        fprintf(out, "%zu\t%.4f\t%s\t%s\n", i + 1, a->results[i].score, a->results[i].ext_id,
                a->results[i].name);
        if (a->explain && i < a->explain->n_results)
            srv__print_result(out, a, i);
    }
    fprintf(out, "match: %s (top score %s threshold %.4f)\n", a->match ? "yes" : "no",
            a->match ? ">=" : "<", a->threshold);
    if (a->explain && a->timing) {
        const vix_timing *t = a->timing;
        fprintf(out, "stages: g2p %.3f ms, encode %.3f ms, search %.3f ms, aggregate %.3f ms, "
                     "rerank %.3f ms\n",
                (double)(t->normalize_ns + t->g2p_ns) / 1e6, (double)t->encode_ns / 1e6,
                (double)t->search_ns / 1e6, (double)t->aggregate_ns / 1e6,
                (double)t->rerank_ns / 1e6);
    }
    if (a->explain && a->explain->reranked)
        fprintf(out, "aligned %zu of %zu candidates%s\n", a->explain->aligned,
                a->explain->candidates,
                a->explain->aligned < a->explain->candidates ? " (the rerank's budget)" : "");
}

/* One pronunciation of an analysed text, as JSON. */
static json_t *srv__analysis(const vix_phrase *ph, const char *ipa)
{
    json_t *phones = json_array(), *starts = json_array(), *stress = json_array();
    for (size_t i = 0; i < ph->n_tokens; i++) {
        json_array_append_new(phones, json_string(pho_phone_symbol(ph->tokens[i].phone)));
        if (ph->tokens[i].word_start)
            json_array_append_new(starts, json_integer((json_int_t)i));
        json_array_append_new(stress, json_integer(ph->tokens[i].stress));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "text", ph->text, "ipa", ipa, "phones", phones,
                     "word_starts", starts, "stress", stress);
}

int srv_analyze(vix_resolver *resolver, const char *body, size_t len, size_t max_text_bytes,
                char **ret_json, size_t *ret_len, erd_diag *diag)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr), *out = NULL;
    vix_phrase *ph = malloc(sizeof *ph), *ph2 = malloc(sizeof *ph2);
    char *ipa = malloc(PHO_IPA_MAX);
    int rc = ERD_OK;
    if (!ph || !ph2 || !ipa) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    if (!json_is_object(root)) {
        rc = erd_fail(diag, ERD_EINVAL, "request body must be a JSON object with text%s%s",
                      root ? "" : ": ", root ? "" : jerr.text);
        goto out;
    }
    const json_t *text = json_object_get(root, "text"), *catalog = json_object_get(root, "catalog");
    if (!json_is_string(text) || json_string_length(text) == 0) {
        rc = erd_fail(diag, ERD_EINVAL, "text must be a non-empty string");
        goto out;
    }
    if (json_string_length(text) > max_text_bytes) {
        rc = erd_fail(diag, ERD_ETOOLONG, "text is %zu bytes; at most %zu are allowed",
                      json_string_length(text), max_text_bytes);
        goto out;
    }
    if (catalog && !json_is_null(catalog)) {
        /* a hypothesis's phonemes do not depend on the catalog, the second
         * pronunciation its names are indexed under does */
        size_t i = 0, n = vix_resolver_catalog_count(resolver);
        const char *want = json_string_value(catalog);
        while (want && i < n && strcmp(vix_resolver_catalog_name(resolver, i), want) != 0)
            i++;
        if (!want || i == n) {
            rc = want ? erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%.256s\"", want)
                      : erd_fail(diag, ERD_EINVAL, "catalog must be a string");
            goto out;
        }
    }
    rc = vix_resolver_analyze(resolver, json_string_value(text), json_string_length(text), ph, ipa,
                              PHO_IPA_MAX, diag);
    if (rc < 0)
        goto out;
    out = srv__analysis(ph, ipa);
    rc = vix_resolver_analyze_second(resolver, json_string_value(catalog), ph, ph2, ipa,
                                     PHO_IPA_MAX, diag);
    if (rc == ERD_OK) {
        if (out)
            json_object_set_new(out, "second", srv__analysis(ph2, ipa));
    } else if (rc != ERD_ENOTFOUND) {
        goto out;
    }
    rc = ERD_OK;
    char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (!s) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory serialising the analysis");
        goto out;
    }
    *ret_json = s;
    *ret_len = strlen(s);
out:
    json_decref(root);
    json_decref(out);
    free(ph);
    free(ph2);
    free(ipa);
    return rc;
}
