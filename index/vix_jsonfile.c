/* Checksummed JSON model files (vix_jsonfile.h). */
#include "index/vix_jsonfile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/erd_file.h"
#include "proto/erd_hash.h"

static uint64_t vix__json_sum(json_t *o)
{
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    uint64_t sum = s ? erd_fnv1a64(ERD_FNV1A64_OFFSET, s, strlen(s)) : 0;
    free(s);
    return sum;
}

int vix__json_save_summed(json_t *o, const char *path, uint64_t *ret_sum, erd_diag *diag)
{
    char sum_text[32];
    uint64_t sum = vix__json_sum(o);
    snprintf(sum_text, sizeof sum_text, "fnv1a64:%016" PRIx64, sum);
    char *text = json_object_set_new(o, "checksum", json_string(sum_text)) < 0
                     ? NULL
                     : json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!text)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the final newline: len + 1 bytes written */
    int rc = erd_file_replace(path, text, len + 1, diag);
    free(text);
    if (rc == ERD_OK)
        *ret_sum = sum;
    return rc;
}

int vix__json_load_summed(const char *path, json_t **ret, uint64_t *ret_sum, erd_diag *diag)
{
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                            strerror(errno));
        fclose(f);
        return erd_fail(diag, ERD_ECORRUPT, "%s:%d: %s", path, jerr.line, jerr.text);
    }
    const char *sum_text = json_string_value(json_object_get(o, "checksum"));
    uint64_t want = 0;
    if (!sum_text || sscanf(sum_text, "fnv1a64:%16" SCNx64, &want) != 1) {
        json_decref(o);
        return erd_fail(diag, ERD_ECORRUPT, "%s: no checksum", path);
    }
    json_object_del(o, "checksum");
    uint64_t sum = vix__json_sum(o);
    if (sum != want) {
        json_decref(o);
        return erd_fail(diag, ERD_ECORRUPT, "%s: checksum does not match: damaged or edited",
                        path);
    }
    *ret = o;
    *ret_sum = sum;
    return ERD_OK;
}

int vix__json_numbers(const json_t *a, size_t n, double *out)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return ERD_ECORRUPT;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return ERD_ECORRUPT;
        out[i] = json_number_value(v);
    }
    return ERD_OK;
}
