/* The phone noise channel: alignment, estimation, file round trip and
 * refusal of damaged files, deterministic sampling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phonetics/pho_channel.h"
#include "proto/erd_hash.h"
#include "phones.h"
#include "tap.h"
#include "tmpdir.h"

static void test_align_unit(void)
{
    pho_token r[8], h[8];
    pho_align_op ops[16];
    size_t n_ops, nr, nh;
    double cost;

    nr = phones_tokens((unsigned[]){5, 6, 7}, 3, r);
    nh = phones_tokens((unsigned[]){5, 8, 7}, 3, h);
    is_int(pho_channel_align(NULL, r, nr, h, nh, ops, 16, &n_ops, &cost), ERD_OK, "align sub");
    is_int(n_ops, 3, "substitution: three ops");
    ok(ops[0].kind == PHO_ALIGN_MATCH && ops[1].kind == PHO_ALIGN_SUB && ops[1].ref == 6 &&
           ops[1].hyp == 8 && ops[2].kind == PHO_ALIGN_MATCH,
       "match, 6->8, match");
    ok(cost == 1.0, "unit cost of one substitution is 1 (got %g)", cost);

    nh = phones_tokens((unsigned[]){5, 7}, 2, h);
    pho_channel_align(NULL, r, nr, h, nh, ops, 16, &n_ops, &cost);
    ok(n_ops == 3 && ops[1].kind == PHO_ALIGN_DEL && ops[1].ref == 6 && ops[1].hyp == 0,
       "deletion of 6 found");
    nr = phones_tokens((unsigned[]){5, 7}, 2, r);
    nh = phones_tokens((unsigned[]){5, 9, 7}, 3, h);
    pho_channel_align(NULL, r, nr, h, nh, ops, 16, &n_ops, &cost);
    ok(n_ops == 3 && ops[1].kind == PHO_ALIGN_INS && ops[1].hyp == 9 && ops[1].ref == 0,
       "insertion of 9 found");
    ok(pho_channel_align(NULL, r, nr, h, nh, ops, 2, &n_ops, &cost) == ERD_EINVAL,
       "too small an op buffer refused");
    nh = 0;
    pho_channel_align(NULL, r, nr, h, nh, ops, 16, &n_ops, &cost);
    ok(n_ops == 2 && ops[0].kind == PHO_ALIGN_DEL && cost == 2.0, "empty hypothesis: all deleted");
}

/* Pairs in which phone 10 is heard as 11 three times in four and phone 20
 * is dropped half the time; everything else is heard as said. */
static pho_channel_trainer *synthetic(void)
{
    pho_channel_trainer *tr;
    if (pho_channel_trainer_create(&tr) < 0)
        return NULL;
    for (unsigned k = 0; k < 200; k++) {
        unsigned ref[] = {1 + k % 9, 10, 0, 30 + k % 7, 20, 0, 40};
        unsigned hyp[] = {1 + k % 9, k % 4 ? 11 : 10, 0, 30 + k % 7, 20, 0, 40};
        pho_token r[8], h[8];
        size_t nr = phones_tokens(ref, 7, r), nh = phones_tokens(hyp, 7, h);
        if (k % 2) { /* drop phone 20, between two phones always heard right */
            memmove(h + 3, h + 4, (nh - 4) * sizeof h[0]);
            nh--;
        }
        if (pho_channel_trainer_add(tr, r, nr, h, nh) < 0) {
            pho_channel_trainer_destroy(tr);
            return NULL;
        }
    }
    return tr;
}

