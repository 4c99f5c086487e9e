/* How much a hypothesis reads like something said to an assistant rather
 * than a catalog name: "turn off the lights in the kitchen", "what time is
 * it", "call mom".
 *
 * The alignment features of the calibration say how well the best name
 * explains what was heard; a command that happens to share phones with a
 * title ("... in the kitchen" against "My Life in the Kitchen") explains
 * part of it well.  Its words tell it apart: commands are built from verbs
 * and function words ("turn", "set", "what is", "my", "please") that titles
 * rarely string together.  A binarised naive-Bayes table of word unigram
 * and bigram log-odds, fitted on commands against title-like phrases and
 * what a recogniser heard of them, scores a normalised text; the open-set
 * calibration weighs that score beside the alignment features.
 *
 * The table lives in a JSON file with a checksum; the rerank spec names it
 * (",command=FILE") so a calibration fitted with it records it too. */
#ifndef VIX_COMMAND_H
#define VIX_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define VIX_COMMAND_VERSION 1
/* Bound of a text's score: a long command piles up evidence that says
 * nothing more once it is clear. */
#define VIX_COMMAND_SCORE_MAX 8.0

typedef struct vix_command vix_command;

typedef struct vix_command_fit_opts {
    double alpha;     /* pseudo-texts of the commands' side; the names' in proportion (default 3) */
    size_t min_count; /* n-grams seen in fewer texts of both sides are dropped (default 3) */
    double clip;      /* |log-odds| of one n-gram at most (default 4) */
    double keep;      /* n-grams whose |log-odds| is below this are dropped (default 0.25) */
} vix_command_fit_opts;

void vix_command_fit_opts_init(vix_command_fit_opts *opts);

/* Fits the table on normalised texts (pho_normalize): commands[0..n_commands)
 * against names[0..n_names).  ERD_EINVAL when either side is empty. */
int vix_command_fit(const char *const *commands, size_t n_commands, const char *const *names,
                    size_t n_names, const vix_command_fit_opts *opts, vix_command **ret,
                    erd_diag *diag);

/* Writes the table with provenance (free text) and a checksum. */
int vix_command_save(vix_command *cmd, const char *path, const char *provenance, erd_diag *diag);
int vix_command_load(const char *path, vix_command **ret, erd_diag *diag);
void vix_command_destroy(vix_command *cmd); /* accepts NULL */

/* Of the file it was loaded from or saved to (0 before either). */
uint64_t vix_command_checksum(const vix_command *cmd);
size_t vix_command_size(const vix_command *cmd); /* n-grams held */

/* Log-odds that a normalised text is a command: the sum over its words and
 * word pairs in the table, over the square root of their number (a long
 * title's chance words weigh less than a short command's), within
 * +-VIX_COMMAND_SCORE_MAX.  0 for a text none of whose words are known. */
double vix_command_score(const vix_command *cmd, const char *text, size_t len);

/* The log-odds of one n-gram ("turn" or "turn off"); 0 when not held. */
double vix_command_ngram(const vix_command *cmd, const char *ngram, size_t len);

#endif
