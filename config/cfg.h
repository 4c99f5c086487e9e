/* erd configuration.  One table (CFG_TABLE in cfg.c) drives the struct's
 * defaults, parsing of config files, ERD_* environment overrides, validation
 * and `erd config --dump`. */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "proto/erd_error.h"

typedef struct cfg_config {
    char listen[128];          /* host:port */
    char db[1024];             /* SQLite file */
    int threads;               /* HTTP worker threads; 0 = one per core */
    char http_threading[16];   /* "connection" or "pool" */
    int max_connections;
    int max_connections_per_ip; /* 0 = no per-address limit */
    int max_half_open_per_ip;   /* 0 = no limit */
    int request_timeout_s;
    int header_timeout_s;
    int body_timeout_s;
    size_t max_body_bytes;
    size_t max_bulk_bytes;     /* streamed bulk uploads */
    int max_hypotheses;
    size_t max_text_bytes;
    int default_k;
    int max_k;
    size_t g2p_cache_entries;
    char g2p_voice[64];
    char encoder[1024];        /* encoder spec for builds */
    char model_dir[1024];      /* where relative model files are found; "auto" */
    char faiss_factory[128];
    size_t index_flat_max;
    int ivf_nprobe;
    char ivf_search[64];       /* erd IVF search parameters at load; "": the file's */
    int hnsw_ef_search;
    char simd[16];             /* cap on erd's own SIMD kernels: "auto", "avx2", ... */
    int candidates;
    char rerank[1024];         /* second-stage rerank spec, or "off" */
    char calibration[1024];    /* calibration file, or "off" */
    char no_match_threshold[1024]; /* "auto", a number, CATALOG=auto|NUMBER, comma separated */
    size_t delta_max;          /* pending changes before a background rebuild; 0 = never */
    size_t delta_max_bytes;    /* heap a delta may hold before it waits for a rebuild */
    int sync_interval_ms;
    bool log_requests;
    char resolve_token[256];   /* secrets: empty = not set */
    char admin_token[256];
    char admin_token_file[1024];
    char metrics_token[256];
} cfg_config;

/* What `erd config --dump` prints instead of a token that is set; a file
 * holding it is refused rather than taken as the token. */
#define CFG_SECRET_PLACEHOLDER "<set>"

/* Fills cfg with the table's defaults. */
void cfg_defaults(cfg_config *cfg);

/* Sets one key from its text value; ERD_ENOTFOUND for an unknown key,
 * ERD_ECONFIG for a value that fails validation (diag names the key). */
int cfg_set(cfg_config *cfg, const char *key, const char *value, erd_diag *diag);

/* Reads "key value" lines (# comments, blank lines) from path; errors name the
 * file, line and key.  Nothing in cfg changes unless the whole file is valid. */
int cfg_load_file(cfg_config *cfg, const char *path, erd_diag *diag);

/* Applies ERD_<KEY> environment variables (key upper-cased). */
int cfg_load_env(cfg_config *cfg, erd_diag *diag);

/* Replaces admin_token with the first line of admin_token_file when that is
 * set (ERD_ECONFIG when both are set, or the file is unreadable or holds no
 * valid token).  Meant for a freshly loaded configuration, once. */
int cfg_load_secrets(cfg_config *cfg, erd_diag *diag);

/* The settings: defaults, the file at path (none when NULL or ""), ERD_*
 * variables, then overrides (NULL-ended key, value pairs from command-line
 * flags; a bad one is ERD_EINVAL naming "--key").  *ret set only on success. */
int cfg_load_settings(cfg_config *ret, const char *path, const char *const *overrides,
                      erd_diag *diag);

/* The whole start-up sequence of the server, also run by a reload:
 * cfg_load_settings, then cfg_load_secrets.  *ret set only on success. */
int cfg_load(cfg_config *ret, const char *path, const char *const *overrides, erd_diag *diag);

/* Cross-key constraints (default_k <= max_k, ...). */
int cfg_validate(const cfg_config *cfg, erd_diag *diag);

/* The table's default for key, as text (what help texts print); NULL for
 * an unknown key. */
const char *cfg_default(const char *key);

/* The no_match_threshold spec's value for catalog (NULL: only check the
 * spec): 1 with *ret set when it gives a number, 0 for auto (the
 * calibration's own threshold), ERD_ECONFIG when malformed.  A catalog's
 * own entry wins over the global one. */
int cfg_no_match_threshold(const char *spec, const char *catalog, double *ret);

/* Whether a running server applies a new value of key on reload (SIGHUP);
 * the others are bound at start. */
bool cfg_reloadable(const char *key);

/* Names of the keys whose values differ between a and b, restricted to the
 * reloadable ones or to the others, as "k1, k2" in out[0..cap) (cut to fit,
 * never the values: some are secrets).  Returns how many differ. */
size_t cfg_diff(const cfg_config *a, const cfg_config *b, bool reloadable, char *out, size_t cap);

/* Copies the value of every reloadable key from src into dst. */
void cfg_copy_reloadable(cfg_config *dst, const cfg_config *src);

/* Writes every setting with its current value and documentation; secrets
 * that are set appear as CFG_SECRET_PLACEHOLDER. */
void cfg_dump(const cfg_config *cfg, FILE *out);

#endif