static void test_estimate(pho_channel **ret)
{
    pho_channel_trainer *tr = synthetic();
    pho_channel_train_stats st;
    pho_channel *ch = NULL;
    erd_diag diag = {0};

    ok(tr != NULL, "synthetic pairs added");
    if (!tr)
        return;
    pho_token bad = {.phone = 0};
    ok(pho_channel_trainer_add(tr, &bad, 1, &bad, 1) == ERD_EINVAL, "phone id 0 refused");
    is_int(pho_channel_train(tr, NULL, &ch, &st, &diag), ERD_OK, "train: %s", diag.msg);
    pho_channel_trainer_destroy(tr);
    if (!ch)
        return;
    is_int(st.pairs, 200, "200 pairs");
    ok(fabs(st.subs - 150) < 1e-9, "150 substitutions in the final alignment (got %g)", st.subs);
    ok(fabs(st.dels - 100) < 1e-9, "100 deletions (got %g)", st.dels);
    ok(st.cost_per_phone[st.rounds - 1] <= st.cost_per_phone[1] + 1e-9,
       "learned-cost rounds do not get worse (%g -> %g)", st.cost_per_phone[1],
       st.cost_per_phone[st.rounds - 1]);
    ok(pho_channel_sub_prob(ch, 10, 11) > 0.6 && pho_channel_sub_prob(ch, 10, 11) < 0.75,
       "P(11|10) near 3/4 (%g)", pho_channel_sub_prob(ch, 10, 11));
    ok(pho_channel_sub_prob(ch, 20, 0) > 0.4, "P(deleted|20) near 1/2 (%g)",
       pho_channel_sub_prob(ch, 20, 0));
    ok(pho_channel_sub_prob(ch, 40, 40) > 0.85, "P(40|40) high (%g)",
       pho_channel_sub_prob(ch, 40, 40));
    ok(pho_channel_sub_prob(ch, 41, 41) < 0.1, "unseen phone: smoothing spreads its row (%g)",
       pho_channel_sub_prob(ch, 41, 41));
    int rows_ok = 1;
    for (unsigned r = 1; r < PHO_N_PHONES; r++) {
        double s = 0;
        for (unsigned h = 0; h < PHO_N_PHONES; h++)
            s += pho_channel_sub_prob(ch, r, h);
        rows_ok &= fabs(s - 1) < 1e-9;
    }
    ok(rows_ok, "every substitution row sums to 1");
    double s = 0;
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        s += pho_channel_ins_prob(ch, h);
    ok(fabs(s - 1) < 1e-9, "insertion distribution sums to 1");
    ok(fabs(pho_channel_boundary_prob(ch, 1, 0) + pho_channel_boundary_prob(ch, 1, 1) - 1) < 1e-9 &&
           fabs(pho_channel_boundary_prob(ch, 0, 0) + pho_channel_boundary_prob(ch, 0, 1) - 1) <
               1e-9,
       "boundary rows sum to 1");
    ok(pho_channel_ins_rate(ch) > 0 && pho_channel_ins_rate(ch) < 0.05, "few insertions (%g)",
       pho_channel_ins_rate(ch));

    /* Learned costs now prefer the learned confusion over another one. */
    pho_channel_costs c;
    pho_channel_costs_get(ch, &c);
    ok(c.sub[10][11] < c.sub[10][12], "cost 10->11 below 10->12");
    pho_channel_train_opts o;
    pho_channel_train_opts_init(&o);
    o.rounds = 0;
    tr = synthetic();
    pho_channel *none = NULL;
    ok(tr && pho_channel_train(tr, &o, &none, NULL, NULL) == ERD_EINVAL && !none,
       "zero rounds refused, nothing returned");
    pho_channel_trainer_destroy(tr);
    *ret = ch;
}

/* data with the first from replaced by to and its checksum line made anew,
 * written to path and loaded. */
static int load_edited(const char *path, const char *data, size_t len, const char *from,
                       const char *to, pho_channel **ret, erd_diag *diag)
{
    const char *at = strstr(data, from), *ck = strstr(data, "\nchecksum ");
    char *out = malloc(len + 64);
    int rc = ERD_EINVAL;
    if (at && ck && out && at < ck) {
        size_t n = 0;
        memcpy(out, data, (size_t)(at - data));
        n = (size_t)(at - data);
        n += (size_t)sprintf(out + n, "%s", to);
        memcpy(out + n, at + strlen(from), (size_t)(ck + 1 - (at + strlen(from))));
        n += (size_t)(ck + 1 - (at + strlen(from)));
        n += (size_t)sprintf(out + n, "checksum %016llx\n",
                             (unsigned long long)erd_fnv1a64(ERD_FNV1A64_OFFSET, out, n));
        tmpdir_write(path, out, n);
        rc = pho_channel_load(path, ret, diag);
    }
    free(out);
    return rc;
}

