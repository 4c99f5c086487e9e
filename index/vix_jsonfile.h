/* Model files of index/ written as JSON with a checksum (the learned ranker,
 * the command table): the checksum is FNV-1a 64 of the canonical text
 * (sorted keys, compact, 17 significant digits) of everything but the
 * "checksum" member, so a file reindented by hand still loads and one
 * whose values were edited does not.  Internal to index/. */
#ifndef VIX_JSONFILE_H
#define VIX_JSONFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

/* Adds "checksum" to o and writes it, indented, to path (atomically);
 * *ret_sum is set only on success. */
int vix__json_save_summed(json_t *o, const char *path, uint64_t *ret_sum, erd_diag *diag);

/* Reads path, checks and removes its "checksum"; *ret (the caller's to
 * json_decref) and *ret_sum are set only on success.  ERD_ENOTFOUND or
 * ERD_EIO when it cannot be read, ERD_ECORRUPT when it is no JSON or its
 * checksum is missing or wrong. */
int vix__json_load_summed(const char *path, json_t **ret, uint64_t *ret_sum, erd_diag *diag);

/* n finite numbers of the JSON array a into out: ERD_ECORRUPT when a is
 * no array of exactly n of them. */
int vix__json_numbers(const json_t *a, size_t n, double *out);

#endif
