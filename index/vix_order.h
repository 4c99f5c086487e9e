/* The order of the top results: a listwise linear model over the open-set
 * features the calibration computes for each result (alignment fit and
 * coverage, word misses, first-stage cosine, ...), which the rerank's blend
 * of two scores does not see.  It reorders the first `top` results of the
 * rerank; their scores keep the rerank's sequence (the first result the
 * highest), so that scores stay best first and the calibration reads the
 * same score distribution.  Fitted on held-out simulated queries by
 * deploy/order-probe.py (never dev); the file is JSON with a checksum
 * (vix_jsonfile.h), recording the rerank configuration it was fitted
 * under. */
#ifndef VIX_ORDER_H
#define VIX_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "index/vix_calib.h"
#include "proto/erd_error.h"

#define VIX_ORDER_VERSION 1
#define VIX_ORDER_TOP_MAX 20

typedef struct vix_order {
    size_t top;        /* results reordered, 2..VIX_ORDER_TOP_MAX */
    size_t n_feat;     /* features used */
    int feat[VIX_CALIB_NFEAT]; /* their VIX_CF_* numbers */
    double mean[VIX_CALIB_NFEAT], scale[VIX_CALIB_NFEAT], w[VIX_CALIB_NFEAT];
    char rerank_id[VIX_CALIB_ID_MAX]; /* rerank configuration the features came from */
    char provenance[512];
    uint64_t checksum;
} vix_order;

/* *ret set only on success: ERD_ECORRUPT for a malformed file or a wrong
 * checksum, ERD_EMISMATCH for another version or a feature this erd does
 * not compute. */
int vix_order_load(const char *path, vix_order *ret, erd_diag *diag);

/* The model's score for one result's features x (VIX_CALIB_NFEAT of them). */
double vix_order_score(const vix_order *o, const double *x);

/* perm[0..n): the results' new order, best first by score, ties kept in
 * their old order, a NaN score counted as the lowest. */
void vix_order_rank(const double *score, size_t n, size_t *perm);

#endif
