#include <pthread.h>
#include <string.h>

#include "phonetics/pho_cmu.h"
#include "phonetics/pho_g2p.h"
#include "phonetics/pho_inventory.h"
#include "phonetics/pho_text.h"
#include "tap.h"

static const char *const texts[] = {
    "hello world", "the hunger games", "harry potter and the sorcerer's stone", "twilight",
    "to kill a mockingbird", "the great gatsby", "the fault in our stars", "the hobbit",
    "the catcher in the rye", "pride and prejudice", "the diary of a young girl",
    "the book thief", "animal farm", "the chronicles of narnia", "ferris bueller's day off",
    "nineteen eighty four", "1984", "lord of the flies", "gone with the wind", "jurassic park",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])
#define ROUNDS 6

static char reference[N_TEXTS][PHO_IPA_MAX];

typedef struct worker {
    pho_g2p *g2p;
    int start;
    int mismatches;
    int errors;
} worker;

static void *run_worker(void *arg)
{
    worker *w = arg;
    char out[PHO_IPA_MAX];

    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < N_TEXTS; i++) {
            size_t k = (i + (size_t)w->start * 5) % N_TEXTS;
            if (pho_g2p_ipa(w->g2p, texts[k], out, sizeof out, NULL) != ERD_OK)
                w->errors++;
            else if (strcmp(out, reference[k]) != 0)
                w->mismatches++;
        }
    }
    return NULL;
}

static int count_words(const char *s)
{
    int n = *s ? 1 : 0;
    for (; *s; s++)
        n += *s == ' ';
    return n;
}

static int clean_spacing(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[0] != ' ' && s[n - 1] != ' ' && !strstr(s, "  ");
}

/* "+cmu": the CMU dictionary's pronunciation beside espeak-ng's, in
 * espeak-ng's IPA conventions; the cache id is espeak-ng's alone. */
static void test_second(void)
{
    pho_g2p *plain = NULL, *cmu = NULL;
    char out[PHO_IPA_MAX] = "untouched";
    erd_diag d = {0};
    is_int(pho_g2p_create("en-us+cmu", 8, &cmu, &d), ERD_OK, "create en-us+cmu: %s", d.msg);
    is_int(pho_g2p_create("en-us", 8, &plain, &d), ERD_OK, "create en-us");
    if (!cmu || !plain)
        goto out;
    ok(pho_g2p_has_second(cmu) && !pho_g2p_has_second(plain), "only +cmu has a second");
    is_str(pho_g2p_id(cmu), pho_g2p_id(plain), "the same cache id as the plain voice");
    is_int(pho_g2p_second_ipa(cmu, "hello of the zinzendorf", out, sizeof out, &d), ERD_OK,
           "second pronunciation: %s", d.msg);
    /* hh ax0 l ow1 | ah1 v | dh ax0 | z ih1 n z ih0 n d ao0 r f (letter rules) */
    is_str(out, "həlˈoʊ ˈʌv ðə zˈɪnzɪndɔːɹf", "cmulex phones in espeak-ng's IPA");
    pho_token tok[PHO_TOKENS_MAX];
    size_t n = 0;
    is_int(pho_tokenize(out, tok, PHO_TOKENS_MAX, &n), ERD_OK, "the tokenizer reads it");
    ok(n == 18 && tok[0].word_start && tok[2].stress == PHO_STRESS_NONE,
       "18 phones, words marked (%zu)", n);
    strcpy(out, "untouched");
    is_int(pho_g2p_second_ipa(cmu, "apollo 13", out, sizeof out, NULL), ERD_ENOTFOUND,
           "a word without phones (digits): none, not half a one");
    is_str(out, "untouched", "out left alone");
    is_int(pho_g2p_second_ipa(plain, "hello", out, sizeof out, NULL), ERD_ENOTFOUND,
           "a plain voice has none");
    is_int(pho_g2p_second_ipa(cmu, "hello", out, 4, NULL), ERD_ETOOLONG, "small buffer refused");
    /* words remembered (pho_cmu.c) answer as looked up afresh: known and
     * unknown words, digits, a word too long for the buffer once and not
     * the next time, in every order and repeated */
    static const char *const texts[] = {
        "hello of the zinzendorf", "the zinzendorf of hello", "apollo 13",  "apollo",
        "hello",                   "zinzendorf zinzendorf",   "13 hello",   "xqzt of the",
        "the the the",             "hello of the zinzendorf"};
    static const size_t caps[] = {PHO_IPA_MAX, 4, 12, PHO_IPA_MAX};
    int differ = 0, runs = 0;
    for (int round = 0; round < 2; round++)
        for (size_t c = 0; c < sizeof caps / sizeof *caps; c++)
            for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
                char fresh[PHO_IPA_MAX] = "", kept[PHO_IPA_MAX] = "";
                pho_cmu_cache_enable(false);
                int a = pho_g2p_second_ipa(cmu, texts[i], fresh, caps[c], NULL);
                pho_cmu_cache_enable(true);
                int b = pho_g2p_second_ipa(cmu, texts[i], kept, caps[c], NULL);
                differ += a != b || strcmp(fresh, kept) != 0;
                runs++;
            }
    is_int(differ, 0, "remembered words answer as fresh lookups (%d texts)", runs);
