/* The quantised-output encoder: "quant:BITS:SPEC" (BITS 8, 4, 2 or bf16).
 *
 * Another encoder whose every vector, catalog name and query alike, is
 * replaced by what the shared scalar quantiser (pho_quant.h) reconstructs
 * from its code, or by its bfloat16 rounding.  The per-dimension ranges are
 * fitted on the catalog's own vectors (fit gets all of them) and saved with
 * the index.  Searched exactly (Flat), it measures what b-bit codes alone
 * keep of an encoder's accuracy, before any float rescoring.
 *
 * The id is "quant:BITS:<inner id>", itself a spec. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_quant.h"
#include "phonetics/pho_semantic.h" /* PHO_ENCODER_ID_MAX */

static const char pho__quant_magic[8] = {'E', 'R', 'D', 'Q', 'N', 'T', 'Z', '\0'};
#define PHO__QUANT_VERSION 1
#define PHO__QUANT_HDR 28 /* magic, version (u32), dim (u64), inner state length (u64) */
#define PHO__QUANT_BF16 16 /* "bits" of the bfloat16 mode: no codes, no ranges */

typedef struct pho_quantized {
    pho_encoder base;
    pho_encoder *inner;
    unsigned bits; /* 8, 4, 2, or PHO__QUANT_BF16 */
    size_t dim;
    float *lo, *hi; /* dim each; fitted or loaded (ranges only) */
    int fitted;
    char id[PHO_ENCODER_ID_MAX];
} pho_quantized;

static const char *pho__qz_id(const pho_encoder *enc)
{
    return ((const pho_quantized *)enc)->id;
}

static size_t pho__qz_dim(const pho_encoder *enc)
{
    return ((const pho_quantized *)enc)->dim;
}

static int pho__qz_ranges(const pho_quantized *q)
{
    return q->bits != PHO__QUANT_BF16;
}

static int pho__qz_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag)
{
    pho_quantized *q = (pho_quantized *)enc;
    float *vecs;
    int rc = pho_encoder_fit(q->inner, phrases, n, diag);

    if (rc < 0 || !pho__qz_ranges(q))
        return rc;
    if (n == 0)
        return erd_fail(diag, ERD_EEMPTY, "quantised encoder: no phrases to fit ranges on");
    vecs = malloc(sizeof *vecs * n * q->dim);
    if (!vecs)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for %zu vectors of %zu floats", n,
                        q->dim);
    for (size_t i = 0; i < n && rc == ERD_OK; i++)
        rc = pho_encoder_encode(q->inner, &phrases[i], vecs + i * q->dim);
    if (rc < 0)
        rc = erd_fail(diag, rc, "quantised encoder: encoding phrase \"%.64s\" failed",
                      phrases ? phrases[0].text : "");
    else if ((rc = pho_quant_fit(vecs, n, q->dim, q->lo, q->hi)) < 0)
        rc = erd_fail(diag, rc, "quantised encoder: fitting ranges failed");
    else
        q->fitted = 1;
    free(vecs);
    return rc;
}

/* Header, the inner encoder's state, then lo and hi as little-endian floats
 * (bfloat16 mode: none), then an FNV-1a 64 checksum. */
static int pho__qz_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len)
{
    const pho_quantized *q = (const pho_quantized *)enc;
    void *inner = NULL;
    size_t li = 0, nr = pho__qz_ranges(q) ? 2 * q->dim : 0, len;
    unsigned char *blob, *p;
    int rc = pho_encoder_state_save(q->inner, &inner, &li);

    if (rc < 0)
        return rc;
    if (nr && !q->fitted) {
        free(inner);
        return ERD_EINVAL; /* ranges not fitted yet */
    }
    len = PHO__QUANT_HDR + li + 4 * nr + 8;
    blob = malloc(len);
    if (!blob) {
        free(inner);
        return ERD_ENOMEM;
    }
    memcpy(blob, pho__quant_magic, 8);
    pho__le_put32(blob + 8, PHO__QUANT_VERSION);
    pho__le_put64(blob + 12, q->dim);
    pho__le_put64(blob + 20, li);
    if (li)
        memcpy(blob + PHO__QUANT_HDR, inner, li);
    p = blob + PHO__QUANT_HDR + li;
    for (size_t i = 0; i < nr; i++, p += 4) {
        uint32_t u;
        memcpy(&u, i < q->dim ? &q->lo[i] : &q->hi[i - q->dim], 4);
        pho__le_put32(p, u);
    }
    pho__le_put64(p, erd_fnv1a64(ERD_FNV1A64_OFFSET, blob, len - 8));
    free(inner);
    *ret_blob = blob;
    *ret_len = len;
    return ERD_OK;
}

