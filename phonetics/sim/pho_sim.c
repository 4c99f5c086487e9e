/* ASR-error simulator: flite, festival's text2wave and sox run as child
 * processes (argv, never a shell), pocketsphinx decodes in process with one
 * decoder per worker thread. */
#include "phonetics/sim/pho_sim.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "phonetics/sim/pho_rng.h"

extern char **environ;

#define PHO__RATE 16000
#define PHO__PATH_MAX 4096
#define PHO__BLOCK 2048 /* samples per ps_process_raw call */
/* A* steps spent looking for distinct n-best entries: different word
 * segmentations of one text come out as separate paths, and a long lattice
 * can yield thousands of them. */
#define PHO__NBEST_SCAN 200
/* Ten minutes of audio; no phrase comes near it, a runaway file would. */
#define PHO__MAX_SAMPLES ((size_t)PHO__RATE * 600)
/* Consecutive failures, with nothing done, after which a run gives up: the
 * tools or the voices are broken, not the phrases. */
#define PHO__GIVE_UP 50

/* ---- options and plans ---------------------------------------------------- */

void pho_sim_opts_init(pho_sim_opts *o)
{
    static const char *const voices[] = {"slt", "rms", "awb", "kal"};
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < sizeof voices / sizeof voices[0]; i++)
        snprintf(o->voices[i], sizeof o->voices[i], "%s", voices[i]);
    o->n_voices = sizeof voices / sizeof voices[0];
    o->speed_min = 0.85;
    o->speed_max = 1.15;
    o->noise_prob = 0.3;
    /* pocketsphinx's en-us model breaks down on broadband noise far sooner
     * than a listener would: white noise at 30 dB SNR already ruins most
     * decodes.  20..40 dB costs noisy utterances about a third of their
     * exact 1-best matches, close to what noise costs on the dev set. */
    o->snr_min = 20.0;
    o->snr_max = 40.0;
    o->nbest = 5;
    o->seed = 1;
}

/* A voice is a bare flite name or ENGINE:NAME; the name lands in a festival
 * -eval expression, so only [A-Za-z0-9_-] may appear in it. */
static int pho__voice_ok(const char *p, size_t len)
{
    const char *colon = memchr(p, ':', len);
    if (colon) {
        size_t engine = (size_t)(colon - p);
        if (!((engine == 5 && !strncmp(p, "flite", 5)) ||
              (engine == 8 && !strncmp(p, "festival", 8))))
            return 0;
        len -= engine + 1;
        p = colon + 1;
    }
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-')
            return 0;
    return 1;
}

int pho_sim_opts_set_voices(pho_sim_opts *o, const char *list, erd_diag *diag)
{
    char voices[PHO_SIM_VOICES_MAX][PHO_SIM_VOICE_MAX];
    size_t n = 0;
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (n == PHO_SIM_VOICES_MAX)
                return erd_fail(diag, ERD_ETOOLONG, "at most %d voices", PHO_SIM_VOICES_MAX);
            if (len >= PHO_SIM_VOICE_MAX)
                return erd_fail(diag, ERD_ETOOLONG, "voice name too long: %.*s", (int)len, p);
            if (!pho__voice_ok(p, len))
                return erd_fail(diag, ERD_EINVAL, "bad voice name: %.*s", (int)len, p);
            memcpy(voices[n], p, len);
            voices[n++][len] = '\0';
        }
        p += len;
        p += *p == ',';
    }
    if (n == 0)
        return erd_fail(diag, ERD_EINVAL, "no voices given");
    memcpy(o->voices, voices, sizeof voices);
    o->n_voices = n;
    return ERD_OK;
}

int pho_sim_opts_check(const pho_sim_opts *o, erd_diag *diag)
{
    if (o->n_voices == 0 || o->n_voices > PHO_SIM_VOICES_MAX)
        return erd_fail(diag, ERD_EINVAL, "no voices");
    if (!(o->speed_min > 0.3 && o->speed_max < 3.0 && o->speed_min <= o->speed_max))
        return erd_fail(diag, ERD_EINVAL, "speed range must lie within (0.3, 3) and be ordered");
    if (!(o->noise_prob >= 0.0 && o->noise_prob <= 1.0))
        return erd_fail(diag, ERD_EINVAL, "noise probability must be within [0, 1]");
    if (!(o->snr_min > -20.0 && o->snr_max < 80.0 && o->snr_min <= o->snr_max))
        return erd_fail(diag, ERD_EINVAL, "SNR range must lie within (-20, 80) dB and be ordered");
    if (!(o->pitch_cents >= 0.0 && o->pitch_cents <= 1200.0))
        return erd_fail(diag, ERD_EINVAL, "pitch shift must be within [0, 1200] cents");
    if (!(o->babble_share >= 0.0 && o->babble_share <= 1.0) ||
        !(o->reverb_prob >= 0.0 && o->reverb_prob <= 1.0) ||
        !(o->phone_prob >= 0.0 && o->phone_prob <= 1.0))
        return erd_fail(diag, ERD_EINVAL, "babble, reverb and telephone shares must be within [0, 1]");
    if (o->nbest < 1 || o->nbest > PHO_SIM_NBEST_MAX)
        return erd_fail(diag, ERD_EINVAL, "n-best size must be 1..%d", PHO_SIM_NBEST_MAX);
    return ERD_OK;
}

const char *pho_noise_name(enum pho_noise_kind k)
{
    switch (k) {
    case PHO_NOISE_WHITE: return "white";
    case PHO_NOISE_PINK: return "pink";
    case PHO_NOISE_BROWN: return "brown";
    case PHO_NOISE_BABBLE: return "babble";
    case PHO_NOISE_NONE:
    default: return "none";
    }
}

/* sox reverb's reverberance (%).  Past about 60 % pocketsphinx's 16 kHz
 * model loses most words of a short phrase, as past it a listener would
 * call the room an echoing hall rather than a living room. */
#define PHO__ROOM_MIN 10.0
#define PHO__ROOM_MAX 60.0

/* The choices added after the v1-v3 data: drawn after the original ones,
 * so the original options still give the plans they gave then. */
