/* Private to the phonetics module: the encoder vtable, so that a learned
 * encoder can live in its own file and plug into pho_encoder_create. */
#ifndef PHO_INTERNAL_H
#define PHO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_encoder.h"
#include "proto/erd_hash.h"

typedef struct pho_encoder_ops {
    const char *(*id)(const pho_encoder *enc);
    size_t (*dim)(const pho_encoder *enc);
    int (*fit)(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag);
    int (*state_save)(const pho_encoder *enc, void **ret_blob, size_t *ret_len);
    int (*state_load)(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag);
    int (*encode)(const pho_encoder *enc, const pho_phrase *phrase, float *out);
    void (*destroy)(pho_encoder *enc);
} pho_encoder_ops;

/* An encoder's vtable from its functions PREFIX_id, PREFIX_dim, PREFIX_fit,
 * PREFIX_save, PREFIX_load, PREFIX_encode and PREFIX_destroy. */
#define PHO_ENCODER_OPS(name, prefix)                                                       \
    static const pho_encoder_ops name = {                                                   \
        .id = prefix##_id, .dim = prefix##_dim, .fit = prefix##_fit,                        \
        .state_save = prefix##_save, .state_load = prefix##_load, .encode = prefix##_encode, \
        .destroy = prefix##_destroy}

/* Every encoder embeds this as its first member. */
struct pho_encoder {
    const pho_encoder_ops *ops;
};

/* args: whatever follows "baseline" in the spec: "" or ":DIM". */
int pho__baseline_create(const char *args, pho_encoder **ret, erd_diag *diag);

/* args: whatever follows "quant": ":BITS:SPEC" (pho_quantized.c). */
int pho__quantized_create(const char *args, pho_encoder **ret, erd_diag *diag);

/* The file a model path names: path itself when it exists or is absolute,
 * else the same path under the model directory when a file is there; out
 * holds the result.  ERD_ETOOLONG when it does not fit. */
int pho__model_path(const char *path, char *out, size_t cap);

/* Reads a whole regular file of at most max bytes into a malloc'd buffer
 * (one spare byte past the end); what names the file in messages ("model
 * PATH: ...").  ERD_ENOTFOUND/ERD_EIO when it cannot be read, ERD_ECORRUPT
 * when it is larger than max.  *ret_buf (free()) and *ret_len set only on
 * success. */
int pho__read_file(const char *what, const char *path, uint64_t max, unsigned char **ret_buf,
                   size_t *ret_len, erd_diag *diag);

/* Little-endian fields of the model and state files, whatever the host. */
static inline void pho__le_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void pho__le_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t pho__le_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t pho__le_get64(const unsigned char *p)
{
    return (uint64_t)pho__le_get32(p) | (uint64_t)pho__le_get32(p + 4) << 32;
}


#endif