static int pho__qz_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag)
{
    pho_quantized *q = (pho_quantized *)enc;
    const unsigned char *b = blob;
    size_t nr = pho__qz_ranges(q) ? 2 * q->dim : 0;
    uint64_t li;
    int rc;

    if (!b || len < PHO__QUANT_HDR + 8 || memcmp(b, pho__quant_magic, 8) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "quantised encoder state: bad magic or truncated");
    if (pho__le_get64(b + len - 8) != erd_fnv1a64(ERD_FNV1A64_OFFSET, b, len - 8))
        return erd_fail(diag, ERD_ECORRUPT, "quantised encoder state: checksum mismatch");
    if (pho__le_get32(b + 8) != PHO__QUANT_VERSION || pho__le_get64(b + 12) != q->dim)
        return erd_fail(diag, ERD_EMISMATCH, "quantised encoder state: version %u, %llu "
                        "dimensions (want %d, %zu)", pho__le_get32(b + 8),
                        (unsigned long long)pho__le_get64(b + 12), PHO__QUANT_VERSION, q->dim);
    li = pho__le_get64(b + 20);
    if (li > len || PHO__QUANT_HDR + li + 4 * nr + 8 != len)
        return erd_fail(diag, ERD_ECORRUPT, "quantised encoder state: %zu bytes, its header "
                        "implies more or fewer", len);
    rc = pho_encoder_state_load(q->inner, li ? b + PHO__QUANT_HDR : NULL, (size_t)li, diag);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nr; i++) {
        uint32_t u = pho__le_get32(b + PHO__QUANT_HDR + li + 4 * i);
        memcpy(i < q->dim ? &q->lo[i] : &q->hi[i - q->dim], &u, 4);
    }
    q->fitted = 1;
    return ERD_OK;
}

static int pho__qz_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out)
{
    const pho_quantized *q = (const pho_quantized *)enc;
    int rc = pho_encoder_encode(q->inner, phrase, out);

    if (rc < 0)
        return rc;
    if (!pho__qz_ranges(q)) {
        for (size_t d = 0; d < q->dim; d++)
            out[d] = pho_quant_bf16(out[d]);
        return ERD_OK;
    }
    if (!q->fitted)
        return ERD_EINVAL; /* ranges not fitted yet */
    for (size_t d = 0; d < q->dim; d++)
        out[d] = pho_quant_fake(out[d], q->lo[d], q->hi[d], q->bits);
    return ERD_OK;
}

static void pho__qz_destroy(pho_encoder *enc)
{
    pho_quantized *q = (pho_quantized *)enc;

    pho_encoder_destroy(q->inner);
    free(q->lo);
    free(q->hi);
    free(q);
}

PHO_ENCODER_OPS(pho__quantized_ops, pho__qz);

/* "8:", "4:", "2:" or "bf16:" at the start of args; 0 when none. */
static unsigned pho__qz_parse_bits(const char *args, size_t *ret_len)
{
    static const struct {
        const char *text;
        unsigned bits;
    } widths[] = {{"8:", 8}, {"4:", 4}, {"2:", 2}, {"bf16:", PHO__QUANT_BF16}};

    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        if (!strncmp(args, widths[i].text, strlen(widths[i].text))) {
            *ret_len = strlen(widths[i].text);
            return widths[i].bits;
        }
    return 0;
}

int pho__quantized_create(const char *args, pho_encoder **ret, erd_diag *diag)
{
    pho_encoder *inner = NULL;
    pho_quantized *q = NULL;
    size_t skip = 0;
    unsigned bits = args[0] == ':' ? pho__qz_parse_bits(args + 1, &skip) : 0;
    int rc, n;

    if (!bits || !args[1 + skip])
        return erd_fail(diag, ERD_EINVAL, "encoder spec \"quant\" wants quant:BITS:SPEC, BITS "
                        "8, 4, 2 or bf16");
    if (!strncmp(args + 1 + skip, "quant", 5))
        return erd_fail(diag, ERD_EINVAL, "quantised encoders do not nest");
    rc = pho_encoder_create(args + 1 + skip, &inner, diag);
    if (rc < 0)
        return rc;
    q = calloc(1, sizeof *q);
    if (!q) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory for encoder");
        goto out;
    }
    q->dim = pho_encoder_dim(inner);
    q->lo = calloc(q->dim, sizeof *q->lo);
    q->hi = calloc(q->dim, sizeof *q->hi);
    if (!q->lo || !q->hi) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory for encoder");
        goto out;
    }
    n = snprintf(q->id, sizeof q->id, "quant:%.*s%s", (int)skip, args + 1, pho_encoder_id(inner));
    if (n < 0 || (size_t)n >= sizeof q->id) {
        rc = erd_fail(diag, ERD_ETOOLONG, "quantised encoder id is %d bytes; index metadata "
                      "keeps %d (use a shorter model path)", n, PHO_ENCODER_ID_MAX - 1);
        goto out;
    }
    q->base.ops = &pho__quantized_ops;
    q->inner = inner;
    q->bits = bits;
    *ret = &q->base;
    return ERD_OK;
out:
    if (q) {
        free(q->lo);
        free(q->hi);
        free(q);
    }
    pho_encoder_destroy(inner);
    return rc;
}