static void pho__plan_more(const pho_sim_opts *o, pho_rng *r, pho_sim_plan *p)
{
    double pitch = pho_rng_range(r, -o->pitch_cents, o->pitch_cents);
    double babble = pho_rng_unit(r);
    for (size_t i = 0; i < PHO_SIM_BABBLE_TALKERS; i++)
        p->babble_pick[i] = pho_rng_next(r);
    double room = pho_rng_unit(r);
    double reverberance = pho_rng_range(r, PHO__ROOM_MIN, PHO__ROOM_MAX);
    double damping = pho_rng_range(r, 20.0, 80.0);
    double scale = pho_rng_range(r, 20.0, 80.0);
    double pre_delay = pho_rng_range(r, 0.0, 20.0);
    double phone = pho_rng_unit(r);
    double phone_low = pho_rng_range(r, 100.0, 300.0);
    double phone_high = pho_rng_range(r, 3400.0, 7000.0);

    p->pitch_cents = round(pitch);
    if (p->noise != PHO_NOISE_NONE && babble < o->babble_share)
        p->noise = PHO_NOISE_BABBLE;
    p->reverb = room < o->reverb_prob;
    p->reverberance = p->reverb ? round(reverberance) : 0.0;
    p->hf_damping = p->reverb ? round(damping) : 0.0;
    p->room_scale = p->reverb ? round(scale) : 0.0;
    p->pre_delay_ms = p->reverb ? round(pre_delay) : 0.0;
    p->telephone = phone < o->phone_prob;
    p->phone_low_hz = p->telephone ? round(phone_low / 10.0) * 10.0 : 0.0;
    p->phone_high_hz = p->telephone ? round(phone_high / 10.0) * 10.0 : 0.0;
}

void pho_sim_plan_for(const pho_sim_opts *o, uint64_t index, pho_sim_plan *ret)
{
    pho_rng r;
    pho_sim_plan p = {0};
    pho_rng_seed(&r, o->seed, index);
    /* Every draw happens whatever the options, so changing one option (say
     * the noise share) leaves the other choices of a phrase as they were. */
    size_t v = pho_rng_below(&r, o->n_voices ? o->n_voices : 1);
    double speed = pho_rng_range(&r, o->speed_min, o->speed_max);
    double noisy = pho_rng_unit(&r);
    size_t kind = pho_rng_below(&r, 3);
    double snr = pho_rng_range(&r, o->snr_min, o->snr_max);
    p.voice = o->voices[v];
    p.speed = round(speed * 1000.0) / 1000.0;
    p.noise = noisy < o->noise_prob ? (enum pho_noise_kind)(PHO_NOISE_WHITE + kind)
                                    : PHO_NOISE_NONE;
    p.snr_db = round(snr * 10.0) / 10.0;
    p.noise_seed = pho_rng_next(&r);
    pho__plan_more(o, &r, &p);
    *ret = p;
}

/* ---- child processes -------------------------------------------------------- */

/* First line of a tool's stderr, for the failure message. */
static void pho__read_err(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

static int pho__spawn(char *const argv[], const char *err_path, erd_diag *diag)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0, rc;
    char msg[200];

    if (posix_spawn_file_actions_init(&fa) != 0)
        return erd_fail(diag, ERD_ENOMEM, "spawning %s", argv[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return erd_fail(diag, rc == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "cannot run %s: %s",
                        argv[0], strerror(rc));
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return erd_fail(diag, ERD_EIO, "waiting for %s: %s", argv[0], strerror(errno));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return ERD_OK;
    pho__read_err(err_path, msg, sizeof msg);
    if (WIFSIGNALED(status))
        return erd_fail(diag, ERD_EIO, "%s killed by signal %d", argv[0], WTERMSIG(status));
    return erd_fail(diag, ERD_EIO, "%s exited with %d%s%s", argv[0], WEXITSTATUS(status),
                    msg[0] ? ": " : "", msg);
}

/* ---- noise ------------------------------------------------------------------ */

static double pho__gauss(pho_rng *r)
{
    double u1 = pho_rng_unit(r), u2 = pho_rng_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Mean power of the speech: flite pads with silence, so frames more than
 * 30 dB under the loudest one do not count toward the level the SNR is
 * measured against. */
static double pho__speech_power(const int16_t *x, size_t n)
{
    const size_t frame = PHO__RATE / 50;
    double peak = 0.0, sum = 0.0;
    size_t frames = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t s = 0; s < n; s += frame) {
            size_t e = s + frame < n ? s + frame : n;
            double p = 0.0;
            for (size_t i = s; i < e; i++)
                p += (double)x[i] * x[i];
            p /= (double)(e - s);
            if (pass == 0 && p > peak)
                peak = p;
            if (pass == 1 && p >= peak * 1e-3) {
                sum += p;
                frames++;
            }
        }
    }
    return frames ? sum / (double)frames : 0.0;
}

/* Coloured noise of n samples; only its spectral shape matters, the level
 * is set by pho__mix. */
static void pho__colour_noise(double *noise, size_t n, enum pho_noise_kind kind, uint64_t seed)
{
    pho_rng r;
    pho_rng_seed(&r, seed, 0x6e6f697365ull /* "noise" */);
    /* Pink by Paul Kellet's filter bank, brown by a leaky integrator. */
    double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, brown = 0;
    for (size_t i = 0; i < n; i++) {
        double w = pho__gauss(&r), v;
        switch (kind) {
        case PHO_NOISE_PINK:
            b0 = 0.99886 * b0 + w * 0.0555179;
            b1 = 0.99332 * b1 + w * 0.0750759;
            b2 = 0.96900 * b2 + w * 0.1538520;
            b3 = 0.86650 * b3 + w * 0.3104856;
            b4 = 0.55000 * b4 + w * 0.5329522;
            b5 = -0.7616 * b5 - w * 0.0168980;
            v = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
            b6 = w * 0.115926;
            break;
        case PHO_NOISE_BROWN:
            brown = 0.995 * brown + w;
            v = brown;
            break;
        default: v = w; break;
        }
        noise[i] = v;
    }
}

/* Adds noise (mean removed) to x at snr_db under the speech's level. */
static void pho__mix(int16_t *x, size_t n, double *noise, double snr_db)
{
    double speech = pho__speech_power(x, n), mean = 0.0, power = 0.0;
    if (n == 0 || speech <= 0.0)
        return;
    for (size_t i = 0; i < n; i++)
        mean += noise[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        noise[i] -= mean;
        power += noise[i] * noise[i];
    }
    power /= (double)n;
    double gain = power > 0.0 ? sqrt(speech / pow(10.0, snr_db / 10.0) / power) : 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i] + gain * noise[i];
        x[i] = (int16_t)(v > 32767.0 ? 32767 : v < -32768.0 ? -32768 : lrint(v));
    }
}

