/* The model file: round trip, and refusal of every kind of bad file with the
 * right code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/erd_hash.h"
#include "phonetics/pho_model.h"
#include "tap.h"
#include "tmpdir.h"

#define HDR 312 /* magic, version, arch, inventory, counts, metadata */

/* Rewrites the trailing checksum so a deliberate header change is seen as
 * such, not as damage. */
static void reseal(unsigned char *b, size_t len)
{
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, b, len - 8);
    for (int i = 0; i < 8; i++)
        b[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

static int load_code(const unsigned char *b, size_t len, erd_diag *d)
{
    pho_model *m = NULL;
    int rc = pho_model_load_buffer(b, len, &m, d);
    pho_model_destroy(m);
    return rc;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int main(void)
{
    char path[] = "/tmp/erd-test-model-XXXXXX";
    int fd = mkstemp(path);
    pho_model_arch arch = {PHO_ARCH_CONV, 8, 6, 12, 10, PHO_OUT_PLAIN};
    pho_model *m = NULL, *back = NULL;
    erd_diag d = {0};
    unsigned char *b, *c;
    size_t len;
    int rc;

    ok(fd >= 0, "temporary file");
    close(fd);
    is_int(pho_model_create(&arch, 7, &m, &d), ERD_OK, "create a small model");
    is_int(pho_model_save(m, path, "seed=7 test", &d), ERD_OK, "save");
    ok(m->checksum != 0, "save records the checksum");
    is_int(pho_model_load(path, &back, &d), ERD_OK, "load");
    ok(back && !memcmp(&back->arch, &m->arch, sizeof arch), "architecture survives");
    ok(back && back->n_params == m->n_params &&
           !memcmp(back->params, m->params, sizeof *m->params * m->n_params),
       "every weight survives bit for bit");
    is_str(back ? back->meta : NULL, "seed=7 test", "metadata survives");
    ok(back && back->checksum == m->checksum, "loaded checksum is the saved one");
    pho_model_destroy(back);
    back = NULL;

    {
        pho_model_arch bag = {PHO_ARCH_BAG, 5, 4, 0, 3, PHO_OUT_PLAIN};
        pho_model *mb = NULL;
        ok(pho_model_create(&bag, 1, &mb, NULL) == ERD_OK &&
               pho_model_save(mb, path, NULL, NULL) == ERD_OK &&
               pho_model_load(path, &back, NULL) == ERD_OK && back->arch.kind == PHO_ARCH_BAG &&
               !memcmp(back->params, mb->params, sizeof *mb->params * mb->n_params),
           "bag model round trip");
        pho_model_destroy(back);
        pho_model_destroy(mb);
        back = NULL;
        pho_model_arch bad = {PHO_ARCH_BAG, 5, 4, 3, 3, PHO_OUT_PLAIN};
        is_int(pho_model_create(&bad, 1, &mb, NULL), ERD_EINVAL, "bag with conv channels refused");
    }

    is_int(pho_model_save(m, path, "x", NULL), ERD_OK, "save again");
    b = tmpdir_read(path, &len);
    ok(b && len == HDR + 4 * m->n_params + 8, "file size is header + weights + checksum");
    if (!b)
        return tap_done();
    c = malloc(len);

    /* truncation anywhere */
    {
        int all = 1;
        size_t cuts[] = {0, 4, 8, 40, HDR - 1, HDR, HDR + 8, len / 2, len - 9, len - 8, len - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            rc = load_code(b, cuts[i], &d);
            if (rc != ERD_ECORRUPT) {
                all = 0;
                printf("#   cut at %zu gave %d\n", cuts[i], rc);
            }
        }
        ok(all, "truncated files are ERD_ECORRUPT");
    }
    /* a flipped byte anywhere except the version field */
    {
        int all = 1;
        for (size_t pos = 0; pos < len; pos += (pos < HDR ? 1 : 97)) {
            if (pos >= 8 && pos < 12)
                continue;
            memcpy(c, b, len);
            c[pos] ^= 0x10;
            rc = load_code(c, len, &d);
            if (rc != ERD_ECORRUPT) {
                all = 0;
                printf("#   flip at %zu gave %d\n", pos, rc);
            }
        }
        memcpy(c, b, len);
        c[len - 1] ^= 1;
        if (load_code(c, len, &d) != ERD_ECORRUPT)
            all = 0;
        ok(all, "a flipped byte in header, weights or checksum is ERD_ECORRUPT");
        ok(strstr(d.msg, "checksum") != NULL, "message names the checksum: %s", d.msg);
    }
    memcpy(c, b, len);
    c[0] = 'X';
    is_int(load_code(c, len, &d), ERD_ECORRUPT, "bad magic");
    /* deliberate, correctly sealed changes */
    memcpy(c, b, len);
    put32(c + 8, 99);
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_EMISMATCH, "unknown format version is ERD_EMISMATCH");
    ok(strstr(d.msg, "version 99") != NULL, "message names the version: %s", d.msg);
    memcpy(c, b, len);
    c[40] ^= 0xff; /* inventory hash */
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_EMISMATCH, "other phone inventory is ERD_EMISMATCH");
    ok(strstr(d.msg, "inventory") != NULL, "message names the inventory: %s", d.msg);
    memcpy(c, b, len);
    put32(c + 32, PHO_N_PHONES + 1);
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_EMISMATCH, "other phone count is ERD_EMISMATCH");
    memcpy(c, b, len);
    put32(c + 16, 9); /* emb width that does not match the weights */
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_ECORRUPT, "header dims disagreeing with the size");
    memcpy(c, b, len);
    put32(c + 16, 0);
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_ECORRUPT, "impossible architecture in the header");
    memcpy(c, b, len);
    put32(c + HDR + 4 * 5, 0x7fc00000u); /* NaN */
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_ECORRUPT, "non-finite weight");
    memcpy(c, b, len);
    memset(c + 56, 'a', 256); /* metadata without its NUL */
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_ECORRUPT, "unterminated metadata");
    memcpy(c, b, len);
    reseal(c, len);
    is_int(load_code(c, len, &d), ERD_OK, "resealing alone changes nothing");

    /* file-level errors */
    is_int(pho_model_load("/nonexistent/erd-model.bin", &back, &d), ERD_ENOTFOUND, "missing file");
    ok(strstr(d.msg, "/nonexistent/erd-model.bin") != NULL, "message names the file: %s", d.msg);
    {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, len - 100, f);
        fclose(f);
    }
    back = NULL;
    is_int(pho_model_load(path, &back, &d), ERD_ECORRUPT, "truncated file on disk");
    ok(back == NULL, "ret untouched on failure");
    ok(strstr(d.msg, path) != NULL, "message names the file: %s", d.msg);
    is_int(pho_model_save(m, "/nonexistent-dir/m.bin", NULL, &d), ERD_EIO, "unwritable path");

    free(b);
    free(c);
    pho_model_destroy(m);
    pho_model_destroy(NULL);
    remove(path);
    return tap_done();
}
