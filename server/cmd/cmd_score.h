/* The scoring rules of erd eval and erd calibrate (cmd_score.c). */
#ifndef CMD_SCORE_H
#define CMD_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "index/vix_store.h"
#include "phonetics/pho_text.h"

#define CMD_KEYS_MAX 16

/* The normalised names and aliases of one entity (at most CMD_KEYS_MAX). */
typedef struct cmd_keys {
    size_t n;
    char key[CMD_KEYS_MAX][PHO_TEXT_MAX];
} cmd_keys;

/* Fills ret with the match keys of entity ext_id of the catalog. */
int cmd_keys_for(vix_store *store, int64_t catalog_id, const char *ext_id, cmd_keys *ret);

/* 1 when the two share a key (catalogs hold duplicate titles), else 0. */
int cmd_keys_match(const cmd_keys *gold, const cmd_keys *got);

/* 1 when got_id shares a normalised name or alias with gold_id in the
 * catalog (erd eval's rule: catalogs hold duplicate titles), 0 when not,
 * negative when gold_id is not in the catalog. */
int cmd_same_entity(vix_store *store, int64_t catalog_id, const char *gold_id,
                    const char *got_id);

/* Reliability of n predicted probabilities p against outcomes y: ten bins
 * of width 0.1 (count, mean predicted, observed accuracy), expected
 * calibration error and Brier score, printed under title. */
void cmd_reliability_print(FILE *out, const char *title, const double *p, const uint8_t *y,
                           size_t n);

/* Area under the ROC curve of scores pos (should be high) against neg
 * (should be low), ties counted a half; NAN when either side is empty. */
double cmd_auroc(const double *pos, size_t n_pos, const double *neg, size_t n_neg);

/* The threshold that keeps the share keep of the scores pos (at or above
 * it): the lowest of the top keep of them. */
double cmd_keep_threshold(const double *pos, size_t n_pos, double keep);

#endif