/* ---- workers ---------------------------------------------------------------- */

struct pho_sim_worker {
    const pho_sim_opts *o;
    cmd_ln_t *config;
    ps_decoder_t *ps;
    char wav[PHO__PATH_MAX], raw[PHO__PATH_MAX], err[PHO__PATH_MAX];
    char txt[PHO__PATH_MAX], ulaw[PHO__PATH_MAX];
    int16_t *pcm, *talker;
    size_t pcm_cap, talker_cap;
    double *noise;
    size_t noise_cap;
    char *const *babble_pool;
    size_t n_babble_pool;
    /* Live CMN state as ps_init left it, restored before every utterance. */
    mfcc_t *cmn_mean0, *cmn_sum0;
    int32 cmn_nframe0;
};

static pthread_once_t pho__quiet_once = PTHREAD_ONCE_INIT;

/* sphinxbase logs through one process-wide handle (a global in 5prealpha),
 * so silencing it once covers every decoder and thread. */
static void pho__quiet(void)
{
    err_set_logfp(NULL);
}

static int pho__need_file(const char *path, erd_diag *diag)
{
    if (access(path, R_OK) != 0)
        return erd_fail(diag, ERD_ENOTFOUND, "%s: %s", path, strerror(errno));
    return ERD_OK;
}

void pho_sim_worker_destroy(pho_sim_worker *w)
{
    if (!w)
        return;
    if (w->ps)
        ps_free(w->ps);
    if (w->config)
        cmd_ln_free_r(w->config);
    if (w->wav[0])
        unlink(w->wav);
    if (w->raw[0])
        unlink(w->raw);
    if (w->err[0])
        unlink(w->err);
    if (w->txt[0])
        unlink(w->txt);
    if (w->ulaw[0])
        unlink(w->ulaw);
    free(w->pcm);
    free(w->talker);
    free(w->noise);
    free(w->cmn_mean0);
    free(w->cmn_sum0);
    free(w);
}

int pho_sim_worker_create(const pho_sim_opts *o, const char *tmp_dir, int id,
                          pho_sim_worker **ret, erd_diag *diag)
{
    const char *model = o->model_dir ? o->model_dir : PHO_SIM_MODEL_DIR;
    char hmm[PHO__PATH_MAX], lm[PHO__PATH_MAX], dict[PHO__PATH_MAX], mdef[PHO__PATH_MAX];
    pho_sim_worker *w = NULL;
    int rc;

    if ((rc = pho_sim_opts_check(o, diag)) < 0)
        return rc;
    if ((size_t)snprintf(hmm, sizeof hmm, "%s/en-us", model) >= sizeof hmm ||
        (size_t)snprintf(lm, sizeof lm, "%s/en-us.lm.bin", model) >= sizeof lm ||
        (size_t)snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", model) >= sizeof dict ||
        (size_t)snprintf(mdef, sizeof mdef, "%s/en-us/mdef", model) >= sizeof mdef)
        return erd_fail(diag, ERD_ETOOLONG, "model path too long: %s", model);
    /* pocketsphinx exits the process on some missing files; check first. */
    if ((rc = pho__need_file(mdef, diag)) < 0 || (rc = pho__need_file(lm, diag)) < 0 ||
        (rc = pho__need_file(dict, diag)) < 0)
        return rc;

    w = calloc(1, sizeof *w);
    if (!w)
        return erd_fail(diag, ERD_ENOMEM, "simulator worker");
    w->o = o;
    if ((size_t)snprintf(w->wav, sizeof w->wav, "%s/w%d.wav", tmp_dir, id) >= sizeof w->wav ||
        (size_t)snprintf(w->raw, sizeof w->raw, "%s/w%d.raw", tmp_dir, id) >= sizeof w->raw ||
        (size_t)snprintf(w->err, sizeof w->err, "%s/w%d.err", tmp_dir, id) >= sizeof w->err ||
        (size_t)snprintf(w->txt, sizeof w->txt, "%s/w%d.txt", tmp_dir, id) >= sizeof w->txt ||
        (size_t)snprintf(w->ulaw, sizeof w->ulaw, "%s/w%d.ul", tmp_dir, id) >= sizeof w->ulaw) {
        w->wav[0] = w->raw[0] = w->err[0] = w->txt[0] = w->ulaw[0] = '\0';
        rc = erd_fail(diag, ERD_ETOOLONG, "temporary directory path too long: %s", tmp_dir);
        goto out;
    }
    pthread_once(&pho__quiet_once, pho__quiet);
    w->config = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                            "-samprate", "16000", NULL);
    if (!w->config) {
        rc = erd_fail(diag, ERD_EINTERNAL, "pocketsphinx rejected its configuration");
        goto out;
    }
    w->ps = ps_init(w->config);
    if (!w->ps) {
        rc = erd_fail(diag, ERD_EIO, "pocketsphinx could not load the model in %s", model);
        goto out;
    }
    cmn_t *cmn = ps_get_feat(w->ps)->cmn_struct;
    if (cmn) {
        size_t bytes = (size_t)cmn->veclen * sizeof(mfcc_t);
        w->cmn_mean0 = malloc(bytes);
        w->cmn_sum0 = malloc(bytes);
        if (!w->cmn_mean0 || !w->cmn_sum0) {
            rc = erd_fail(diag, ERD_ENOMEM, "CMN state");
            goto out;
        }
        memcpy(w->cmn_mean0, cmn->cmn_mean, bytes);
        memcpy(w->cmn_sum0, cmn->sum, bytes);
        w->cmn_nframe0 = cmn->nframe;
    }
    *ret = w;
    w = NULL;
    rc = ERD_OK;
out:
    pho_sim_worker_destroy(w);
    return rc;
}

void pho_sim_worker_set_babble(pho_sim_worker *w, char *const *pool, size_t n)
{
    w->babble_pool = pool;
    w->n_babble_pool = n;
}

