/* The erd command line: one function per subcommand, each taking the
 * arguments after the subcommand name and returning the process exit code. */
#ifndef CMD_CLI_H
#define CMD_CLI_H

#include <jansson.h>

#include "index/vix_resolve.h"
#include "proto/erd_error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, as sysexits(3) has them where one fits. */
enum {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAIL = 1,     /* the operation failed */
    CMD_EXIT_USAGE = 2,    /* bad command line */
    CMD_EXIT_DATAERR = 65, /* bad input data */
    CMD_EXIT_NOINPUT = 66, /* input file missing */
    CMD_EXIT_CONFIG = 78,  /* bad configuration */
};

int cmd_import(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_catalog(int argc, char **argv);
int cmd_entity(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);

/* Points the encoders' model lookup at setting, or for "auto" (and NULL) at
 * phonetics/models above the erd binary's folder. */
int cmd_model_dir(const char *setting);

/* The one start-up path of erd serve and every command.  Configuration in
 * order of precedence, lowest first: built-in defaults, the file named by
 * path (or $ERD_CONFIG when path is NULL), ERD_* variables, overrides
 * (NULL-ended key, value pairs from flags; may be NULL); with secrets (only
 * the server uses them) the admin token file too, so a command never fails
 * on a token file it cannot read.  Then the process-wide settings: the SIMD
 * limit and the model lookup at model_dir.  *ret set only on success. */
struct cfg_config;
int cmd_startup(const char *path, const char *const *overrides, int secrets,
                struct cfg_config *ret, erd_diag *diag);

/* The start of a command that reads a queries file: the start-up path,
 * then the file opened.  On failure says why on stderr and returns the
 * exit code; CMD_EXIT_OK with *ret_cfg and *ret_in set otherwise. */
int cmd_open_queries(const char *cmd, const char *config, const char *queries,
                     struct cfg_config *ret_cfg, FILE **ret_in);

/* Simulated records (JSON lines, erd simulate's format) read one by one:
 * fn gets each record; a failure names the file and line.  path "-" is
 * standard input; blank lines are skipped; a last line without its newline
 * is a record a running simulation is still writing: left out and counted
 * as partial.  checksum (FNV-1a 64, seeded by the caller) covers the lines
 * read, in order. */
typedef int cmd_record_fn(void *user, json_t *record, erd_diag *diag);
typedef struct cmd_record_stats {
    uint64_t records, partial, checksum;
} cmd_record_stats;
int cmd_each_record(const char *path, cmd_record_fn *fn, void *user, cmd_record_stats *st,
                    erd_diag *diag);

/* The G2P of a training command for voice; with second, refused unless the
 * voice gives names a second pronunciation ("+cmu"), as the command's
 * --second-pronunciation needs.  *ret set only on success. */
struct pho_g2p;
int cmd_training_g2p(const char *voice, int second, struct pho_g2p **ret, erd_diag *diag);

/* Exit code for an erd error code. */
int cmd_exit_code(int err);

/* The one number parser of every command's options: a whole decimal number
 * from 0 to max, or a finite decimal number.  Anything else ("abc", "5x",
 * "-1", out of range) prints "erd CMD: --OPT wants ..." and returns
 * ERD_EINVAL; *ret is set only on success. */
int cmd_parse_uint(const char *cmd, const char *opt, const char *s, unsigned long long max,
                   unsigned long long *ret);
int cmd_parse_real(const char *cmd, const char *opt, const char *s, double *ret);

/* Prints "erd CMD: message" and returns err's exit code. */
int cmd_fail(const char *cmd, const erd_diag *diag, int err);
/* Points at --help and returns the usage exit code. */
int cmd_bad_usage(const char *cmd);

/* The rerank spec to hand the resolver: spec itself, or with its relative
 * channel file resolved against the folder above the erd binary's (a build
 * folder inside the source tree) when the working directory lacks it, so
 * the default works from anywhere in a checkout. */
const char *cmd_rerank_spec(const char *spec, char *buf, size_t cap);

/* The hypotheses of a dev-format "nbest" array of {"text", "score"} (the
 * score optional), at most cap; texts point into the array. */
size_t cmd_nbest(json_t *nbest, vix_hypothesis *hyps, size_t cap);

#endif
