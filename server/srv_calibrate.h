/* erd calibrate: fits the score calibration (index/vix_calib.h) on held-out
 * simulated queries; and the reliability table erd eval prints too. */
#ifndef SRV_CALIBRATE_H
#define SRV_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "index/vix_store.h"

int srv_cli_calibrate(int argc, char **argv);

/* 1 when got_id shares a normalised name or alias with gold_id in the
 * catalog (erd eval's rule: catalogs hold duplicate titles), 0 when not,
 * negative when gold_id is not in the catalog.  Lives in srv_eval.c. */
int srv_eval_same_entity(vix_store *store, int64_t catalog_id, const char *gold_id,
                         const char *got_id);

/* Reliability of n predicted probabilities p against outcomes y: ten bins
 * of width 0.1 (count, mean predicted, observed accuracy), expected
 * calibration error and Brier score, printed under title. */
void srv_reliability_print(FILE *out, const char *title, const double *p, const uint8_t *y,
                           size_t n);

/* Area under the ROC curve of scores pos (should be high) against neg
 * (should be low), ties counted a half; NAN when either side is empty. */
double srv_auroc(const double *pos, size_t n_pos, const double *neg, size_t n_neg);

/* The threshold that keeps the share keep of the scores pos (at or above
 * it): the lowest of the top keep of them. */
double srv_keep_threshold(const double *pos, size_t n_pos, double keep);

#endif