/* Reads little-endian 16-bit samples of path into *buf (grown as needed). */
static int pho__read_raw(const char *path, int16_t **buf, size_t *buf_cap, size_t *ret_n,
                         erd_diag *diag)
{
    FILE *f = fopen(path, "rb");
    unsigned char b[8192];
    size_t n = 0, got;
    int rc = ERD_OK;
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: %s", path, strerror(errno));
    while ((got = fread(b, 1, sizeof b, f)) > 0) {
        size_t add = got / 2;
        if (n + add > PHO__MAX_SAMPLES) {
            rc = erd_fail(diag, ERD_ETOOLONG, "utterance longer than %zu s",
                          PHO__MAX_SAMPLES / PHO__RATE);
            goto out;
        }
        if (n + add > *buf_cap) {
            size_t cap = *buf_cap ? *buf_cap : PHO__RATE * 4;
            while (cap < n + add)
                cap *= 2;
            int16_t *p = realloc(*buf, cap * sizeof *p);
            if (!p) {
                rc = erd_fail(diag, ERD_ENOMEM, "audio buffer");
                goto out;
            }
            *buf = p;
            *buf_cap = cap;
        }
        /* sox was told little-endian; assemble samples so the host's byte
         * order does not matter. */
        for (size_t i = 0; i < add; i++)
            (*buf)[n + i] = (int16_t)(uint16_t)(b[2 * i] | (unsigned)b[2 * i + 1] << 8);
        n += add;
    }
    if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
        goto out;
    }
    *ret_n = n;
out:
    fclose(f);
    return rc;
}

/* Copies a hypothesis, collapsing whitespace and cutting an over-long one at
 * a word boundary.  Returns 0 for an empty one. */
static int pho__copy_hyp(char *dst, size_t cap, const char *src)
{
    size_t n = 0, last_space = 0;
    for (const char *p = src; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (n == 0 || dst[n - 1] == ' ')
                continue;
            if (n + 1 >= cap)
                break;
            last_space = n;
            dst[n++] = ' ';
            continue;
        }
        if (n + 1 >= cap) {
            n = last_space;
            break;
        }
        dst[n++] = *p;
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
    return n > 0;
}

static void pho__add_hyp(pho_sim_result *r, size_t want, const char *text, int32_t score)
{
    if (!text || r->n_hyps >= want)
        return;
    pho_sim_hyp *h = &r->hyps[r->n_hyps];
    if (!pho__copy_hyp(h->text, sizeof h->text, text))
        return;
    for (size_t i = 0; i < r->n_hyps; i++)
        if (!strcmp(r->hyps[i].text, h->text))
            return;
    h->score = score;
    r->n_hyps++;
}

static int pho__decode(pho_sim_worker *w, size_t n, pho_sim_result *r, erd_diag *diag)
{
    ps_decoder_t *ps = w->ps;
    size_t want = (size_t)w->o->nbest;
    int32 score = 0;

    /* The front end's noise estimate and live CMN both carry over from one
     * utterance to the next, which would make a decode depend on what the
     * worker heard before (and so on --jobs).  Every utterance starts a new
     * stream, from the model's initial mean, as a fresh pocketsphinx process
     * would. */
    if (ps_start_stream(ps) < 0)
        return erd_fail(diag, ERD_EINTERNAL, "pocketsphinx: cannot start a stream");
    cmn_t *cmn = ps_get_feat(ps)->cmn_struct;
    if (cmn && w->cmn_mean0) {
        size_t bytes = (size_t)cmn->veclen * sizeof(mfcc_t);
        memcpy(cmn->cmn_mean, w->cmn_mean0, bytes);
        memcpy(cmn->sum, w->cmn_sum0, bytes);
        cmn->nframe = w->cmn_nframe0;
    }
    if (ps_start_utt(ps) < 0)
        return erd_fail(diag, ERD_EINTERNAL, "pocketsphinx: cannot start an utterance");
    /* Fed in blocks as the pocketsphinx tools do: whole-utterance mode
     * (full_utt) takes another feature path that decodes noticeably worse
     * with this model. */
    for (size_t off = 0; off < n; off += PHO__BLOCK) {
        size_t len = n - off < PHO__BLOCK ? n - off : PHO__BLOCK;
        if (ps_process_raw(ps, w->pcm + off, len, FALSE, FALSE) < 0) {
            ps_end_utt(ps);
            return erd_fail(diag, ERD_EINTERNAL, "pocketsphinx: decoding failed");
        }
    }
    if (ps_end_utt(ps) < 0)
        return erd_fail(diag, ERD_EINTERNAL, "pocketsphinx: cannot end the utterance");

    /* The Viterbi best path first, as the dev set has it, then the lattice's
     * A* n-best for the alternatives. */
    const char *text = ps_get_hyp(ps, &score);
    pho__add_hyp(r, want, text, score);
    ps_nbest_t *nb = r->n_hyps < want ? ps_nbest(ps) : NULL;
    for (int steps = 0; nb && r->n_hyps < want && steps < PHO__NBEST_SCAN; steps++) {
        score = 0;
        text = ps_nbest_hyp(nb, &score);
        pho__add_hyp(r, want, text, score);
        if (r->n_hyps < want)
            nb = ps_nbest_next(nb); /* frees the iterator at the end */
    }
    if (nb)
        ps_nbest_free(nb);
    return ERD_OK;
}

/* ---- rendering ------------------------------------------------------------- */

static int pho__write_text(const char *path, const char *text, erd_diag *diag)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: %s", path, strerror(errno));
    int bad = fputs(text, f) < 0 || fputc('\n', f) < 0;
    bad |= fclose(f) != 0;
    return bad ? erd_fail(diag, ERD_EIO, "%s: write failed", path) : ERD_OK;
}

/* Speaks text with voice ("slt", "flite:slt" or "festival:kal_diphone")
 * into w->wav. */
static int pho__speak(pho_sim_worker *w, const char *voice, const char *text, erd_diag *diag)
{
    const pho_sim_opts *o = w->o;
    char bin[PHO__PATH_MAX], expr[PHO_SIM_VOICE_MAX + 16];
    int rc;
    if (!strncmp(voice, "festival:", 9)) {
        snprintf(bin, sizeof bin, "%s", o->text2wave ? o->text2wave : "text2wave");
        snprintf(expr, sizeof expr, "(voice_%s)", voice + 9);
        if ((rc = pho__write_text(w->txt, text, diag)) < 0)
            return rc;
        char *argv[] = {bin, "-eval", expr, w->txt, "-o", w->wav, NULL};
        return pho__spawn(argv, w->err, diag);
    }
    if (!strncmp(voice, "flite:", 6))
        voice += 6;
    snprintf(bin, sizeof bin, "%s", o->flite ? o->flite : "flite");
    char *argv[] = {bin, "-voice", (char *)voice, "-t", (char *)text, "-o", w->wav, NULL};
    return pho__spawn(argv, w->err, diag);
}