out:
    pho_g2p_destroy(cmu);
    pho_g2p_destroy(plain);
}

int main(void)
{
    pho_g2p *g = NULL, *nocache = NULL, *gb = NULL, *bad = NULL;
    pho_g2p_stats st;
    erd_diag diag = {0};
    char out[PHO_IPA_MAX], fmt[PHO_IPA_MAX], us[PHO_IPA_MAX];
    pho_token tok[PHO_TOKENS_MAX];
    size_t n = 0;
    int rc;

    rc = pho_g2p_create("en-us", 2, &g, &diag);
    is_int(rc, ERD_OK, "create en-us: %s", erd_diag_message(&diag, rc));
    if (rc != ERD_OK)
        return tap_done();
    ok(strncmp(pho_g2p_id(g), "espeak-ng 1.", 12) == 0, "id names espeak-ng: %s", pho_g2p_id(g));
    ok(strlen(pho_g2p_id(g)) > 18 && strcmp(pho_g2p_id(g) + strlen(pho_g2p_id(g)) - 6, " en-us") == 0,
       "id names the voice");

    /* hello world */
    is_int(pho_g2p_ipa(g, "hello world", out, sizeof out, &diag), ERD_OK, "hello world");
    is_int(count_words(out), 2, "two words in \"%s\"", out);
    ok(clean_spacing(out), "clean spacing");
    is_int(pho_tokenize(out, tok, PHO_TOKENS_MAX, &n), ERD_OK, "tokenizes");
    is_int(pho_tokens_format(tok, n, fmt, sizeof fmt), ERD_OK, "formats");
    is_str(fmt, "h ə l ˈoʊ | w ˈɜ l d", "hello world phones");

    /* cache hit */
    pho_g2p_get_stats(g, &st);
    is_int(st.lookups, 1, "1 lookup");
    is_int(st.hits, 0, "no hit yet");
    is_int(st.espeak_calls, 1, "1 espeak call");
    ok(st.espeak_nanos > 0, "espeak time counted");
    is_int(pho_g2p_ipa(g, "hello world", fmt, sizeof fmt, NULL), ERD_OK, "again");
    is_str(fmt, out, "cached result identical");
    pho_g2p_get_stats(g, &st);
    is_int(st.lookups, 2, "2 lookups");
    is_int(st.hits, 1, "second lookup is a hit");
    is_int(st.espeak_calls, 1, "still 1 espeak call");

    /* LRU, capacity 2: hello world (cached), a, hello world (hit), b evicts a */
    pho_g2p_ipa(g, "apple", out, sizeof out, NULL);
    pho_g2p_ipa(g, "hello world", out, sizeof out, NULL);
    pho_g2p_ipa(g, "banana", out, sizeof out, NULL);
    pho_g2p_get_stats(g, &st);
    is_int(st.hits, 2, "hello world hit again");
    is_int(st.espeak_calls, 3, "apple and banana went to espeak");
    pho_g2p_ipa(g, "hello world", out, sizeof out, NULL);
    pho_g2p_get_stats(g, &st);
    is_int(st.hits, 3, "most recently used survived");
    pho_g2p_ipa(g, "apple", out, sizeof out, NULL);
    pho_g2p_get_stats(g, &st);
    is_int(st.hits, 3, "least recently used was evicted");
    is_int(st.espeak_calls, 4, "apple transcribed again");

    /* no cache */
    is_int(pho_g2p_create("en-us", 0, &nocache, NULL), ERD_OK, "create without cache");
    pho_g2p_ipa(nocache, "hello world", out, sizeof out, NULL);
    pho_g2p_ipa(nocache, "hello world", out, sizeof out, NULL);
    pho_g2p_get_stats(nocache, &st);
    is_int(st.hits, 0, "no hits without cache");
    is_int(st.espeak_calls, 2, "every lookup goes to espeak");

    /* clauses are joined with one space */
    is_int(pho_g2p_ipa(nocache, "wait, what; now", out, sizeof out, NULL), ERD_OK, "clauses");
    is_int(count_words(out), 3, "three words over three clauses: \"%s\"", out);
    ok(clean_spacing(out), "clean spacing across clauses");
    is_int(pho_g2p_ipa(nocache, "catch 22", out, sizeof out, NULL), ERD_OK, "catch 22");
    ok(clean_spacing(out), "espeak's double space collapsed: \"%s\"", out);

    /* two voices share espeak: each call must use its own */
    is_int(pho_g2p_ipa(nocache, "tomato", us, sizeof us, NULL), ERD_OK, "en-us tomato");
    rc = pho_g2p_create("en-gb", 0, &gb, &diag);
    is_int(rc, ERD_OK, "create en-gb: %s", erd_diag_message(&diag, rc));
    if (gb) {
        is_int(pho_g2p_ipa(gb, "tomato", out, sizeof out, NULL), ERD_OK, "en-gb tomato");
        ok(strcmp(out, us) != 0, "en-gb differs: %s vs %s", out, us);
        is_int(pho_g2p_ipa(nocache, "tomato", out, sizeof out, NULL), ERD_OK, "en-us again");
        is_str(out, us, "en-us voice restored");
    }

    /* errors */
    diag.msg[0] = '\0';
    rc = pho_g2p_create("no-such-voice-xx", 4, &bad, &diag);
    ok(rc < 0 && bad == NULL, "unknown voice refused");
    ok(diag.msg[0] != '\0', "with a message: %s", diag.msg);
    is_int(pho_g2p_ipa(nocache, "hello", out, sizeof out, NULL), ERD_OK, "still works after bad voice");
    is_int(pho_g2p_ipa(g, "hello world", out, 5, &diag), ERD_ETOOLONG, "outcap 5 -> ETOOLONG");
    is_int(pho_g2p_ipa(nocache, "hello world", out, 5, &diag), ERD_ETOOLONG, "uncached ETOOLONG");
    is_int(pho_g2p_ipa(g, "", out, sizeof out, NULL), ERD_EEMPTY, "empty text");
    is_int(pho_g2p_ipa(g, "\xc3", out, sizeof out, NULL), ERD_EUTF8, "bad UTF-8");
    {
        static char longtext[PHO_TEXT_MAX + 10];
        memset(longtext, 'a', sizeof longtext - 1);
        is_int(pho_g2p_ipa(g, longtext, out, sizeof out, NULL), ERD_ETOOLONG, "text too long");
    }

    /* concurrency: 4 threads through one small cache, against references */
    for (size_t i = 0; i < N_TEXTS; i++)
        if (pho_g2p_ipa(nocache, texts[i], reference[i], PHO_IPA_MAX, NULL) != ERD_OK)
            reference[i][0] = '\0';
    {
        pho_g2p *shared = NULL;
        pthread_t th[4];
        worker w[4];
        int mism = 0, errs = 0;

        is_int(pho_g2p_create("en-us", 8, &shared, NULL), ERD_OK, "shared handle");
        for (int i = 0; i < 4; i++) {
            w[i] = (worker){shared, i, 0, 0};
            pthread_create(&th[i], NULL, run_worker, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            mism += w[i].mismatches;
            errs += w[i].errors;
        }
        is_int(errs, 0, "no errors under concurrency");
        is_int(mism, 0, "concurrent results equal single-threaded ones");
        pho_g2p_get_stats(shared, &st);
        is_int(st.lookups, 4 * ROUNDS * N_TEXTS, "every lookup counted");
        is_int(st.lookups, st.hits + st.espeak_calls, "each lookup a hit or an espeak call");
        pho_g2p_destroy(shared);
    }

    pho_g2p_destroy(g);
    pho_g2p_destroy(nocache);
    pho_g2p_destroy(gb);
    pho_g2p_destroy(NULL);
    test_second();
    return tap_done();
}
