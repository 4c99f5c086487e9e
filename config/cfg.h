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
    int max_connections;
    int request_timeout_s;
    size_t max_body_bytes;
    int max_hypotheses;
    size_t max_text_bytes;
    int default_k;
    int max_k;
    size_t g2p_cache_entries;
    char g2p_voice[64];
    char encoder[1024];        /* encoder spec for builds */
    char faiss_factory[128];
    int candidates;
    bool log_requests;
} cfg_config;

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

/* Writes every setting with its current value and documentation. */
void cfg_dump(const cfg_config *cfg, FILE *out);

#endif