/* w->wav -> 16 kHz mono raw in w->raw: speed, pitch and room by sox.  -D
 * (no dither) and -R (fixed seed) keep the audio a function of the plan. */
static int pho__perturb(pho_sim_worker *w, const pho_sim_plan *p, int with_room, erd_diag *diag)
{
    char bin[PHO__PATH_MAX], speed[32], pitch[32], rev[4][32];
    char *argv[40];
    size_t a = 0;
    snprintf(bin, sizeof bin, "%s", w->o->sox ? w->o->sox : "sox");
    snprintf(speed, sizeof speed, "%.3f", p->speed);
    snprintf(pitch, sizeof pitch, "%.0f", p->pitch_cents);
    char *head[] = {bin, "-D", "-R", "-V1", w->wav, "-t", "raw", "-e", "signed-integer", "-b",
                    "16", "-c", "1", "-r", "16000", "-L", w->raw, "speed", speed};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[a++] = head[i];
    if (p->pitch_cents != 0.0) {
        argv[a++] = "pitch";
        argv[a++] = pitch;
    }
    argv[a++] = "rate";
    argv[a++] = "16000";
    if (with_room && p->reverb) {
        snprintf(rev[0], sizeof rev[0], "%.0f", p->reverberance);
        snprintf(rev[1], sizeof rev[1], "%.0f", p->hf_damping);
        snprintf(rev[2], sizeof rev[2], "%.0f", p->room_scale);
        snprintf(rev[3], sizeof rev[3], "%.0f", p->pre_delay_ms);
        char *room[] = {"reverb", rev[0], rev[1], rev[2], "100", rev[3]};
        for (size_t i = 0; i < sizeof room / sizeof room[0]; i++)
            argv[a++] = room[i];
    }
    argv[a] = NULL;
    return pho__spawn(argv, w->err, diag);
}

static int pho__noise_buffer(pho_sim_worker *w, size_t n, erd_diag *diag)
{
    if (n <= w->noise_cap)
        return ERD_OK;
    double *p = realloc(w->noise, n * sizeof *p);
    if (!p)
        return erd_fail(diag, ERD_ENOMEM, "noise buffer");
    w->noise = p;
    w->noise_cap = n;
    return ERD_OK;
}

/* The flite voices of the run, for babble talkers: festival takes about a
 * second a call, three talkers an utterance would triple the run. */
static const char *pho__babble_voice(const pho_sim_opts *o, uint64_t pick, const char *fallback)
{
    size_t n_flite = 0;
    for (size_t i = 0; i < o->n_voices; i++)
        n_flite += strncmp(o->voices[i], "festival:", 9) != 0;
    if (n_flite == 0)
        return fallback;
    size_t want = (size_t)((pick >> 32) % n_flite);
    for (size_t i = 0; i < o->n_voices; i++)
        if (strncmp(o->voices[i], "festival:", 9) != 0 && want-- == 0)
            return o->voices[i];
    return fallback;
}

/* Babble: each talker says another phrase of the run, looped from a random
 * offset over the utterance's length, all summed into w->noise. */
static int pho__babble(pho_sim_worker *w, const pho_sim_plan *p, const char *phrase, size_t n,
                       erd_diag *diag)
{
    int rc;
    memset(w->noise, 0, n * sizeof *w->noise);
    for (size_t t = 0; t < PHO_SIM_BABBLE_TALKERS; t++) {
        uint64_t pick = p->babble_pick[t];
        const char *text = w->n_babble_pool ? w->babble_pool[pick % w->n_babble_pool] : phrase;
        pho_sim_plan talker = *p;
        size_t len = 0;
        talker.pitch_cents = 0.0;
        if ((rc = pho__speak(w, pho__babble_voice(w->o, pick, p->voice), text, diag)) < 0 ||
            (rc = pho__perturb(w, &talker, 0, diag)) < 0 ||
            (rc = pho__read_raw(w->raw, &w->talker, &w->talker_cap, &len, diag)) < 0)
            return rc;
        if (len == 0)
            continue;
        size_t off = (size_t)((pick >> 16) % len);
        for (size_t i = 0; i < n; i++)
            w->noise[i] += w->talker[(off + i) % len];
    }
    return ERD_OK;
}

static int pho__add_noise(pho_sim_worker *w, const pho_sim_plan *p, const char *phrase, size_t n,
                          erd_diag *diag)
{
    int rc;
    if (p->noise == PHO_NOISE_NONE || n == 0)
        return ERD_OK;
    if ((rc = pho__noise_buffer(w, n, diag)) < 0)
        return rc;
    if (p->noise == PHO_NOISE_BABBLE) {
        if ((rc = pho__babble(w, p, phrase, n, diag)) < 0)
            return rc;
    } else {
        pho__colour_noise(w->noise, n, p->noise, p->noise_seed);
    }
    pho__mix(w->pcm, n, w->noise, p->snr_db);
    return ERD_OK;
}

static int pho__write_raw(const char *path, const int16_t *x, size_t n, erd_diag *diag)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: %s", path, strerror(errno));
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        unsigned char b[2] = {(unsigned char)((uint16_t)x[i] & 0xff),
                              (unsigned char)((uint16_t)x[i] >> 8)};
        bad = fwrite(b, 1, 2, f) != 2;
    }
    bad |= fclose(f) != 0;
    return bad ? erd_fail(diag, ERD_EIO, "%s: write failed", path) : ERD_OK;
}

/* A telephone line: the noisy signal band-limited and sent through G.711
 * mu-law companding.  The upper band edge is drawn from narrow-band (3.4 kHz)
 * to wideband (7 kHz) telephony: pocketsphinx's 16 kHz model hears almost
 * nothing at 3.4 kHz, so a fixed narrow band would give only hallucinations. */
