/* The fused encoder: "fused:W:PHONETIC|SEMANTIC".
 *
 * Output is [sqrt(W) p ; sqrt(1-W) s] for unit vectors p and s, so the inner
 * product of two fused vectors is W cos_p + (1-W) cos_s: one FAISS search
 * scores sound and meaning together, and the resolver's weighted sum of
 * hypothesis vectors stays a weighted sum of fused scores.  The vector has
 * unit norm whenever both parts do.
 *
 * Syntax.  The two part specs are split at the one '|' in the spec; part
 * specs and paths may not contain '|' (the part constructors refuse it), so
 * the split is unambiguous.  The id is "fused:W:<phonetic id>|<semantic
 * id>" with W printed by "%.6g", itself a spec that recreates the same
 * encoder, and must fit PHO_ENCODER_ID_MAX bytes with its NUL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_semantic.h"

static const char pho__fused_magic[8] = {'E', 'R', 'D', 'F', 'U', 'S', 'E', '\0'};
#define PHO__FUSED_VERSION 1
#define PHO__FUSED_HDR 28 /* magic, version, phonetic length (u64), semantic length (u64) */

typedef struct pho_fused {
    pho_encoder base;
    pho_encoder *p, *s;
    size_t dp, ds;
    float wp, ws; /* sqrt(W), sqrt(1 - W) */
    char id[PHO_ENCODER_ID_MAX];
} pho_fused;

static const char *pho__fu_id(const pho_encoder *enc)
{
    return ((const pho_fused *)enc)->id;
}

static size_t pho__fu_dim(const pho_encoder *enc)
{
    const pho_fused *f = (const pho_fused *)enc;
    return f->dp + f->ds;
}

static int pho__fu_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag)
{
    pho_fused *f = (pho_fused *)enc;
    int rc = pho_encoder_fit(f->p, phrases, n, diag);

    return rc < 0 ? rc : pho_encoder_fit(f->s, phrases, n, diag);
}

/* Both parts' blobs behind a header and before a checksum; nothing at all
 * when neither part has state, as for any stateless encoder. */
static int pho__fu_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len)
{
    const pho_fused *f = (const pho_fused *)enc;
    void *bp = NULL, *bs = NULL;
    size_t lp = 0, ls = 0, len;
    unsigned char *blob = NULL;
    int rc;

    rc = pho_encoder_state_save(f->p, &bp, &lp);
    if (rc < 0)
        goto out;
    rc = pho_encoder_state_save(f->s, &bs, &ls);
    if (rc < 0)
        goto out;
    if (lp == 0 && ls == 0) {
        *ret_blob = NULL;
        *ret_len = 0;
        rc = ERD_OK;
        goto out;
    }
    len = PHO__FUSED_HDR + lp + ls + 8;
    blob = malloc(len);
    if (!blob) {
        rc = ERD_ENOMEM;
        goto out;
    }
    memcpy(blob, pho__fused_magic, 8);
    blob[8] = PHO__FUSED_VERSION;
    blob[9] = blob[10] = blob[11] = 0;
    pho__le_put64(blob + 12, lp);
    pho__le_put64(blob + 20, ls);
    if (lp)
        memcpy(blob + PHO__FUSED_HDR, bp, lp);
    if (ls)
        memcpy(blob + PHO__FUSED_HDR + lp, bs, ls);
    pho__le_put64(blob + len - 8, erd_fnv1a64(ERD_FNV1A64_OFFSET, blob, len - 8));
    *ret_blob = blob;
    *ret_len = len;
    blob = NULL;
    rc = ERD_OK;
out:
    free(bp);
    free(bs);
    free(blob);
    return rc;
}

static int pho__fu_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag)
{
    pho_fused *f = (pho_fused *)enc;
    const unsigned char *b = blob;
    uint64_t lp, ls;
    int rc;

    if (len == 0) {
        rc = pho_encoder_state_load(f->p, NULL, 0, diag);
        return rc < 0 ? rc : pho_encoder_state_load(f->s, NULL, 0, diag);
    }
    if (len < PHO__FUSED_HDR + 8 || memcmp(b, pho__fused_magic, 8) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "fused encoder state: bad magic or truncated");
    if (pho__le_get64(b + len - 8) != erd_fnv1a64(ERD_FNV1A64_OFFSET, b, len - 8))
        return erd_fail(diag, ERD_ECORRUPT, "fused encoder state: checksum mismatch");
    if (b[8] != PHO__FUSED_VERSION)
        return erd_fail(diag, ERD_ECORRUPT, "fused encoder state: unsupported version %u", b[8]);
    lp = pho__le_get64(b + 12);
    ls = pho__le_get64(b + 20);
    if (lp > len || ls > len || PHO__FUSED_HDR + lp + ls + 8 != len)
        return erd_fail(diag, ERD_ECORRUPT, "fused encoder state: parts of %llu and %llu bytes in "
                        "%zu", (unsigned long long)lp, (unsigned long long)ls, len);
    rc = pho_encoder_state_load(f->p, lp ? b + PHO__FUSED_HDR : NULL, (size_t)lp, diag);
    if (rc < 0)
        return rc;
    return pho_encoder_state_load(f->s, ls ? b + PHO__FUSED_HDR + lp : NULL, (size_t)ls, diag);
}

