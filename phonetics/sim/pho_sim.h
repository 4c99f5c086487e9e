/* ASR-error simulator: a phrase is spoken by a flite or festival voice,
 * perturbed in speed and pitch by sox, optionally given a room (reverberation),
 * mixed with coloured noise or babble at a random SNR, optionally squeezed
 * through a telephone channel, and decoded by pocketsphinx
 * into an n-best list, the way the project's dev set was made.  Every random
 * choice is a function of (seed, phrase index), so a record does not depend
 * on how many workers ran or in which order. */
#ifndef PHO_SIM_H
#define PHO_SIM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define PHO_SIM_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#define PHO_SIM_NBEST_MAX 20
#define PHO_SIM_VOICES_MAX 16
#define PHO_SIM_VOICE_MAX 32
/* Longest phrase or hypothesis kept, bytes including NUL; longer hypotheses
 * are cut at a word boundary. */
#define PHO_SIM_TEXT_MAX 512

enum pho_noise_kind {
    PHO_NOISE_NONE,
    PHO_NOISE_WHITE,
    PHO_NOISE_PINK,
    PHO_NOISE_BROWN,
    PHO_NOISE_BABBLE /* other synthetic talkers mixed underneath */
};

/* Talkers mixed into one babble track. */
#define PHO_SIM_BABBLE_TALKERS 3

typedef struct pho_sim_opts {
    const char *model_dir; /* NULL: PHO_SIM_MODEL_DIR (en-us/, en-us.lm.bin, cmudict) */
    const char *flite;     /* NULL: "flite", looked up in PATH */
    const char *sox;       /* NULL: "sox" */
    const char *text2wave; /* NULL: "text2wave" (festival), for "festival:" voices */
    const char *tmp_parent; /* NULL: $TMPDIR or /tmp */
    /* "slt" or "flite:slt" for a flite voice, "festival:kal_diphone" for a
     * festival one. */
    char voices[PHO_SIM_VOICES_MAX][PHO_SIM_VOICE_MAX];
    size_t n_voices;
    double speed_min, speed_max; /* sox speed factor (tempo and pitch) */
    double noise_prob;           /* share of utterances with noise */
    double snr_min, snr_max;     /* dB, speech level over noise level */
    double pitch_cents;          /* pitch shift drawn from +-this (sox pitch); 0: none */
    double babble_share;         /* share of noisy utterances whose noise is babble */
    double reverb_prob;          /* share of utterances spoken in a reverberant room */
    double phone_prob;           /* share sent through a telephone channel */
    int nbest;                   /* 1..PHO_SIM_NBEST_MAX distinct hypotheses */
    uint64_t seed;
} pho_sim_opts;

/* Defaults: voices slt rms awb kal, speed 0.85..1.15, noise 0.3 at 20..40 dB
 * SNR, 5-best, seed 1; no pitch shift, babble, room or telephone (the
 * settings the shipped v1-v3 data was made with). */
void pho_sim_opts_init(pho_sim_opts *o);
/* Replaces o->voices with a comma-separated list: "slt,rms,festival:kal_diphone". */
int pho_sim_opts_set_voices(pho_sim_opts *o, const char *list, erd_diag *diag);
int pho_sim_opts_check(const pho_sim_opts *o, erd_diag *diag);

/* How one utterance is rendered. */
typedef struct pho_sim_plan {
    const char *voice; /* points into pho_sim_opts.voices */
    double speed;      /* rounded to 3 decimals, as written out */
    enum pho_noise_kind noise;
    double snr_db; /* rounded to 1 decimal; meaningful when noise != NONE */
    uint64_t noise_seed;
    double pitch_cents; /* rounded to whole cents; 0: none */
    /* Babble talkers: each picks a phrase of the run and a flite voice. */
    uint64_t babble_pick[PHO_SIM_BABBLE_TALKERS];
    int reverb;            /* a room: the four sox reverb parameters below */
    double reverberance;   /* % */
    double hf_damping;     /* % */
    double room_scale;     /* % */
    double pre_delay_ms;
    int telephone; /* band-limited, G.711 mu-law */
    double phone_low_hz, phone_high_hz;
} pho_sim_plan;