static int pho__telephone(pho_sim_worker *w, const pho_sim_plan *p, size_t *n, erd_diag *diag)
{
    char bin[PHO__PATH_MAX], band[64];
    int rc;
    snprintf(bin, sizeof bin, "%s", w->o->sox ? w->o->sox : "sox");
    snprintf(band, sizeof band, "%.0f-%.0f", p->phone_low_hz, p->phone_high_hz);
    if ((rc = pho__write_raw(w->raw, w->pcm, *n, diag)) < 0)
        return rc;
    char *down[] = {bin, "-D", "-R", "-V1", "-t", "raw", "-e", "signed-integer", "-b", "16",
                    "-c", "1", "-r", "16000", "-L", w->raw, "-t", "ul", "-r", "16000", w->ulaw,
                    "sinc", band, NULL};
    char *up[] = {bin, "-D", "-R", "-V1", "-t", "ul", "-c", "1", "-r", "16000", w->ulaw, "-t",
                  "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", "16000", "-L",
                  w->raw, NULL};
    if ((rc = pho__spawn(down, w->err, diag)) < 0 || (rc = pho__spawn(up, w->err, diag)) < 0)
        return rc;
    return pho__read_raw(w->raw, &w->pcm, &w->pcm_cap, n, diag);
}

int pho_sim_worker_run(pho_sim_worker *w, uint64_t index, const char *phrase,
                       pho_sim_result *ret, erd_diag *diag)
{
    pho_sim_result *r = NULL;
    size_t n = 0;
    int rc;

    if (!phrase || !*phrase)
        return erd_fail(diag, ERD_EEMPTY, "empty phrase");
    if (strlen(phrase) >= PHO_SIM_TEXT_MAX)
        return erd_fail(diag, ERD_ETOOLONG, "phrase longer than %d bytes", PHO_SIM_TEXT_MAX - 1);
    r = calloc(1, sizeof *r);
    if (!r)
        return erd_fail(diag, ERD_ENOMEM, "simulation result");
    pho_sim_plan_for(w->o, index, &r->plan);
    if ((rc = pho__speak(w, r->plan.voice, phrase, diag)) < 0 ||
        (rc = pho__perturb(w, &r->plan, 1, diag)) < 0 ||
        (rc = pho__read_raw(w->raw, &w->pcm, &w->pcm_cap, &n, diag)) < 0)
        goto out;
    if (n < PHO__RATE / 20) {
        rc = erd_fail(diag, ERD_EEMPTY, "the voice produced no audible speech");
        goto out;
    }
    if ((rc = pho__add_noise(w, &r->plan, phrase, n, diag)) < 0)
        goto out;
    if (r->plan.telephone && (rc = pho__telephone(w, &r->plan, &n, diag)) < 0)
        goto out;
    r->audio_sec = (double)n / PHO__RATE;
    if ((rc = pho__decode(w, n, r, diag)) < 0)
        goto out;
    *ret = *r;
out:
    free(r);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------- */

/* The perturbations beyond speed and noise, present only when applied, so
 * records made without them read as before. */
static int pho__perturb_more_json(json_t *perturb, const pho_sim_plan *p)
{
    int bad = 0;
    if (p->pitch_cents != 0.0)
        bad |= json_object_set_new(perturb, "pitch_cents", json_real(p->pitch_cents));
    if (p->reverb) {
        json_t *room = json_object();
        bad |= !room;
        bad |= json_object_set_new(room, "reverberance", json_real(p->reverberance));
        bad |= json_object_set_new(room, "hf_damping", json_real(p->hf_damping));
        bad |= json_object_set_new(room, "room_scale", json_real(p->room_scale));
        bad |= json_object_set_new(room, "pre_delay_ms", json_real(p->pre_delay_ms));
        bad |= json_object_set_new(perturb, "reverb", room);
    }
    if (p->telephone) {
        json_t *line = json_object();
        bad |= !line;
        bad |= json_object_set_new(line, "type", json_string("telephone"));
        bad |= json_object_set_new(line, "low_hz", json_real(p->phone_low_hz));
        bad |= json_object_set_new(line, "high_hz", json_real(p->phone_high_hz));
        bad |= json_object_set_new(perturb, "channel", line);
    }
    return bad;
}

int pho_sim_record_json(uint64_t index, const char *phrase, const pho_sim_result *r, char **ret,
                        erd_diag *diag)
{
    char id[32], voice[PHO_SIM_VOICE_MAX + 8];
    json_t *rec = json_object(), *perturb = json_object(), *nbest = json_array();
    char *s = NULL;
    int bad = !rec || !perturb || !nbest;

    snprintf(id, sizeof id, "sim-%llu", (unsigned long long)index);
    snprintf(voice, sizeof voice, "%s%s", strchr(r->plan.voice, ':') ? "" : "flite:",
             r->plan.voice);
    bad |= json_object_set_new(perturb, "speed", json_real(r->plan.speed));
    bad |= json_object_set_new(perturb, "noise", json_boolean(r->plan.noise != PHO_NOISE_NONE));
    if (r->plan.noise != PHO_NOISE_NONE) {
        bad |= json_object_set_new(perturb, "noise_type",
                                   json_string(pho_noise_name(r->plan.noise)));
        bad |= json_object_set_new(perturb, "snr_db", json_real(r->plan.snr_db));
    }
    bad |= pho__perturb_more_json(perturb, &r->plan);
    for (size_t i = 0; i < r->n_hyps; i++) {
        json_t *h = json_object();
        bad |= !h;
        bad |= json_object_set_new(h, "text", json_string(r->hyps[i].text));
        bad |= json_object_set_new(h, "score", json_integer(r->hyps[i].score));
        bad |= json_array_append_new(nbest, h);
    }
    bad |= json_object_set_new(rec, "id", json_string(id));
    /* json_string refuses invalid UTF-8: such a phrase fails here, alone. */
    json_t *spoken = json_string(phrase);
    if (!spoken) {
        json_decref(rec);
        json_decref(perturb);
        json_decref(nbest);
        return erd_fail(diag, ERD_EUTF8, "phrase is not valid UTF-8");
    }
    bad |= json_object_set_new(rec, "spoken", spoken);
    bad |= json_object_set_new(rec, "voice", json_string(voice));
    bad |= json_object_set_new(rec, "perturb", perturb);
    perturb = NULL;
    bad |= json_object_set_new(rec, "nbest", nbest);
    nbest = NULL;
    if (!bad)
        s = json_dumps(rec, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(rec);
    if (!s)
        return erd_fail(diag, ERD_ENOMEM, "record JSON");
    *ret = s;
    return ERD_OK;
}

/* ---- batch runs ------------------------------------------------------------- */

typedef struct pho__phrases {
    char **v;
    size_t n, cap;
} pho__phrases;

static void pho__phrases_free(pho__phrases *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static char *pho__trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int pho__read_phrases(const char *path, pho__phrases *ret, erd_diag *diag)
{
    pho__phrases p = {0};
    char *line = NULL;
    size_t cap = 0;
    int rc = ERD_OK;
    FILE *f = fopen(path, "r");
    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    while (getline(&line, &cap, f) > 0) {
        char *s = pho__trim(line);
        if (!*s)
            continue;
        if (p.n == p.cap) {
            size_t ncap = p.cap ? p.cap * 2 : 1024;
            char **v = realloc(p.v, ncap * sizeof *v);
            if (!v) {
                rc = erd_fail(diag, ERD_ENOMEM, "phrase list");
                goto out;
            }
            p.v = v;
            p.cap = ncap;
        }
        if (!(p.v[p.n] = strdup(s))) {
            rc = erd_fail(diag, ERD_ENOMEM, "phrase list");
            goto out;
        }
        p.n++;
    }
    if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
        goto out;
    }
    *ret = p;
    memset(&p, 0, sizeof p);
out:
    free(line);
    fclose(f);
    pho__phrases_free(&p);
    return rc;
}

/* Marks the ids already in out_path as done.  A last line without its
 * newline is what a killed run leaves behind: it is cut off so the appended
 * records start on a line of their own. */
static int pho__scan_output(const char *path, const pho__phrases *in, unsigned char *done,
                            size_t *ret_done, erd_diag *diag)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n_done = 0, lineno = 0;
    off_t good_end = 0;
    ssize_t len;
    int rc = ERD_OK;

    if (!f) {
        if (errno == ENOENT) {
            *ret_done = 0;
            return ERD_OK;
        }
        return erd_fail(diag, ERD_EIO, "%s: %s", path, strerror(errno));
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n')
            break; /* torn tail */
        good_end += len;
        json_error_t jerr;
        json_t *rec = json_loads(line, 0, &jerr);
        const char *id = rec ? json_string_value(json_object_get(rec, "id")) : NULL;
        const char *spoken = rec ? json_string_value(json_object_get(rec, "spoken")) : NULL;
        char *end = NULL;
        unsigned long long idx = id && !strncmp(id, "sim-", 4) ? strtoull(id + 4, &end, 10) : 0;
        if (!rec || !spoken || !end || *end || end == id + 4) {
            json_decref(rec);
            rc = erd_fail(diag, ERD_ECORRUPT, "%s:%zu: not a simulation record", path, lineno);
            goto out;
        }
        if (idx >= in->n || strcmp(in->v[idx], spoken) != 0) {
            /* id points into rec: report before letting it go */
            rc = erd_fail(diag, ERD_EMISMATCH,
                          "%s:%zu: record %s is not for this phrase list (use another --out)",
                          path, lineno, id);
            json_decref(rec);
            goto out;
        }
        if (!done[idx]) {
            done[idx] = 1;
            n_done++;
        }
        json_decref(rec);
    }
    if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
        goto out;
    }
    if (len > 0 || ftello(f) != good_end) {
        if (truncate(path, good_end) != 0) {
            rc = erd_fail(diag, ERD_EIO, "%s: cannot drop the torn last line: %s", path,
                          strerror(errno));
            goto out;
        }
    }
    *ret_done = n_done;
out:
    free(line);
    fclose(f);
    return rc;
}

