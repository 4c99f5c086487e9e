/* Encoder interface: dispatch on the spec, then through the vtable. */
#include "phonetics/pho_encoder.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_model.h"
#include "phonetics/pho_semantic.h"

/* name: the spec prefix users write ("baseline:512"); id_prefix: the start of
 * the id the encoder reports ("baseline-ngram-v1/512"), accepted as a spec
 * too so an index's metadata names the exact encoder to recreate. */
static const struct {
    const char *name;
    const char *id_prefix;
    int (*create)(const char *args, pho_encoder **ret, erd_diag *diag);
} pho__encoders[] = {
    {"baseline", "baseline-ngram-v1/", pho__baseline_create},
    /* the id is "model:PATH#checksum", itself a spec: no id prefix needed */
    {"model", NULL, pho__siamese_create},
    /* ids "semantic:PATH#checksum", "vec:PATH#checksum", "fused:W:ID|ID" are specs too */
    {"semantic", NULL, pho__semantic_create},
    {"vec", NULL, pho__vec_create},
    {"fused", NULL, pho__fused_create},
    /* "quant:BITS:ID" is a spec too */
    {"quant", NULL, pho__quantized_create},
};

static char pho__model_dir[1024];

int pho_encoder_set_model_dir(const char *dir)
{
    size_t n = dir ? strlen(dir) : 0;
    if (n >= sizeof pho__model_dir)
        return ERD_ETOOLONG;
    memcpy(pho__model_dir, dir ? dir : "", n);
    pho__model_dir[n] = '\0';
    return ERD_OK;
}

int pho__read_file(const char *what, const char *path, uint64_t max, unsigned char **ret_buf,
                   size_t *ret_len, erd_diag *diag)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    unsigned char *buf = NULL;
    int rc = ERD_OK;

    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s %s: %s", what, path,
                        strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = erd_fail(diag, ERD_EIO, "%s %s: not a regular file", what, path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s %s: %lld bytes is too large", what, path,
                      (long long)st.st_size);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s %s", what, path);
        goto out;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = erd_fail(diag, ERD_EIO, "%s %s: read failed", what, path);
        goto out;
    }
    *ret_buf = buf; /* ownership passes to the caller */
    *ret_len = (size_t)st.st_size;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

int pho__model_path(const char *path, char *out, size_t cap)
{
    int n;
    if (path[0] == '/' || !pho__model_dir[0] || access(path, F_OK) == 0) {
        n = snprintf(out, cap, "%s", path);
        return n < 0 || (size_t)n >= cap ? ERD_ETOOLONG : ERD_OK;
    }
    n = snprintf(out, cap, "%s/%s", pho__model_dir, path);
    if (n < 0 || (size_t)n >= cap)
        return ERD_ETOOLONG;
    if (access(out, F_OK) != 0)
        n = snprintf(out, cap, "%s", path); /* the error then names what was asked for */
    return n < 0 || (size_t)n >= cap ? ERD_ETOOLONG : ERD_OK;
}

int pho_encoder_model_path(const char *name, char *ret_path, size_t cap)
{
    char buf[4096];
    int rc = pho__model_path(name, buf, sizeof buf);
    if (rc < 0 || strlen(buf) >= cap)
        return ERD_ETOOLONG;
    memcpy(ret_path, buf, strlen(buf) + 1);
    return ERD_OK;
}

int pho_encoder_create(const char *spec, pho_encoder **ret, erd_diag *diag)
{
    if (!spec || !ret)
        return erd_fail(diag, ERD_EINVAL, "pho_encoder_create: spec and ret are required");
    for (size_t i = 0; i < sizeof pho__encoders / sizeof pho__encoders[0]; i++) {
        size_t n = strlen(pho__encoders[i].name);
        if (strncmp(spec, pho__encoders[i].name, n) == 0 && (spec[n] == '\0' || spec[n] == ':'))
            return pho__encoders[i].create(spec + n, ret, diag);
        if (!pho__encoders[i].id_prefix)
            continue;
        size_t m = strlen(pho__encoders[i].id_prefix);
        if (strncmp(spec, pho__encoders[i].id_prefix, m) == 0 && spec[m]) {
            char args[64];
            int len = snprintf(args, sizeof args, ":%s", spec + m);
            if (len < 0 || (size_t)len >= sizeof args)
                break;
            return pho__encoders[i].create(args, ret, diag);
        }
    }
    return erd_fail(diag, ERD_EINVAL,
                    "unknown encoder spec \"%.64s\" (expected \"baseline\", \"baseline:DIM\", "
                    "\"model:PATH\", \"semantic:PATH\", \"vec:PATH\" or "
                    "\"fused:W:PHONETIC|SEMANTIC\")",
                    spec);
}

void pho_encoder_destroy(pho_encoder *enc)
{
    if (enc)
        enc->ops->destroy(enc);
}

const char *pho_encoder_id(const pho_encoder *enc)
{
    return enc ? enc->ops->id(enc) : "";
}

size_t pho_encoder_dim(const pho_encoder *enc)
{
    return enc ? enc->ops->dim(enc) : 0;
}

int pho_encoder_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag)
{
    if (!enc || (!phrases && n > 0))
        return erd_fail(diag, ERD_EINVAL, "pho_encoder_fit: NULL argument");
    return enc->ops->fit(enc, phrases, n, diag);
}

int pho_encoder_state_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len)
{
    if (!enc || !ret_blob || !ret_len)
        return ERD_EINVAL;
    return enc->ops->state_save(enc, ret_blob, ret_len);
}

int pho_encoder_state_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag)
{
    if (!enc || (!blob && len > 0))
        return erd_fail(diag, ERD_EINVAL, "pho_encoder_state_load: NULL argument");
    return enc->ops->state_load(enc, blob, len, diag);
}

int pho_encoder_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out)
{
    if (!enc || !phrase || !out || (!phrase->tokens && phrase->n_tokens > 0))
        return ERD_EINVAL;
    return enc->ops->encode(enc, phrase, out);
}
