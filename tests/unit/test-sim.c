/* Simulator: the phrase generator is a function of its seed, plans are a
 * function of (seed, index), and records have the dev set's shape.  The
 * run through flite + sox + pocketsphinx is test-sim-tools.c. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phonetics/sim/pho_phrasegen.h"
#include "phonetics/sim/pho_sim.h"
#include "tap.h"

#define N_GEN 300

typedef struct collected {
    char **v;
    enum pho_phrase_kind *kind;
    size_t n;
} collected;

static int collect(void *ctx, const char *phrase, enum pho_phrase_kind kind)
{
    collected *c = ctx;
    if (c->n == N_GEN)
        return ERD_ETOOLONG;
    c->v[c->n] = strdup(phrase);
    c->kind[c->n] = kind;
    c->n++;
    return ERD_OK;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    c->n = 0;
}

static int generate(pho_phrasegen *g, uint64_t seed, unsigned kinds, collected *c)
{
    collected_free(c);
    return pho_phrasegen_run(g, seed, N_GEN, kinds, collect, c, NULL);
}

static int same_list(const collected *a, const collected *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return 0;
    return 1;
}

static size_t words(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p != ' ' && (p == s || p[-1] == ' ');
    return n;
}

static void test_phrasegen(void)
{
    static char *va[N_GEN], *vb[N_GEN];
    static enum pho_phrase_kind ka[N_GEN], kb[N_GEN];
    collected a = {va, ka, 0}, b = {vb, kb, 0};
    pho_phrasegen *g = NULL;
    erd_diag diag = {0};
    unsigned kinds = 0;

    is_int(pho_phrasegen_parse_kinds("words,titles", &kinds, NULL), ERD_OK, "kinds parse");
    is_int(kinds, PHO_KIND_WORD | PHO_KIND_TITLE, "kinds mask");
    ok(pho_phrasegen_parse_kinds("words,songs", &kinds, NULL) == ERD_EINVAL, "unknown kind");
    ok(pho_phrasegen_parse_kinds(",", &kinds, NULL) == ERD_EINVAL, "no kinds");

    if (access(PHO_PHRASEGEN_WORDNET_DIR "/data.noun", R_OK) != 0 ||
        access(PHO_PHRASEGEN_CMUDICT, R_OK) != 0) {
        tap_skip("WordNet or the CMU dictionary is not installed");
        return;
    }
    int rc = pho_phrasegen_create(NULL, &g, &diag);
    is_int(rc, ERD_OK, "generator loads (%s)", rc ? diag.msg : "ok");
    if (rc)
        return;
    pho_phrasegen_stats st;
    pho_phrasegen_get_stats(g, &st);
    ok(st.nouns > 1000 && st.adjectives > 500 && st.expressions > 1000 && st.people > 500 &&
           st.places > 200,
       "pools are filled (%zu nouns, %zu expressions, %zu people)", st.nouns, st.expressions,
       st.people);

    is_int(generate(g, 42, PHO_KIND_ALL, &a), ERD_OK, "seed 42");
    is_int(generate(g, 42, PHO_KIND_ALL, &b), ERD_OK, "seed 42 again");
    is_int(a.n, N_GEN, "count honoured");
    ok(same_list(&a, &b), "same seed, same phrases");
    is_int(generate(g, 43, PHO_KIND_ALL, &b), ERD_OK, "seed 43");
    size_t same = 0;
    for (size_t i = 0; i < a.n && i < b.n; i++)
        same += strcmp(a.v[i], b.v[i]) == 0;
    ok(same < N_GEN / 10, "another seed, other phrases (%zu of %d equal)", same, N_GEN);

    size_t kinds_seen[16] = {0}, bad_titles = 0, empty = 0, multi = 0, dup = 0;
    for (size_t i = 0; i < a.n; i++) {
        size_t w = words(a.v[i]);
        kinds_seen[a.kind[i]]++;
        empty += w == 0;
        multi += w >= 2;
        bad_titles += a.kind[i] == PHO_KIND_TITLE && (w < 2 || w > 8);
        for (size_t j = 0; j < i; j++)
            dup += strcasecmp(a.v[i], a.v[j]) == 0;
    }
    is_int(empty, 0, "no empty phrase");
    is_int(dup, 0, "phrases are distinct");
    is_int(bad_titles, 0, "titles have 2..8 words");
    ok(kinds_seen[PHO_KIND_WORD] && kinds_seen[PHO_KIND_PHRASE] && kinds_seen[PHO_KIND_NAME] &&
           kinds_seen[PHO_KIND_TITLE],
       "all four kinds appear");
    ok(kinds_seen[PHO_KIND_TITLE] > kinds_seen[PHO_KIND_WORD], "titles outnumber single words");
    ok(multi > a.n / 2, "mostly multi-word (%zu of %zu)", multi, a.n);

    is_int(generate(g, 7, PHO_KIND_WORD, &b), ERD_OK, "words only");
    size_t single = 0;
    for (size_t i = 0; i < b.n; i++)
        single += words(b.v[i]) == 1 && b.kind[i] == PHO_KIND_WORD;
    is_int(single, b.n, "words kind gives single words");

    collected_free(&a);
    collected_free(&b);
    pho_phrasegen_destroy(g);
    pho_phrasegen_destroy(NULL);
}

static void test_plans(void)
{
    pho_sim_opts o;
    pho_sim_plan p1, p2;
    size_t noisy = 0, voice_kal = 0, in_range = 0;

    pho_sim_opts_init(&o);
    is_int(pho_sim_opts_check(&o, NULL), ERD_OK, "defaults are valid");
    is_int(pho_sim_opts_set_voices(&o, "slt,,kal", NULL), ERD_OK, "voices parse");
    is_int(o.n_voices, 2, "two voices");
    ok(pho_sim_opts_set_voices(&o, "slt;rm -rf", NULL) == ERD_EINVAL, "voice names checked");
    o.nbest = 0;
    ok(pho_sim_opts_check(&o, NULL) == ERD_EINVAL, "nbest 0 refused");
    o.nbest = 5;

    pho_sim_plan_for(&o, 17, &p1);
    pho_sim_plan_for(&o, 17, &p2);
    ok(p1.voice == p2.voice && p1.speed == p2.speed && p1.noise == p2.noise &&
           p1.noise_seed == p2.noise_seed,
       "plan is a function of (seed, index)");
    for (uint64_t i = 0; i < 1000; i++) {
        pho_sim_plan_for(&o, i, &p1);
        noisy += p1.noise != PHO_NOISE_NONE;
        voice_kal += !strcmp(p1.voice, "kal");
        in_range += p1.speed >= o.speed_min && p1.speed <= o.speed_max && p1.snr_db >= o.snr_min &&
                    p1.snr_db <= o.snr_max;
    }
    ok(noisy > 230 && noisy < 370, "about 30%% noisy (%zu of 1000)", noisy);
    ok(voice_kal > 400 && voice_kal < 600, "voices drawn evenly (%zu of 1000 kal)", voice_kal);
    is_int(in_range, 1000, "speed and SNR within their ranges");
    o.seed = 2;
    size_t differ = 0;
    for (uint64_t i = 0; i < 100; i++) {
        pho_sim_plan_for(&o, i, &p2);
        o.seed = 1;
        pho_sim_plan_for(&o, i, &p1);
        o.seed = 2;
        differ += p1.speed != p2.speed;
    }
    ok(differ > 90, "another seed, other plans");
}

/* The perturbations added for robust training: drawn after the original
 * choices, so the defaults plan exactly as before, and each applied at its
 * share. */