static void test_file(pho_channel *ch)
{
    char path[] = "/tmp/erd-test-channel-XXXXXX";
    int fd = mkstemp(path);
    erd_diag diag = {0};
    pho_channel *back = NULL;
    ok(fd >= 0, "temp file");
    if (fd < 0)
        return;
    close(fd);
    is_int(pho_channel_save(ch, path, "test meta\nsecond line", &diag), ERD_OK, "save: %s",
           diag.msg);
    is_int(pho_channel_load(path, &back, &diag), ERD_OK, "load: %s", diag.msg);
    if (back) {
        double maxd = 0;
        for (unsigned r = 1; r < PHO_N_PHONES; r++)
            for (unsigned h = 0; h < PHO_N_PHONES; h++)
                maxd = fmax(maxd, fabs(pho_channel_sub_prob(ch, r, h) -
                                       pho_channel_sub_prob(back, r, h)));
        ok(maxd < 1e-8, "substitution probabilities survive the round trip (max diff %g)", maxd);
        ok(fabs(pho_channel_ins_rate(ch) - pho_channel_ins_rate(back)) < 1e-9,
           "insertion rate survives");
        is_str(pho_channel_meta(back), "test meta second line", "meta kept on one line");
        ok(pho_channel_checksum(back) == pho_channel_checksum(ch) && pho_channel_checksum(ch),
           "checksum recorded on save and load");
    }
    pho_channel_destroy(back);
    back = NULL;

    FILE *f = fopen(path, "rb");
    char *data = malloc(1 << 20);
    size_t len = f && data ? fread(data, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    ok(len > 1000, "saved file read back (%zu bytes)", len);
    if (len > 1000) {
        /* One probability digit changed. */
        char *p = strstr(data, "\nsub 10 ");
        char *digit = p ? strpbrk(p + 8, "123456789") : NULL;
        ok(digit != NULL, "a digit to change");
        if (digit) {
            char saved = *digit;
            *digit = saved == '9' ? '8' : (char)(saved + 1);
            tmpdir_write(path, data, len);
            is_int(pho_channel_load(path, &back, &diag), ERD_ECORRUPT, "edited file refused");
            ok(back == NULL, "nothing returned for it");
            *digit = saved;
        }
        tmpdir_write(path, data, len / 2);
        is_int(pho_channel_load(path, &back, &diag), ERD_ECORRUPT, "truncated file refused");
        tmpdir_write(path, data, len);
        is_int(pho_channel_load(path, &back, &diag), ERD_OK, "restored file loads again");
        pho_channel_destroy(back);
        back = NULL;
        /* Well-formed files (their checksum made anew) that this erd must
         * not read: another format version, another phone inventory. */
        static const struct {
            const char *from, *to;
            int want;
        } edits[] = {{"erd-channel 1\n", "erd-channel 9\n", ERD_EMISMATCH},
                     {"\ninventory b", "\ninventory c", ERD_EMISMATCH},
                     {"\nins_rate ", "\nins_rate 7", ERD_ECORRUPT}};
        for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++)
            is_int(load_edited(path, data, len, edits[e].from, edits[e].to, &back, &diag),
                   edits[e].want, "%s -> %s refused: %s", edits[e].from, edits[e].to, diag.msg);
        ok(back == NULL, "nothing returned for them");
    }
    free(data);
    unlink(path);
    is_int(pho_channel_load(path, &back, &diag), ERD_ENOTFOUND, "missing file: not found");
    pho_channel_destroy(NULL);
}

static void test_sample(const pho_channel *ch)
{
    unsigned ids[40];
    for (unsigned i = 0; i < 40; i++)
        ids[i] = i % 5 == 4 ? 0 : (i % 2 ? 10 : 20);
    pho_token in[40], a[600], b[600];
    size_t n = phones_tokens(ids, 40, in), na = 0, nb = 0;
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    is_int(pho_channel_sample(ch, in, n, 1.0, &s1, a, 600, &na), ERD_OK, "sample");
    is_int(pho_channel_sample(ch, in, n, 1.0, &s2, b, 600, &nb), ERD_OK, "sample again");
    ok(na == nb && memcmp(a, b, na * sizeof a[0]) == 0, "same seed, same corruption");
    ok(a[0].word_start == 1, "output starts a word");
    size_t diff = 0;
    for (int t = 0; t < 5; t++) {
        is_int(pho_channel_sample(ch, in, n, 1.0, &s3, b, 600, &nb), ERD_OK, "other seed %d", t);
        diff += nb != na || memcmp(a, b, na * sizeof a[0]) != 0;
    }
    ok(diff > 0, "other seeds give other corruptions");
    size_t changed = 0;
    for (size_t i = 0; i < na && i < n; i++)
        changed += a[i].phone != in[i].phone;
    ok(changed > 0 || na != n, "strength 1 corrupts a 32-phone sequence of noisy phones");
    is_int(pho_channel_sample(ch, in, n, 0.0, &s1, b, 600, &nb), ERD_OK, "strength 0");
    int same = nb == n;
    for (size_t i = 0; same && i < n; i++)
        same = b[i].phone == in[i].phone && b[i].word_start == in[i].word_start;
    ok(same, "strength 0 copies the input");
    ok(pho_channel_sample(ch, in, n, 1.0, &s1, b, 3, &nb) == ERD_ETOOLONG, "small cap refused");
}

int main(void)
{
    pho_channel *ch = NULL;
    test_align_unit();
    test_estimate(&ch);
    if (ch) {
        test_file(ch);
        test_sample(ch);
    }
    pho_channel_destroy(ch);
    return tap_done();
}
