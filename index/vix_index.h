/* A vector index through the FAISS C API: inner product over unit vectors,
 * entity rowids as FAISS ids (an entity may own several vectors, one per name
 * or alias, all under its rowid).  FAISS keeps its last error text per
 * thread; it is copied into the diag right after a failing call. */
#ifndef VIX_INDEX_H
#define VIX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

typedef struct vix_index vix_index;

/* factory: a FAISS index_factory string such as "Flat" or "HNSW32";
 * wrapped in an IDMap when it does not take ids itself.  Metric is inner
 * product.  "FACTORY|PARAMS" also sets search parameters (FAISS
 * ParameterSpace syntax: "IVF1024,PQ16|nprobe=16", "HNSW32|efSearch=64"),
 * which are saved with the index.  *ret set only on success. */
int vix_index_create(const char *factory, size_t dim, vix_index **ret, erd_diag *diag);
void vix_index_destroy(vix_index *index); /* accepts NULL */

/* Whether the index needs no (more) training: false for an untrained IVF or PQ. */
int vix_index_is_trained(const vix_index *index);
/* Trains when the index needs it (IVF, PQ) on the vectors given. */
int vix_index_train(vix_index *index, size_t n, const float *x, erd_diag *diag);
/* Training vectors the index would like beyond the caller's usual sample
 * (0: no wish). */
size_t vix_index_train_want(const vix_index *index);
int vix_index_add(vix_index *index, size_t n, const float *x, const int64_t *ids, erd_diag *diag);
/* For an index of ids over flat storage (IDMap,Flat): appends n vectors
 * with ids, all zero, growing the storage once to its final size, and sets
 * *ret_x to their floats (n * dim) for the caller to fill in place before
 * the index is searched or written.  A builder adding chunk by chunk would
 * otherwise make FAISS double its array, holding both copies at once.
 * ERD_ENOTFOUND for other index types (add chunk by chunk instead). */
int vix_index_add_zeroed(vix_index *index, size_t n, const int64_t *ids, float **ret_x,
                         erd_diag *diag);

/* For each of nq queries writes k (score, id) pairs best first; missing
 * results have id -1 and score -INFINITY.  Safe to call from several threads
 * at once on the same index. */
int vix_index_search(const vix_index *index, size_t nq, const float *queries, size_t k,
                     float *ret_scores, int64_t *ret_ids, erd_diag *diag);

/* Search-time parameters in FAISS ParameterSpace form, "nprobe=32" or
 * "efSearch=128" (comma-separated for several); written with the index. */
int vix_index_set_params(vix_index *index, const char *params, erd_diag *diag);

/* Whether index is erd's own IVF (vix_ivf.h), whose parameters are nprobe,
 * gprobe and rescore. */
bool vix_index_is_erd_ivf(const vix_index *index);
size_t vix_index_dim(const vix_index *index);
size_t vix_index_count(const vix_index *index);

/* Writes to path + ".tmp", fsyncs, renames over path, fsyncs the directory. */
int vix_index_write(const vix_index *index, const char *path, erd_diag *diag);
/* ERD_EIO when missing/unreadable, ERD_ECORRUPT when FAISS rejects it. */
int vix_index_read(const char *path, vix_index **ret, erd_diag *diag);

/* Caps the vector instruction sets of erd's own scan and rerank kernels:
 * "auto" (all the CPU has), "avx512-vnni", "avx512-bf16", "avx512", "avx2"
 * or "base";
 * results are the same under every one.  A flat index keeps the layout it
 * was loaded with.  For comparing kernels, and a way around a CPU fault. */
int vix_simd_limit(const char *name, erd_diag *diag);
/* The instruction set in use: the CPU's widest, within the cap. */
const char *vix_simd_name(void);

#endif