static int pho__fu_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out)
{
    const pho_fused *f = (const pho_fused *)enc;
    int rc = pho_encoder_encode(f->p, phrase, out);

    if (rc < 0)
        return rc;
    rc = pho_encoder_encode(f->s, phrase, out + f->dp);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < f->dp; i++)
        out[i] *= f->wp;
    for (size_t i = 0; i < f->ds; i++)
        out[f->dp + i] *= f->ws;
    return ERD_OK;
}

static void pho__fu_destroy(pho_encoder *enc)
{
    pho_fused *f = (pho_fused *)enc;

    pho_encoder_destroy(f->p);
    pho_encoder_destroy(f->s);
    free(f);
}

PHO_ENCODER_OPS(pho__fused_ops, pho__fu);

int pho__fused_create(const char *args, pho_encoder **ret, erd_diag *diag)
{
    char wbuf[32], pspec[PHO_ENCODER_ID_MAX], *end;
    const char *colon, *bar, *sspec;
    pho_encoder *p = NULL, *s = NULL;
    pho_fused *f = NULL;
    double w;
    size_t wl, pl;
    int rc, n;

    if (args[0] != ':')
        return erd_fail(diag, ERD_EINVAL, "encoder spec \"fused\" wants fused:W:PHONETIC|SEMANTIC");
    args++;
    colon = strchr(args, ':');
    bar = strchr(args, '|');
    if (!colon || !bar || colon > bar || strchr(bar + 1, '|'))
        return erd_fail(diag, ERD_EINVAL, "encoder spec \"fused:%.64s\": want fused:W:PHONETIC|"
                        "SEMANTIC with exactly one '|'", args);
    wl = (size_t)(colon - args);
    if (wl == 0 || wl >= sizeof wbuf)
        return erd_fail(diag, ERD_EINVAL, "fused weight \"%.*s\" is not a number", (int)(wl < 31 ? wl : 31), args);
    memcpy(wbuf, args, wl);
    wbuf[wl] = '\0';
    w = strtod(wbuf, &end);
    if (*end || !(w >= 0.0 && w <= 1.0))
        return erd_fail(diag, ERD_EINVAL, "fused weight \"%s\" is not a number in [0, 1]", wbuf);
    pl = (size_t)(bar - colon - 1);
    sspec = bar + 1;
    if (pl == 0 || !*sspec)
        return erd_fail(diag, ERD_EINVAL, "fused spec needs both a phonetic and a semantic part");
    if (pl >= sizeof pspec)
        return erd_fail(diag, ERD_ETOOLONG, "fused phonetic part longer than %zu bytes",
                        sizeof pspec - 1);
    memcpy(pspec, colon + 1, pl);
    pspec[pl] = '\0';
    if (strncmp(pspec, "fused", 5) == 0 || strncmp(sspec, "fused", 5) == 0)
        return erd_fail(diag, ERD_EINVAL, "fused encoders do not nest");
    rc = pho_encoder_create(pspec, &p, diag);
    if (rc < 0)
        goto out;
    rc = pho_encoder_create(sspec, &s, diag);
    if (rc < 0)
        goto out;
    if (strchr(pho_encoder_id(p), '|') || strchr(pho_encoder_id(s), '|')) {
        rc = erd_fail(diag, ERD_EINVAL, "fused parts may not have '|' in their ids");
        goto out;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory for encoder");
        goto out;
    }
    n = snprintf(f->id, sizeof f->id, "fused:%.6g:%s|%s", w, pho_encoder_id(p), pho_encoder_id(s));
    if (n < 0 || (size_t)n >= sizeof f->id) {
        rc = erd_fail(diag, ERD_ETOOLONG,
                      "fused encoder id \"fused:%.6g:%s|%s\" is %d bytes; index metadata keeps "
                      "%d (use shorter model paths)", w, pho_encoder_id(p), pho_encoder_id(s), n,
                      PHO_ENCODER_ID_MAX - 1);
        goto out;
    }
    f->base.ops = &pho__fused_ops;
    f->p = p;
    f->s = s;
    f->dp = pho_encoder_dim(p);
    f->ds = pho_encoder_dim(s);
    f->wp = (float)sqrt(w);
    f->ws = (float)sqrt(1.0 - w);
    *ret = &f->base;
    return ERD_OK;
out:
    free(f);
    pho_encoder_destroy(p);
    pho_encoder_destroy(s);
    return rc;
}
