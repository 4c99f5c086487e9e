/* The scoring rules erd eval and erd calibrate share: when an answer counts
 * as the gold entity, and the reliability and open-set figures of predicted
 * probabilities.  A library of their own so unit tests can link them. */
#include "server/cmd/cmd_score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CAL_BINS 10

static int score__add_key(void *user, const char *text)
{
    cmd_keys *keys = user;
    if (keys->n >= CMD_KEYS_MAX)
        return 0;
    if (pho_match_key(text, strlen(text), keys->key[keys->n], PHO_TEXT_MAX) == ERD_OK &&
        keys->key[keys->n][0])
        keys->n++;
    return 0;
}

static int score__collect_keys(void *user, const vix_entity *e)
{
    return vix_entity_texts(e, score__add_key, user);
}

int cmd_keys_for(vix_store *store, int64_t catalog_id, const char *ext_id, cmd_keys *ret)
{
    ret->n = 0;
    return vix_store_entity_get(store, catalog_id, ext_id, score__collect_keys, ret, NULL);
}

/* Same title as the gold entity: any shared normalised name or alias. */
int cmd_keys_match(const cmd_keys *gold, const cmd_keys *got)
{
    for (size_t i = 0; i < gold->n; i++)
        for (size_t j = 0; j < got->n; j++)
            if (strcmp(gold->key[i], got->key[j]) == 0)
                return 1;
    return 0;
}

int cmd_same_entity(vix_store *store, int64_t catalog_id, const char *gold_id,
                         const char *got_id)
{
    cmd_keys *gold = malloc(sizeof *gold), *got = malloc(sizeof *got);
    int rc = ERD_ENOMEM;
    if (gold && got) {
        rc = cmd_keys_for(store, catalog_id, gold_id, gold);
        if (rc == ERD_OK && gold->n == 0)
            rc = ERD_ENOTFOUND;
        if (rc == ERD_OK)
            rc = cmd_keys_for(store, catalog_id, got_id, got) == ERD_OK && cmd_keys_match(gold, got);
    }
    free(gold);
    free(got);
    return rc;
}

void cmd_reliability_print(FILE *out, const char *title, const double *p, const uint8_t *y,
                           size_t n)
{
    size_t cnt[CAL_BINS] = {0};
    double sum_p[CAL_BINS] = {0}, sum_y[CAL_BINS] = {0}, brier = 0, ece = 0;
    for (size_t i = 0; i < n; i++) {
        int b = (int)(p[i] * CAL_BINS);
        b = b < 0 ? 0 : b >= CAL_BINS ? CAL_BINS - 1 : b;
        cnt[b]++;
        sum_p[b] += p[i];
        sum_y[b] += y[i] ? 1 : 0;
        double d = p[i] - (y[i] ? 1 : 0);
        brier += d * d;
    }
    fprintf(out, "reliability: %s (%zu results)\n", title, n);
    fprintf(out, "  %-9s %6s %9s %9s\n", "predicted", "count", "mean p", "accuracy");
    double tot_p = 0, tot_y = 0;
    for (int b = 0; b < CAL_BINS; b++) {
        tot_p += sum_p[b];
        tot_y += sum_y[b];
        if (!cnt[b]) {
            fprintf(out, "  %.1f-%.1f   %6d %9s %9s\n", b / 10.0, (b + 1) / 10.0, 0, "-", "-");
            continue;
        }
        double mp = sum_p[b] / (double)cnt[b], acc = sum_y[b] / (double)cnt[b];
        ece += (double)cnt[b] / (double)n * fabs(acc - mp);
        fprintf(out, "  %.1f-%.1f   %6zu %9.3f %9.3f\n", b / 10.0, (b + 1) / 10.0, cnt[b], mp, acc);
    }
    if (n)
        fprintf(out, "  all       %6zu %9.3f %9.3f   ECE %.4f  Brier %.4f\n", n,
                tot_p / (double)n, tot_y / (double)n, ece, brier / (double)n);
}

static int score__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cmd_auroc(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
    /* Mann-Whitney over the sorted negatives: ties count a half */
    double *sorted = malloc((n_neg ? n_neg : 1) * sizeof *sorted), wins = 0;
    if (!sorted || !n_pos || !n_neg) {
        free(sorted);
        return NAN;
    }
    memcpy(sorted, neg, n_neg * sizeof *neg);
    qsort(sorted, n_neg, sizeof *sorted, score__cmp_double);
    for (size_t i = 0; i < n_pos; i++) {
        size_t lo = 0, hi = n_neg;
        while (lo < hi) { /* negatives below pos[i] */
            size_t mid = lo + (hi - lo) / 2;
            if (sorted[mid] < pos[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t below = lo, upto = lo;
        while (upto < n_neg && sorted[upto] == pos[i])
            upto++;
        wins += (double)below + 0.5 * (double)(upto - below);
    }
    free(sorted);
    return wins / ((double)n_pos * (double)n_neg);
}

double cmd_keep_threshold(const double *pos, size_t n_pos, double keep)
{
    double *sorted = malloc((n_pos ? n_pos : 1) * sizeof *sorted);
    if (!sorted || !n_pos) {
        free(sorted);
        return 0;
    }
    memcpy(sorted, pos, n_pos * sizeof *pos);
    qsort(sorted, n_pos, sizeof *sorted, score__cmp_double);
    /* the largest t with at least keep of the scores at or above it */
    size_t drop = (size_t)floor((1 - keep) * (double)n_pos);
    double t = sorted[drop < n_pos ? drop : n_pos - 1];
    free(sorted);
    return t;
}

