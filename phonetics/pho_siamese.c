/* The learned ("siamese") encoder behind the encoder interface: a trained
 * pho_model read from a file named in the spec.
 *
 * The index records pho_encoder_id() and recreates the encoder from it, so
 * the id must name the file: it is "model:PATH#xxxxxxxx", the spec plus the
 * low 32 bits of the file's checksum.  Recreating from that id refuses a
 * file that has since been retrained or replaced, instead of silently
 * comparing query vectors against an index built by other weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_model.h"

/* vix_index_meta keeps ids in 128 bytes. */
#define PHO__SIAMESE_ID_MAX 128

typedef struct pho_siamese {
    pho_encoder base;
    pho_model *model;
    char id[PHO__SIAMESE_ID_MAX];
} pho_siamese;

static const char *pho__sm_id(const pho_encoder *enc)
{
    return ((const pho_siamese *)enc)->id;
}

static size_t pho__sm_dim(const pho_encoder *enc)
{
    return ((const pho_siamese *)enc)->model->arch.out_dim;
}

/* Nothing is fitted per catalog: the network alone decides what sounds alike. */
static int pho__sm_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag)
{
    (void)enc;
    (void)phrases;
    (void)n;
    (void)diag;
    return ERD_OK;
}

static int pho__sm_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len)
{
    (void)enc;
    *ret_blob = NULL;
    *ret_len = 0;
    return ERD_OK;
}

static int pho__sm_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag)
{
    (void)blob;
    if (len != 0)
        return erd_fail(diag, ERD_EMISMATCH, "encoder \"%s\" keeps no per-catalog state, got %zu "
                        "bytes", ((pho_siamese *)enc)->id, len);
    return ERD_OK;
}

static int pho__sm_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out)
{
    const pho_siamese *s = (const pho_siamese *)enc;
    return pho_model_encode(s->model, phrase->tokens, phrase->n_tokens, out);
}

static void pho__sm_destroy(pho_encoder *enc)
{
    pho_siamese *s = (pho_siamese *)enc;

    pho_model_destroy(s->model);
    free(s);
}

PHO_ENCODER_OPS(pho__siamese_ops, pho__sm);

/* true when s is exactly eight hex digits; their value in *ret. */
static int pho__hex8(const char *s, uint32_t *ret)
{
    uint32_t v = 0;

    if (strlen(s) != 8)
        return 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return 0;
        v = v << 4 | d;
    }
    *ret = v;
    return 1;
}

int pho__siamese_create(const char *args, pho_encoder **ret, erd_diag *diag)
{
    /* room left in the id for "model:" and "#xxxxxxxx" */
    char path[PHO__SIAMESE_ID_MAX - 15];
    const char *hash;
    uint32_t want = 0;
    int check = 0, rc;
    size_t plen;
    pho_model *m = NULL;
    pho_siamese *s;

    if (args[0] != ':' || args[1] == '\0')
        return erd_fail(diag, ERD_EINVAL, "encoder spec \"model\" needs a file: model:PATH");
    args++;
    hash = strrchr(args, '#');
    if (hash && pho__hex8(hash + 1, &want)) {
        check = 1;
        plen = (size_t)(hash - args);
    } else {
        plen = strlen(args);
    }
    if (plen == 0 || plen >= sizeof path)
        return erd_fail(diag, plen ? ERD_ETOOLONG : ERD_EINVAL,
                        "model path must be 1..%zu bytes (the index records it in its encoder id)",
                        sizeof path - 1);
    memcpy(path, args, plen);
    path[plen] = '\0';
    char file[2048];
    rc = pho__model_path(path, file, sizeof file);
    if (rc < 0)
        return erd_fail(diag, rc, "model path %s too long", path);
    rc = pho_model_load(file, &m, diag);
    if (rc < 0)
        return rc;
    if (check && (uint32_t)m->checksum != want) {
        unsigned have = (unsigned)(uint32_t)m->checksum;
        pho_model_destroy(m);
        return erd_fail(diag, ERD_EMISMATCH,
                        "model %s has checksum %08x, not %08x: the file changed since the index "
                        "was built (rebuild the index)",
                        path, have, (unsigned)want);
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        pho_model_destroy(m);
        return erd_fail(diag, ERD_ENOMEM, "out of memory for encoder");
    }
    s->base.ops = &pho__siamese_ops;
    s->model = m;
    snprintf(s->id, sizeof s->id, "model:%s#%08x", path, (unsigned)(uint32_t)m->checksum);
    *ret = &s->base;
    return ERD_OK;
}