typedef struct pho__shared {
    const pho_sim_batch *b;
    const pho__phrases *in;
    const uint64_t *todo;
    size_t n_todo, next;
    FILE *out;
    pthread_mutex_t mu;
    pho_sim_progress prog;
    size_t failed_in_row;
    int fatal;
    erd_diag fatal_diag;
    struct timespec t0;
} pho__shared;

typedef struct pho__thread {
    pho__shared *sh;
    pho_sim_worker *w;
    pthread_t tid;
    int started;
} pho__thread;

static double pho__since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* Phrase-level failures cost the phrase; anything else stops the run. */
static int pho__phrase_error(int rc)
{
    return rc == ERD_EIO || rc == ERD_ETOOLONG || rc == ERD_EEMPTY || rc == ERD_EUTF8;
}

static void *pho__thread_main(void *arg)
{
    pho__thread *t = arg;
    pho__shared *sh = t->sh;
    const pho_sim_batch *b = sh->b;
    pho_sim_result *r = malloc(sizeof *r);

    pthread_mutex_lock(&sh->mu);
    if (!r && !sh->fatal) {
        sh->fatal = erd_fail(&sh->fatal_diag, ERD_ENOMEM, "simulation result");
    }
    while (r && !sh->fatal && sh->next < sh->n_todo && !(b->stop && *b->stop)) {
        uint64_t idx = sh->todo[sh->next++];
        const char *phrase = sh->in->v[idx];
        erd_diag d = {0};
        char *json = NULL;
        pthread_mutex_unlock(&sh->mu);

        int rc = pho_sim_worker_run(t->w, idx, phrase, r, &d);
        if (rc == ERD_OK)
            rc = pho_sim_record_json(idx, phrase, r, &json, &d);

        pthread_mutex_lock(&sh->mu);
        if (rc == ERD_OK) {
            if (fputs(json, sh->out) < 0 || fputc('\n', sh->out) < 0 || fflush(sh->out) != 0) {
                sh->fatal = erd_fail(&sh->fatal_diag, ERD_EIO, "%s: write failed: %s",
                                     b->out_path, strerror(errno));
            } else {
                sh->prog.done++;
                sh->prog.audio_sec += r->audio_sec;
                sh->failed_in_row = 0;
                sh->prog.elapsed = pho__since(&sh->t0);
                if (b->report)
                    b->report(b->ctx, &sh->prog, idx, phrase, NULL);
            }
        } else if (pho__phrase_error(rc)) {
            sh->prog.failed++;
            sh->failed_in_row++;
            sh->prog.elapsed = pho__since(&sh->t0);
            if (b->report)
                b->report(b->ctx, &sh->prog, idx, phrase, &d);
            if (sh->prog.done == 0 && sh->failed_in_row >= PHO__GIVE_UP)
                sh->fatal = erd_fail(&sh->fatal_diag, rc,
                                     "the first %d phrases all failed, last: %s", PHO__GIVE_UP,
                                     erd_diag_message(&d, rc));
        } else if (!sh->fatal) {
            sh->fatal = rc;
            sh->fatal_diag = d;
        }
        free(json);
    }
    pthread_mutex_unlock(&sh->mu);
    free(r);
    return NULL;
}

