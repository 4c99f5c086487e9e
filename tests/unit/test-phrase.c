/* The pronunciations a variant is indexed, loaded and explained under
 * (vix_phrase_pronunciations): espeak-ng's, then for a name or alias as
 * written the CMU dictionary's when it differs; short forms keep one. */
#include <stdio.h>
#include <string.h>

#include "index/vix_phrase.h"
#include "phonetics/pho_g2p.h"
#include "tests/unit/tap.h"

typedef struct walk {
    int calls, seconds, stop_at;
    vix_phrase seen[2];
} walk;

static int record(void *user, const vix_phrase *ph, int derived, int is_second)
{
    (void)derived;
    walk *w = user;
    if (w->calls < 2)
        w->seen[w->calls] = *ph;
    w->calls++;
    w->seconds += is_second;
    return w->calls == w->stop_at ? 7 : 0;
}

static bool same_tokens(const vix_phrase *a, const vix_phrase *b)
{
    return a->n_tokens == b->n_tokens &&
           memcmp(a->tokens, b->tokens, a->n_tokens * sizeof *a->tokens) == 0;
}

static void test_walk(pho_g2p *cmu, pho_g2p *plain)
{
    erd_diag d = {0};
    vix_phrase first, scratch;
    const char *text = "Les Miserables"; /* espeak-ng and CMU say it apart */
    is_int(vix_phrase_prepare(cmu, NULL, text, strlen(text), &first, &d), ERD_OK, "prepared: %s",
           d.msg);

    walk w = {0};
    is_int(vix_phrase_pronunciations(cmu, &first, 0, &scratch, record, &w, &d), 0, "a name");
    ok(w.calls == 2 && w.seconds == 1, "a name: both pronunciations, the second marked");
    ok(same_tokens(&w.seen[0], &first) && !same_tokens(&w.seen[1], &first) &&
           strcmp(w.seen[1].text, first.text) == 0,
       "the second: the same text in other phones");

    memset(&w, 0, sizeof w);
    is_int(vix_phrase_pronunciations(cmu, &first, 1, &scratch, record, &w, &d), 0, "a short form");
    ok(w.calls == 1 && w.seconds == 0, "a short form: espeak-ng's only");

    memset(&w, 0, sizeof w);
    w.stop_at = 1;
    is_int(vix_phrase_pronunciations(cmu, &first, 0, &scratch, record, &w, &d), 7,
           "the callback's stop returned");
    is_int(w.calls, 1, "nothing after the stop");

    memset(&w, 0, sizeof w);
    is_int(vix_phrase_pronunciations(plain, &first, 0, &scratch, record, &w, &d), 0,
           "a voice without a second pronunciation");
    is_int(w.calls, 1, "one pronunciation");

    const char *same = "cat"; /* a word both say alike */
    is_int(vix_phrase_prepare(cmu, NULL, same, strlen(same), &first, &d), ERD_OK, "prepared");
    memset(&w, 0, sizeof w);
    is_int(vix_phrase_pronunciations(cmu, &first, 0, &scratch, record, &w, &d), 0, "\"cat\"");
    is_int(w.calls, 1, "phones alike: one pronunciation");
}

int main(void)
{
    erd_diag d = {0};
    pho_g2p *cmu = NULL, *plain = NULL;
    if (pho_g2p_create("en-us+cmu", 0, &cmu, &d) != ERD_OK ||
        pho_g2p_create("en-us", 0, &plain, &d) != ERD_OK) {
        char why[300];
        snprintf(why, sizeof why, "espeak-ng: %s", d.msg);
        pho_g2p_destroy(cmu);
        return tap_skip_all(why);
    }
    test_walk(cmu, plain);
    pho_g2p_destroy(plain);
    pho_g2p_destroy(cmu);
    return tap_done();
}