static void test_plans_robust(void)
{
    pho_sim_opts o, base;
    pho_sim_plan p, q;
    size_t babble = 0, noisy = 0, room = 0, phone = 0, same = 0, festival = 0, pitch_ok = 0;
    size_t plain = 0;

    pho_sim_opts_init(&o);
    base = o;
    is_int(pho_sim_opts_set_voices(&o, "slt,flite:kal16,festival:kal_diphone", NULL), ERD_OK,
           "engine-prefixed voices parse");
    ok(pho_sim_opts_set_voices(&o, "espeak:en", NULL) == ERD_EINVAL, "unknown engine refused");
    ok(pho_sim_opts_set_voices(&o, "festival:", NULL) == ERD_EINVAL, "empty voice refused");
    ok(pho_sim_opts_set_voices(&o, "festival:kal)(system", NULL) == ERD_EINVAL,
       "festival voice name checked");
    o.pitch_cents = 200;
    o.babble_share = 0.5;
    o.reverb_prob = 0.25;
    o.phone_prob = 0.1;
    is_int(pho_sim_opts_check(&o, NULL), ERD_OK, "robust options valid");
    o.reverb_prob = 1.5;
    ok(pho_sim_opts_check(&o, NULL) == ERD_EINVAL, "share above 1 refused");
    o.reverb_prob = 0.25;
    for (uint64_t i = 0; i < 2000; i++) {
        pho_sim_plan_for(&o, i, &p);
        pho_sim_plan_for(&base, i, &q);
        same += p.speed == q.speed && p.snr_db == q.snr_db && p.noise_seed == q.noise_seed &&
                (p.noise == PHO_NOISE_NONE) == (q.noise == PHO_NOISE_NONE);
        noisy += p.noise != PHO_NOISE_NONE;
        babble += p.noise == PHO_NOISE_BABBLE;
        room += p.reverb;
        phone += p.telephone && p.phone_low_hz >= 100 && p.phone_high_hz <= 7000;
        festival += !strncmp(p.voice, "festival:", 9);
        pitch_ok += p.pitch_cents >= -200 && p.pitch_cents <= 200;
        plain += q.pitch_cents == 0 && !q.reverb && !q.telephone && q.noise != PHO_NOISE_BABBLE;
    }
    is_int(same, 2000, "new options leave the original choices alone");
    is_int(plain, 2000, "defaults add no pitch, room, telephone or babble");
    ok(babble > noisy * 2 / 5 && babble < noisy * 3 / 5, "about half the noise is babble (%zu of %zu)",
       babble, noisy);
    ok(room > 400 && room < 600, "about 25%% in a room (%zu of 2000)", room);
    ok(phone > 130 && phone < 270, "about 10%% telephone, band in range (%zu of 2000)", phone);
    ok(festival > 550 && festival < 780, "a third festival (%zu of 2000)", festival);
    is_int(pitch_ok, 2000, "pitch within +-200 cents");
}

