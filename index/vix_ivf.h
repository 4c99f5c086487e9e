/* erd's own inverted-file index: coarse centroids from FAISS's k-means,
 * inverted lists of low-bit scalar codes (vix_sq.h) scanned by erd's SIMD
 * kernels, the best candidates rescored exactly from float vectors.
 *
 * Factory string "erdIVF<nlist>,SQ<bits>" (bits 8, 4 or 2), search
 * parameters "nprobe=N" (lists scanned) and "rescore=N" (candidates
 * rescored exactly: the larger of N and the k asked for).
 *
 * "erdIVF<nlist>_G<groups>,SQ<bits>" makes the coarse stage two-level, for
 * catalogs of tens of millions: k-means puts the vectors into <groups>
 * groups, each group's members are clustered into its share of the lists,
 * and a search scores the group centroids, then the lists of the best
 * "gprobe=N" groups only.  Scoring 64k centroids per hypothesis, or
 * assigning 15M vectors to them, would cost more than the scan they save.
 *
 * File format, made to be memory-mapped: a header, then aligned arrays
 * (per-dimension lo and step, the centroids in blocks of 16, list offsets,
 * ids, code blocks, float vectors; codes and floats start on pages).  Each
 * list is padded to whole blocks of 16 with id -1.  A loaded index maps the
 * file read-only: replicas share its pages, the float vectors are read only
 * for the candidates they rescore, and a server is ready without reading
 * the whole file.  Used through vix_index.h. */
#ifndef VIX_IVF_H
#define VIX_IVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/erd_error.h"

#define VIX_IVF_MAGIC "ERDIVF01"
#define VIX_IVF_NPROBE 128
#define VIX_IVF_RESCORE 256
/* Groups of lists probed when the coarse stage has two levels. */
#define VIX_IVF_GPROBE 16

/* What a factory string asks for: groups 0 is one flat coarse stage. */
typedef struct vix_ivf_spec {
    size_t nlist, groups;
    int bits;
} vix_ivf_spec;

typedef struct vix_ivf vix_ivf;

/* ERD_OK with nlist and bits when factory (before any '|') is an erd
 * factory string; ERD_ENOTFOUND when it is not one (a FAISS string);
 * ERD_EINVAL when it starts like one but is malformed. */
int vix_ivf_parse(const char *factory, vix_ivf_spec *ret, erd_diag *diag);

int vix_ivf_create(size_t dim, const vix_ivf_spec *spec, vix_ivf **ret, erd_diag *diag);
void vix_ivf_destroy(vix_ivf *ivf); /* accepts NULL */

bool vix_ivf_is_trained(const vix_ivf *ivf);
/* k-means centroids (FAISS) and the scalar quantiser's ranges, on n vectors. */
int vix_ivf_train(vix_ivf *ivf, size_t n, const float *x, erd_diag *diag);
/* Each vector to the list of its nearest centroid (by inner product).
 * ERD_EUNSUPPORTED on an index read from a file (those are read-only). */
int vix_ivf_add(vix_ivf *ivf, size_t n, const float *x, const int64_t *ids, erd_diag *diag);
/* k best (score, id) pairs, best first, by exact inner product among the
 * rescored candidates; missing results id -1, score -INFINITY. */
int vix_ivf_search(const vix_ivf *ivf, const float *q, size_t k, float *ret_scores,
                   int64_t *ret_ids, erd_diag *diag);
int vix_ivf_set_params(vix_ivf *ivf, const char *params, erd_diag *diag);
/* Floats read with pread are read a search's candidates at a time through
 * an io_uring where the kernel allows it (default); false: one pread each
 * (tests compare the two). */
void vix_ivf_batched_reads(bool on);
/* Searches whose probed lists hold at least this many codes (0: the
 * default, 65,536) scan half of them in a second thread; the answers are
 * the same either way (tests compare SIZE_MAX, never, with 1, always). */
void vix_ivf_split_scan_min(size_t vectors);
/* ERD_OK when vix_ivf_set_params would take params, else ERD_EINVAL saying why. */
int vix_ivf_params_check(const char *params, erd_diag *diag);

size_t vix_ivf_count(const vix_ivf *ivf);
size_t vix_ivf_dim(const vix_ivf *ivf);
/* Bytes of scan codes and ids held per vector (the in-memory part). */
size_t vix_ivf_code_bytes(const vix_ivf *ivf);
/* Training vectors the coarse stage wants (a two-level one clusters each
 * group on its own members, so it asks for more than a flat one). */
size_t vix_ivf_train_want(const vix_ivf *ivf);

/* The file image, written to f. */
int vix_ivf_write(const vix_ivf *ivf, FILE *f, erd_diag *diag);
/* Maps the file at path; ERD_ECORRUPT when its header or offsets do not add up. */
int vix_ivf_read(const char *path, vix_ivf **ret, erd_diag *diag);
/* Floats of an index file larger than this (0: the default, 2 GiB) are read
 * with pread when rescoring instead of through the map, so a long-running
 * server's resident set does not grow with every page it rescored from.
 * Process-wide, for files read after the call. */
void vix_ivf_mapped_floats_max(uint64_t bytes);

#endif
