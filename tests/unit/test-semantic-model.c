/* The shipped semantic model keeps the equivalences it was trained for.
 * Without the model file (a checkout without its binaries) the test is a
 * skip, not a pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phonetics/pho_semantic.h"
#include "tap.h"
#include "vec.h"

static double word_cos(const pho_sem_model *m, const char *a, const char *b)
{
    float va[PHO_SEM_DIM_MAX], vb[PHO_SEM_DIM_MAX];
    pho_sem_model_word(m, a, strlen(a), va);
    pho_sem_model_word(m, b, strlen(b), vb);
    return cosine(va, vb, pho_sem_model_dim(m));
}

static void test_shipped(const char *path)
{
    pho_sem_model *m = NULL;
    erd_diag d = {0};

    is_int(pho_sem_model_load(path, &m, &d), ERD_OK, "shipped model loads (%s)", d.msg);
    if (!m)
        return;
    ok(pho_sem_model_dim(m) <= 128 && pho_sem_model_words(m) > 10000, "shipped model shape");
    static const char *const pairs[][3] = {
        {"2", "two", "cat"}, {"ii", "2", "house"}, {"vs", "versus", "tree"},
        {"car", "automobile", "song"}, {"1st", "first", "river"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        double a = word_cos(m, pairs[i][0], pairs[i][1]), b = word_cos(m, pairs[i][0], pairs[i][2]);
        ok(a > b + 0.1, "%s is nearer %s (%.2f) than %s (%.2f)", pairs[i][0], pairs[i][1], a,
           pairs[i][2], b);
    }
    float x[PHO_SEM_DIM_MAX], y[PHO_SEM_DIM_MAX], z[PHO_SEM_DIM_MAX];
    pho_sem_model_phrase(m, "rocky 2", x);
    pho_sem_model_phrase(m, "rocky two", y);
    pho_sem_model_phrase(m, "rocky road", z);
    ok(dot(x, y, pho_sem_model_dim(m)) > dot(x, z, pho_sem_model_dim(m)),
       "\"rocky 2\" nearer \"rocky two\" than \"rocky road\"");
    pho_sem_model_destroy(m);
}

int main(void)
{
    const char *src = getenv("ERD_TEST_SRCDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/phonetics/models/erd-semantic-v1.bin", src ? src : ".");
    if (access(path, R_OK) != 0)
        return tap_skip_all("phonetics/models/erd-semantic-v1.bin is absent");
    test_shipped(path);
    return tap_done();
}