static int pho__make_tmpdir(const char *parent, char *out, size_t cap, erd_diag *diag)
{
    if (!parent)
        parent = getenv("TMPDIR");
    if (!parent || !*parent)
        parent = "/tmp";
    if ((size_t)snprintf(out, cap, "%s/erd-sim-XXXXXX", parent) >= cap)
        return erd_fail(diag, ERD_ETOOLONG, "temporary directory path too long: %s", parent);
    if (!mkdtemp(out))
        return erd_fail(diag, ERD_EIO, "cannot create a temporary directory in %s: %s", parent,
                        strerror(errno));
    return ERD_OK;
}

/* The phrases of the batch not yet in its output (a resumed run skips
 * what an earlier one wrote): their indices into *todo, *n_done how many
 * were. */
static int pho__plan(const pho_sim_batch *b, pho__phrases *in, uint64_t **ret_todo,
                     size_t *ret_n_todo, size_t *ret_n_done, erd_diag *diag)
{
    int rc = pho__read_phrases(b->in_path, in, diag);
    if (rc < 0)
        return rc;
    unsigned char *done = calloc(in->n ? in->n : 1, 1);
    uint64_t *todo = malloc((in->n ? in->n : 1) * sizeof *todo);
    size_t n_todo = 0;
    if (!done || !todo)
        rc = erd_fail(diag, ERD_ENOMEM, "phrase bookkeeping");
    else
        rc = pho__scan_output(b->out_path, in, done, ret_n_done, diag);
    for (size_t i = 0; rc == ERD_OK && i < in->n; i++)
        if (!done[i])
            todo[n_todo++] = i;
    free(done);
    if (rc < 0) {
        free(todo);
        return rc;
    }
    *ret_todo = todo;
    *ret_n_todo = n_todo;
    return ERD_OK;
}

/* Starts the workers and waits for them; the first fatal error of any
 * (or of starting one) is the batch's. */
static int pho__run_threads(pho__shared *sh, pho__thread *threads, size_t n_threads,
                            erd_diag *diag)
{
    clock_gettime(CLOCK_MONOTONIC, &sh->t0);
    for (size_t i = 0; i < n_threads; i++) {
        int err = pthread_create(&threads[i].tid, NULL, pho__thread_main, &threads[i]);
        if (err != 0) {
            pthread_mutex_lock(&sh->mu);
            sh->fatal = erd_fail(&sh->fatal_diag, ERD_EINTERNAL, "cannot start a thread: %s",
                                 strerror(err));
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        threads[i].started = 1;
    }
    for (size_t i = 0; i < n_threads; i++)
        if (threads[i].started)
            pthread_join(threads[i].tid, NULL);
    sh->prog.elapsed = pho__since(&sh->t0);
    if (sh->fatal && diag)
        *diag = sh->fatal_diag;
    return sh->fatal;
}

int pho_sim_run_batch(const pho_sim_opts *o, const pho_sim_batch *b, pho_sim_progress *ret,
                      erd_diag *diag)
{
    pho__phrases in = {0};
    uint64_t *todo = NULL;
    pho__thread *threads = NULL;
    pho__shared sh;
    char tmp[PHO__PATH_MAX] = "";
    size_t n_done = 0, n_todo = 0, n_threads = 0;
    int rc, mu_ready = 0;

    memset(&sh, 0, sizeof sh);
    if (!b || !b->in_path || !b->out_path || b->jobs < 1)
        return erd_fail(diag, ERD_EINVAL, "simulation batch: bad arguments");
    if ((rc = pho_sim_opts_check(o, diag)) < 0)
        return rc;
    if ((rc = pho__plan(b, &in, &todo, &n_todo, &n_done, diag)) < 0)
        goto out;
    sh.b = b;
    sh.in = &in;
    sh.todo = todo;
    sh.n_todo = n_todo;
    sh.prog.total = in.n;
    sh.prog.skipped = n_done;
    if (n_todo == 0) {
        *ret = sh.prog;
        rc = ERD_OK;
        goto out;
    }
    if (!(sh.out = fopen(b->out_path, "a"))) {
        rc = erd_fail(diag, ERD_EIO, "%s: %s", b->out_path, strerror(errno));
        goto out;
    }
    if ((rc = pho__make_tmpdir(o->tmp_parent, tmp, sizeof tmp, diag)) < 0)
        goto out;

    n_threads = (size_t)b->jobs < n_todo ? (size_t)b->jobs : n_todo;
    threads = calloc(n_threads, sizeof *threads);
    if (!threads) {
        rc = erd_fail(diag, ERD_ENOMEM, "worker threads");
        goto out;
    }
    /* Decoders are built one after another before any thread starts:
     * model loading touches sphinxbase state nobody promises is thread-safe,
     * decoding afterwards only each decoder's own. */
    for (size_t i = 0; i < n_threads; i++) {
        threads[i].sh = &sh;
        if ((rc = pho_sim_worker_create(o, tmp, (int)i, &threads[i].w, diag)) < 0)
            goto out;
        pho_sim_worker_set_babble(threads[i].w, in.v, in.n);
    }
    if (pthread_mutex_init(&sh.mu, NULL) != 0) {
        rc = erd_fail(diag, ERD_EINTERNAL, "mutex");
        goto out;
    }
    mu_ready = 1;
    if ((rc = pho__run_threads(&sh, threads, n_threads, diag)) < 0)
        goto out;
    *ret = sh.prog;
    rc = ERD_OK;
out:
    for (size_t i = 0; threads && i < n_threads; i++)
        pho_sim_worker_destroy(threads[i].w);
    free(threads);
    if (tmp[0] && rmdir(tmp) != 0 && rc == ERD_OK)
        rc = erd_fail(diag, ERD_EIO, "cannot remove %s: %s", tmp, strerror(errno));
    if (mu_ready)
        pthread_mutex_destroy(&sh.mu);
    if (sh.out && fclose(sh.out) != 0 && rc == ERD_OK)
        rc = erd_fail(diag, ERD_EIO, "%s: %s", b->out_path, strerror(errno));
    free(todo);
    pho__phrases_free(&in);
    return rc;
}