void pho_sim_plan_for(const pho_sim_opts *o, uint64_t index, pho_sim_plan *ret);
const char *pho_noise_name(enum pho_noise_kind k);

typedef struct pho_sim_hyp {
    char text[PHO_SIM_TEXT_MAX];
    int32_t score;
} pho_sim_hyp;

typedef struct pho_sim_result {
    pho_sim_plan plan;
    size_t n_hyps; /* 0 when the decoder heard nothing */
    pho_sim_hyp hyps[PHO_SIM_NBEST_MAX];
    double audio_sec; /* after perturbation */
} pho_sim_result;

/* One decoder and a scratch directory: workers run in parallel, each with
 * its own.  Loading the models takes about a second. */
typedef struct pho_sim_worker pho_sim_worker;

/* tmp_dir must exist; the worker's scratch files go there, named by id. */
int pho_sim_worker_create(const pho_sim_opts *o, const char *tmp_dir, int id,
                          pho_sim_worker **ret, erd_diag *diag);
/* Phrases babble talkers say (borrowed, must outlive the worker); without
 * a pool a babble talker says the utterance's own phrase. */
void pho_sim_worker_set_babble(pho_sim_worker *w, char *const *pool, size_t n);
void pho_sim_worker_destroy(pho_sim_worker *w); /* accepts NULL */

/* Speaks, perturbs and decodes one phrase.  ERD_EIO when flite or sox fail
 * for it (the diag carries their message), which costs only that phrase. */
int pho_sim_worker_run(pho_sim_worker *w, uint64_t index, const char *phrase,
                       pho_sim_result *ret, erd_diag *diag);

/* One output record as a JSON line (no newline), shaped like the dev set:
 * {"id":"sim-<index>","spoken","voice":"flite:<v>"|"festival:<v>",
 * "perturb":{"speed","noise",["noise_type","snr_db"],["pitch_cents"],
 * ["reverb":{...}],["channel":{"type":"telephone","low_hz","high_hz"}]},"nbest":[{"text","score"}...]}.
 * *ret is malloc'd. */
int pho_sim_record_json(uint64_t index, const char *phrase, const pho_sim_result *r, char **ret,
                        erd_diag *diag);

/* ---- batch runs ---------------------------------------------------------- */

typedef struct pho_sim_progress {
    size_t total;   /* phrases in the input */
    size_t skipped; /* already in the output when the run started */
    size_t done;    /* written by this run */
    size_t failed;  /* synthesis or decoding failed, not written */
    double elapsed; /* seconds since the workers started */
    double audio_sec;
} pho_sim_progress;

typedef struct pho_sim_batch {
    const char *in_path;  /* one phrase per line; blank lines are ignored */
    const char *out_path; /* JSON lines, appended to and resumed from */
    int jobs;             /* worker threads, >= 1 */
    volatile sig_atomic_t *stop; /* optional: set non-zero to finish early */
    /* Called from the writing thread after every record and after every
     * failure (index, phrase and diag set for a failure, else NULL). */
    void (*report)(void *ctx, const pho_sim_progress *p, uint64_t index, const char *phrase,
                   const erd_diag *failure);
    void *ctx;
} pho_sim_batch;

/* Simulates every phrase of in_path whose id is not yet in out_path.  Records
 * reach the file as they finish (so in no fixed order), each flushed whole; a
 * line cut short by a crash is dropped on the next run.  ERD_EMISMATCH when
 * out_path holds records of a different phrase list. */
int pho_sim_run_batch(const pho_sim_opts *o, const pho_sim_batch *b, pho_sim_progress *ret,
                      erd_diag *diag);

#endif
