/* The order of the top results (see vix_order.h). */
#include "index/vix_order.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "index/vix_jsonfile.h"

#define VIX__ORDER_MAGIC "erd-order"

static int vix__order_feature(const char *name)
{
    for (int f = 0; name && f < VIX_CALIB_NFEAT; f++)
        if (strcmp(vix_calib_feature_name(f), name) == 0)
            return f;
    return -1;
}

static int vix__order_features(const json_t *a, vix_order *o, const char *path, erd_diag *diag)
{
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > VIX_CALIB_NFEAT)
        return erd_fail(diag, ERD_ECORRUPT, "%s: malformed order file (features)", path);
    o->n_feat = json_array_size(a);
    for (size_t i = 0; i < o->n_feat; i++) {
        const char *name = json_string_value(json_array_get(a, i));
        if ((o->feat[i] = vix__order_feature(name)) < 0)
            return erd_fail(diag, ERD_EMISMATCH, "%s: feature \"%.60s\" is not one this erd "
                            "computes", path, name ? name : "?");
    }
    return ERD_OK;
}

static int vix__order_parse(json_t *j, const char *path, vix_order *o, erd_diag *diag)
{
    const char *fmt = json_string_value(json_object_get(j, "format"));
    const char *rr = json_string_value(json_object_get(j, "rerank"));
    const char *prov = json_string_value(json_object_get(j, "provenance"));
    json_int_t top = json_integer_value(json_object_get(j, "top"));
    if (!fmt || strcmp(fmt, VIX__ORDER_MAGIC) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: not an order file", path);
    if (json_integer_value(json_object_get(j, "version")) != VIX_ORDER_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "%s: order version is not %d", path,
                        VIX_ORDER_VERSION);
    int rc = vix__order_features(json_object_get(j, "features"), o, path, diag);
    if (rc < 0)
        return rc;
    if (!rr || !prov || strlen(rr) >= sizeof o->rerank_id || strlen(prov) >= sizeof o->provenance ||
        top < 2 || top > VIX_ORDER_TOP_MAX ||
        vix__json_numbers(json_object_get(j, "mean"), o->n_feat, o->mean) < 0 ||
        vix__json_numbers(json_object_get(j, "scale"), o->n_feat, o->scale) < 0 ||
        vix__json_numbers(json_object_get(j, "weights"), o->n_feat, o->w) < 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: malformed order file", path);
    for (size_t i = 0; i < o->n_feat; i++)
        if (!(o->scale[i] > 0))
            return erd_fail(diag, ERD_ECORRUPT, "%s: order scales must be positive", path);
    o->top = (size_t)top;
    snprintf(o->rerank_id, sizeof o->rerank_id, "%s", rr);
    snprintf(o->provenance, sizeof o->provenance, "%s", prov);
    return ERD_OK;
}

int vix_order_load(const char *path, vix_order *ret, erd_diag *diag)
{
    vix_order o;
    json_t *j;
    memset(&o, 0, sizeof o);
    int rc = vix__json_load_summed(path, &j, &o.checksum, diag);
    if (rc < 0)
        return rc;
    if ((rc = vix__order_parse(j, path, &o, diag)) == ERD_OK)
        *ret = o;
    json_decref(j);
    return rc;
}

double vix_order_score(const vix_order *o, const double *x)
{
    double s = 0;
    for (size_t i = 0; i < o->n_feat; i++)
        s += o->w[i] * (x[o->feat[i]] - o->mean[i]) / o->scale[i];
    return s;
}

static double vix__order_key(double s)
{
    return isnan(s) ? -INFINITY : s;
}

void vix_order_rank(const double *score, size_t n, size_t *perm)
{
    for (size_t i = 0; i < n; i++) /* insertion sort: n is a handful */
        perm[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t p = perm[i], j = i;
        while (j > 0 && vix__order_key(score[p]) > vix__order_key(score[perm[j - 1]])) {
            perm[j] = perm[j - 1];
            j--;
        }
        perm[j] = p;
    }
}