static void test_record(void)
{
    pho_sim_opts o;
    pho_sim_result r;
    char *s = NULL;

    pho_sim_opts_init(&o);
    memset(&r, 0, sizeof r);
    pho_sim_plan_for(&o, 3, &r.plan);
    r.plan.noise = PHO_NOISE_PINK;
    r.plan.snr_db = 12.5;
    r.plan.speed = 0.933;
    snprintf(r.hyps[0].text, sizeof r.hyps[0].text, "time of the gypsies");
    r.hyps[0].score = -6632;
    snprintf(r.hyps[1].text, sizeof r.hyps[1].text, "time of the gypsy is");
    r.hyps[1].score = -27698;
    r.n_hyps = 2;
    is_int(pho_sim_record_json(3, "Time of the Gypsies", &r, &s, NULL), ERD_OK, "record");
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    ok(j != NULL, "record is JSON");
    is_str(json_string_value(json_object_get(j, "id")), "sim-3", "id");
    is_str(json_string_value(json_object_get(j, "spoken")), "Time of the Gypsies", "spoken");
    ok(!strncmp(json_string_value(json_object_get(j, "voice")), "flite:", 6), "voice");
    json_t *pt = json_object_get(j, "perturb");
    ok(json_is_true(json_object_get(pt, "noise")), "noise flag");
    ok(json_real_value(json_object_get(pt, "speed")) == 0.933, "speed");
    ok(s && strstr(s, "\"speed\": 0.933,"), "speed written short: %s", s ? s : "");
    is_str(json_string_value(json_object_get(pt, "noise_type")), "pink", "noise type");
    json_t *nb = json_object_get(j, "nbest");
    is_int(json_array_size(nb), 2, "two hypotheses");
    is_int(json_integer_value(json_object_get(json_array_get(nb, 1), "score")), -27698,
           "score kept");
    json_decref(j);
    free(s);
    ok(pho_sim_record_json(3, "bad \xff utf8", &r, &s, NULL) == ERD_EUTF8, "invalid UTF-8");

    is_int(pho_sim_record_json(3, "Time of the Gypsies", &r, &s, NULL), ERD_OK, "record again");
    ok(s && !strstr(s, "reverb") && !strstr(s, "channel") && !strstr(s, "pitch"),
       "no room, line or pitch written when none");
    free(s);
    r.plan.voice = "festival:kal_diphone";
    r.plan.noise = PHO_NOISE_BABBLE;
    r.plan.pitch_cents = -120;
    r.plan.reverb = 1;
    r.plan.reverberance = 40;
    r.plan.telephone = 1;
    r.plan.phone_low_hz = 200;
    r.plan.phone_high_hz = 3800;
    is_int(pho_sim_record_json(4, "Time of the Gypsies", &r, &s, NULL), ERD_OK, "robust record");
    j = s ? json_loads(s, 0, NULL) : NULL;
    pt = json_object_get(j, "perturb");
    is_str(json_string_value(json_object_get(j, "voice")), "festival:kal_diphone", "festival voice");
    is_str(json_string_value(json_object_get(pt, "noise_type")), "babble", "babble");
    ok(json_real_value(json_object_get(pt, "pitch_cents")) == -120, "pitch kept");
    ok(json_real_value(json_object_get(json_object_get(pt, "reverb"), "reverberance")) == 40,
       "room kept");
    ok(json_real_value(json_object_get(json_object_get(pt, "channel"), "high_hz")) == 3800,
       "telephone band kept");
    json_decref(j);
    free(s);
}

int main(void)
{
    test_phrasegen();
    test_plans();
    test_plans_robust();
    test_record();
    return tap_done();
}
