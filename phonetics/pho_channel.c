#include "phonetics/pho_channel.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_internal.h"
#include "phonetics/sim/pho_rng.h"
#include "proto/erd_file.h"

#define PHO__CH_MAGIC "erd-channel"
#define PHO__CH_VERSION 1
#define PHO__CH_FILE_MAX (1u << 20)
#define PHO__CH_META_MAX 1024
/* Rows are written with 9 significant digits; a sum further than this from 1
 * was edited or damaged in a way the checksum could not catch. */
#define PHO__CH_SUM_TOL 1e-5

struct pho_channel {
    double sub[PHO_N_PHONES][PHO_N_PHONES]; /* [ref][hyp], hyp 0 = deleted; row 0 unused */
    double ins_rate;
    double ins[PHO_N_PHONES];               /* [hyp], 0 unused */
    double boundary[2][2];                  /* [ref_ws][hyp_ws] */
    char meta[PHO__CH_META_MAX];
    uint64_t checksum;
};

typedef struct pho__pair {
    size_t ref_off, n_ref, hyp_off, n_hyp;
} pho__pair;

struct pho_channel_trainer {
    pho_token *tokens;
    size_t n_tokens, cap_tokens;
    pho__pair *pairs;
    size_t n_pairs, cap_pairs;
};

void pho_channel_train_opts_init(pho_channel_train_opts *opts)
{
    *opts = (pho_channel_train_opts){.rounds = 4, .smoothing = 0.5};
}

int pho_channel_trainer_create(pho_channel_trainer **ret)
{
    pho_channel_trainer *tr = calloc(1, sizeof *tr);
    if (!tr)
        return ERD_ENOMEM;
    *ret = tr;
    return ERD_OK;
}

void pho_channel_trainer_destroy(pho_channel_trainer *tr)
{
    if (!tr)
        return;
    free(tr->tokens);
    free(tr->pairs);
    free(tr);
}

int pho_channel_trainer_add(pho_channel_trainer *tr, const pho_token *ref, size_t n_ref,
                            const pho_token *hyp, size_t n_hyp)
{
    if (n_ref > PHO_TOKENS_MAX || n_hyp > PHO_TOKENS_MAX)
        return ERD_ETOOLONG;
    for (size_t i = 0; i < n_ref; i++)
        if (ref[i].phone == 0 || ref[i].phone >= PHO_N_PHONES)
            return ERD_EINVAL;
    for (size_t i = 0; i < n_hyp; i++)
        if (hyp[i].phone == 0 || hyp[i].phone >= PHO_N_PHONES)
            return ERD_EINVAL;
    if (tr->n_tokens + n_ref + n_hyp > tr->cap_tokens) {
        size_t ncap = tr->cap_tokens ? tr->cap_tokens : 65536;
        while (ncap < tr->n_tokens + n_ref + n_hyp)
            ncap *= 2;
        pho_token *p = realloc(tr->tokens, ncap * sizeof *p);
        if (!p)
            return ERD_ENOMEM;
        tr->tokens = p;
        tr->cap_tokens = ncap;
    }
    if (tr->n_pairs == tr->cap_pairs) {
        size_t ncap = tr->cap_pairs ? tr->cap_pairs * 2 : 1024;
        pho__pair *p = realloc(tr->pairs, ncap * sizeof *p);
        if (!p)
            return ERD_ENOMEM;
        tr->pairs = p;
        tr->cap_pairs = ncap;
    }
    pho__pair *pr = &tr->pairs[tr->n_pairs++];
    pr->ref_off = tr->n_tokens;
    pr->n_ref = n_ref;
    memcpy(tr->tokens + tr->n_tokens, ref, n_ref * sizeof *ref);
    tr->n_tokens += n_ref;
    pr->hyp_off = tr->n_tokens;
    pr->n_hyp = n_hyp;
    memcpy(tr->tokens + tr->n_tokens, hyp, n_hyp * sizeof *hyp);
    tr->n_tokens += n_hyp;
    return ERD_OK;
}

size_t pho_channel_trainer_count(const pho_channel_trainer *tr)
{
    return tr->n_pairs;
}

void pho_channel_destroy(pho_channel *ch)
{
    free(ch);
}

double pho_channel_sub_prob(const pho_channel *ch, unsigned ref, unsigned hyp)
{
    return ref >= 1 && ref < PHO_N_PHONES && hyp < PHO_N_PHONES ? ch->sub[ref][hyp] : 0.0;
}

double pho_channel_ins_rate(const pho_channel *ch)
{
    return ch->ins_rate;
}

double pho_channel_ins_prob(const pho_channel *ch, unsigned hyp)
{
    return hyp >= 1 && hyp < PHO_N_PHONES ? ch->ins[hyp] : 0.0;
}

double pho_channel_boundary_prob(const pho_channel *ch, int ref_ws, int hyp_ws)
{
    return ch->boundary[ref_ws ? 1 : 0][hyp_ws ? 1 : 0];
}

const char *pho_channel_meta(const pho_channel *ch)
{
    return ch->meta;
}

uint64_t pho_channel_checksum(const pho_channel *ch)
{
    return ch->checksum;
}

static float pho__nlog(double p)
{
    return p > 0 ? (float)-log(p) : 1e9f;
}

void pho_channel_costs_get(const pho_channel *ch, pho_channel_costs *ret)
{
    /* Not inserting before a phone is part of that phone's cost, so a
     * candidate's length is paid for and the total is a log-likelihood. */
    double keep = -log(1.0 - ch->ins_rate);
    memset(ret, 0, sizeof *ret);
    for (unsigned r = 1; r < PHO_N_PHONES; r++)
        for (unsigned h = 0; h < PHO_N_PHONES; h++)
            ret->sub[r][h] = pho__nlog(ch->sub[r][h]) + (float)keep;
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        ret->ins[h] = pho__nlog(ch->ins_rate) + pho__nlog(ch->ins[h]);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            ret->boundary[a][b] = pho__nlog(ch->boundary[a][b]);
}

/* ---- alignment ---- */

enum { PHO__BT_DIAG = 0, PHO__BT_DEL = 1, PHO__BT_INS = 2 };

int pho_channel_align(const pho_channel_costs *costs, const pho_token *ref, size_t n_ref,
                      const pho_token *hyp, size_t n_hyp, pho_align_op *ops, size_t cap,
                      size_t *ret_n, double *ret_cost)
{
    if (n_ref > PHO_TOKENS_MAX || n_hyp > PHO_TOKENS_MAX)
        return ERD_ETOOLONG;
    if (cap < n_ref + n_hyp)
        return ERD_EINVAL;
    size_t w = n_hyp + 1;
    double *d = malloc((n_ref + 1) * w * sizeof *d);
    unsigned char *bt = malloc((n_ref + 1) * w);
    if (!d || !bt) {
        free(d);
        free(bt);
        return ERD_ENOMEM;
    }
#define PHO__SUBC(i, j)                                                                      \
    (costs ? (double)costs->sub[ref[i].phone][hyp[j].phone] +                                \
                 costs->boundary[ref[i].word_start ? 1 : 0][hyp[j].word_start ? 1 : 0]       \
           : (ref[i].phone == hyp[j].phone ? 0.0 : 1.0))
#define PHO__DELC(i) (costs ? (double)costs->sub[ref[i].phone][0] : 1.0)
#define PHO__INSC(j) \
    (costs ? (double)costs->ins[hyp[j].phone] + costs->boundary[0][hyp[j].word_start ? 1 : 0] : 1.0)
    d[0] = 0;
    bt[0] = PHO__BT_DIAG;
    for (size_t j = 1; j <= n_hyp; j++) {
        d[j] = d[j - 1] + PHO__INSC(j - 1);
        bt[j] = PHO__BT_INS;
    }
    for (size_t i = 1; i <= n_ref; i++) {
        double *row = d + i * w, *prev = row - w;
        row[0] = prev[0] + PHO__DELC(i - 1);
        bt[i * w] = PHO__BT_DEL;
        for (size_t j = 1; j <= n_hyp; j++) {
            double best = prev[j - 1] + PHO__SUBC(i - 1, j - 1);
            unsigned char b = PHO__BT_DIAG;
            double c = prev[j] + PHO__DELC(i - 1);
            if (c < best) {
                best = c;
                b = PHO__BT_DEL;
            }
            c = row[j - 1] + PHO__INSC(j - 1);
            if (c < best) {
                best = c;
                b = PHO__BT_INS;
            }
            row[j] = best;
            bt[i * w + j] = b;
        }
    }
#undef PHO__SUBC
#undef PHO__DELC
#undef PHO__INSC
    /* Walk back, writing ops from the end of the buffer, then move them. */
    size_t i = n_ref, j = n_hyp, k = cap;
    while (i > 0 || j > 0) {
        unsigned char b = bt[i * w + j];
        pho_align_op op = {0};
        if (b == PHO__BT_DIAG && i > 0 && j > 0) {
            op.ref = ref[i - 1].phone;
            op.hyp = hyp[j - 1].phone;
            op.kind = op.ref == op.hyp ? PHO_ALIGN_MATCH : PHO_ALIGN_SUB;
            i--;
            j--;
        } else if (b == PHO__BT_DEL || j == 0) {
            op.ref = ref[i - 1].phone;
            op.kind = PHO_ALIGN_DEL;
            i--;
        } else {
            op.hyp = hyp[j - 1].phone;
            op.kind = PHO_ALIGN_INS;
            j--;
        }
        ops[--k] = op;
    }
    size_t n = cap - k;
    memmove(ops, ops + k, n * sizeof *ops);
    *ret_cost = d[n_ref * w + n_hyp];
    *ret_n = n;
    free(d);
    free(bt);
    return ERD_OK;
}

/* ---- estimation ---- */

typedef struct pho__counts {
    double sub[PHO_N_PHONES][PHO_N_PHONES];
    double ins[PHO_N_PHONES];
    double slots;
    double boundary[2][2];
} pho__counts;

static void pho__estimate(const pho__counts *c, double k, pho_channel *ch)
{
    for (unsigned r = 1; r < PHO_N_PHONES; r++) {
        double sum = 0;
        for (unsigned h = 0; h < PHO_N_PHONES; h++)
            sum += c->sub[r][h] + k;
        for (unsigned h = 0; h < PHO_N_PHONES; h++)
            ch->sub[r][h] = (c->sub[r][h] + k) / sum;
    }
    double n_ins = 0;
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        n_ins += c->ins[h];
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        ch->ins[h] = (c->ins[h] + k) / (n_ins + k * (PHO_N_PHONES - 1));
    /* Each slot ends with one "stop inserting"; each insertion is a "go on". */
    ch->ins_rate = (n_ins + k) / (n_ins + c->slots + 2 * k);
    for (int a = 0; a < 2; a++) {
        double s = c->boundary[a][0] + c->boundary[a][1] + 2 * k;
        for (int b = 0; b < 2; b++)
            ch->boundary[a][b] = (c->boundary[a][b] + k) / s;
    }
}

int pho_channel_train(const pho_channel_trainer *tr, const pho_channel_train_opts *opts,
                      pho_channel **ret, pho_channel_train_stats *stats, erd_diag *diag)
{
    pho_channel_train_opts o;
    pho_channel_train_stats st = {0};
    pho_channel *ch = NULL;
    pho__counts *c = NULL;
    pho_channel_costs *costs = NULL;
    pho_align_op *ops = NULL;
    int rc = ERD_OK;

    if (opts)
        o = *opts;
    else
        pho_channel_train_opts_init(&o);
    if (o.rounds < 1 || o.rounds > sizeof st.cost_per_phone / sizeof st.cost_per_phone[0])
        return erd_fail(diag, ERD_EINVAL, "rounds must be 1..%zu",
                        sizeof st.cost_per_phone / sizeof st.cost_per_phone[0]);
    if (!(o.smoothing > 0) || o.smoothing > 1000)
        return erd_fail(diag, ERD_EINVAL, "smoothing must be in (0, 1000]");
    if (tr->n_pairs == 0)
        return erd_fail(diag, ERD_EEMPTY, "no training pairs");

    ch = calloc(1, sizeof *ch);
    c = malloc(sizeof *c);
    costs = malloc(sizeof *costs);
    ops = malloc(2 * PHO_TOKENS_MAX * sizeof *ops);
    if (!ch || !c || !costs || !ops) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    for (unsigned round = 0; round < o.rounds; round++) {
        double total = 0;
        memset(c, 0, sizeof *c);
        st.matches = st.subs = st.dels = st.ins = 0;
        st.ref_phones = st.hyp_phones = 0;
        for (size_t p = 0; p < tr->n_pairs; p++) {
            const pho__pair *pr = &tr->pairs[p];
            const pho_token *ref = tr->tokens + pr->ref_off, *hyp = tr->tokens + pr->hyp_off;
            size_t n_ops;
            double cost;
            rc = pho_channel_align(round ? costs : NULL, ref, pr->n_ref, hyp, pr->n_hyp, ops,
                                   2 * PHO_TOKENS_MAX, &n_ops, &cost);
            if (rc < 0) {
                rc = erd_fail(diag, rc, "aligning pair %zu failed", p);
                goto out;
            }
            total += cost;
            st.ref_phones += pr->n_ref;
            st.hyp_phones += pr->n_hyp;
            c->slots += (double)pr->n_ref + 1;
            size_t i = 0, j = 0;
            for (size_t q = 0; q < n_ops; q++) {
                const pho_align_op *op = &ops[q];
                switch (op->kind) {
                case PHO_ALIGN_MATCH:
                case PHO_ALIGN_SUB:
                    c->sub[op->ref][op->hyp] += 1;
                    c->boundary[ref[i].word_start ? 1 : 0][hyp[j].word_start ? 1 : 0] += 1;
                    if (op->kind == PHO_ALIGN_MATCH)
                        st.matches++;
                    else
                        st.subs++;
                    i++;
                    j++;
                    break;
                case PHO_ALIGN_DEL:
                    c->sub[op->ref][0] += 1;
                    st.dels++;
                    i++;
                    break;
                default:
                    c->ins[op->hyp] += 1;
                    c->boundary[0][hyp[j].word_start ? 1 : 0] += 1;
                    st.ins++;
                    j++;
                    break;
                }
            }
        }
        st.cost_per_phone[round] = st.ref_phones ? total / (double)st.ref_phones : 0;
        pho__estimate(c, o.smoothing, ch);
        pho_channel_costs_get(ch, costs);
    }
    st.pairs = tr->n_pairs;
    st.rounds = o.rounds;
    st.boundary_kept = c->boundary[1][1];
    st.boundary_dropped = c->boundary[1][0];
    st.boundary_added = c->boundary[0][1];
    if (stats)
        *stats = st;
    *ret = ch;
    ch = NULL;
out:
    free(ch);
    free(c);
    free(costs);
    free(ops);
    return rc;
}

/* ---- file ---- */

typedef struct pho__buf {
    char *p;
    size_t len, cap;
    int oom;
} pho__buf;

__attribute__((format(printf, 2, 3))) static void pho__bprintf(pho__buf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 65536;
        while (ncap < b->len + (size_t)n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

int pho_channel_save(pho_channel *ch, const char *path, const char *meta, erd_diag *diag)
{
    pho__buf b = {0};
    int rc = ERD_OK;

    if (meta) {
        /* One line of provenance: line breaks would end the field. */
        size_t i = 0;
        for (; meta[i] && i + 1 < sizeof ch->meta; i++)
            ch->meta[i] = meta[i] == '\n' || meta[i] == '\r' ? ' ' : meta[i];
        ch->meta[i] = '\0';
    }
    pho__bprintf(&b, "%s %d\n", PHO__CH_MAGIC, PHO__CH_VERSION);
    pho__bprintf(&b, "inventory %016llx %d\n", (unsigned long long)pho_inventory_hash(),
                 PHO_N_PHONES);
    pho__bprintf(&b, "meta %s\n", ch->meta);
    pho__bprintf(&b, "ins_rate %.9g\n", ch->ins_rate);
    pho__bprintf(&b, "ins");
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        pho__bprintf(&b, " %.9g", ch->ins[h]);
    pho__bprintf(&b, "\nboundary %.9g %.9g %.9g %.9g\n", ch->boundary[0][0], ch->boundary[0][1],
                 ch->boundary[1][0], ch->boundary[1][1]);
    pho__bprintf(&b, "# sub REF P(deleted) P(heard as phone 1..%d); phone symbols:",
                 PHO_N_PHONES - 1);
    for (unsigned h = 1; h < PHO_N_PHONES; h++)
        pho__bprintf(&b, " %u=%s", h, pho_phone_symbol(h));
    pho__bprintf(&b, "\n");
    for (unsigned r = 1; r < PHO_N_PHONES; r++) {
        pho__bprintf(&b, "sub %u", r);
        for (unsigned h = 0; h < PHO_N_PHONES; h++)
            pho__bprintf(&b, " %.9g", ch->sub[r][h]);
        pho__bprintf(&b, "\n");
    }
    if (b.oom) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, b.p, b.len);
    pho__bprintf(&b, "checksum %016llx\n", (unsigned long long)sum);
    if (b.oom) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = erd_file_replace(path, b.p, b.len, diag);
    if (rc < 0)
        goto out;
    ch->checksum = sum;
out:
    free(b.p);
    return rc;
}

/* Reads n numbers after a line's keyword; the line must hold exactly them. */
static int pho__parse_nums(const char *line, const char *key, double *out, size_t n)
{
    size_t klen = strlen(key);
    if (strncmp(line, key, klen) != 0 || line[klen] != ' ')
        return ERD_ECORRUPT;
    const char *s = line + klen;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || !(v >= 0) || v > 1)
            return ERD_ECORRUPT;
        out[i] = v;
        s = end;
    }
    while (*s == ' ')
        s++;
    return *s == '\0' ? ERD_OK : ERD_ECORRUPT;
}

static int pho__sum_ok(const double *p, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return fabs(s - 1.0) <= PHO__CH_SUM_TOL;
}

static char *pho__next_line(char **cursor)
{
    char *s = *cursor, *nl;
    if (!s || !*s)
        return NULL;
    nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = s + strlen(s);
    }
    return s;
}

/* The whole file into a NUL-terminated buffer (*ret_data, *ret_len). */
static int pho__ch_read(const char *path, char **ret_data, size_t *ret_len, erd_diag *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    char *data = malloc(PHO__CH_FILE_MAX + 1);
    size_t len = data ? fread(data, 1, PHO__CH_FILE_MAX + 1, f) : 0;
    int rc = ERD_OK;
    if (!data)
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
    else if (ferror(f))
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
    else if (len > PHO__CH_FILE_MAX)
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: larger than a channel file can be", path);
    else if (memchr(data, '\0', len))
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: not a channel file", path);
    fclose(f);
    if (rc < 0) {
        free(data);
        return rc;
    }
    data[len] = '\0';
    *ret_data = data;
    *ret_len = len;
    return ERD_OK;
}

/* The checksum line is last and covers every byte before it: checked, then
 * cut off (the body ends where it began). */
static int pho__ch_verify(const char *path, char *data, size_t len, uint64_t *ret_sum,
                          erd_diag *diag)
{
    char *ck = NULL;
    for (char *s = strstr(data, "\nchecksum "); s; s = strstr(s + 1, "\nchecksum "))
        ck = s;
    unsigned long long want;
    char tail;
    if (!ck || sscanf(ck + 1, "checksum %16llx%c", &want, &tail) != 2 || tail != '\n' ||
        ck + 1 + 9 + 16 + 1 != data + len)
        return erd_fail(diag, ERD_ECORRUPT, "%s: truncated (no checksum line at the end)", path);
    uint64_t got = erd_fnv1a64(ERD_FNV1A64_OFFSET, data, (size_t)(ck + 1 - data));
    if (got != want)
        return erd_fail(diag, ERD_ECORRUPT,
                        "%s: checksum mismatch (file says %016llx, content %016llx)", path, want,
                        (unsigned long long)got);
    ck[1] = '\0';
    *ret_sum = got;
    return ERD_OK;
}

/* Magic and version, phone inventory, provenance. */
static int pho__ch_parse_header(const char *path, char **cur, pho_channel *ch, erd_diag *diag)
{
    int version, phones;
    unsigned long long inv;
    char *line = pho__next_line(cur);
    if (!line || sscanf(line, PHO__CH_MAGIC " %d", &version) != 1)
        return erd_fail(diag, ERD_ECORRUPT, "%s: not a channel file", path);
    if (version != PHO__CH_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "%s: channel format %d, this erd reads %d", path,
                        version, PHO__CH_VERSION);
    line = pho__next_line(cur);
    if (!line || sscanf(line, "inventory %16llx %d", &inv, &phones) != 2)
        return erd_fail(diag, ERD_ECORRUPT, "%s: no inventory line", path);
    if (inv != pho_inventory_hash() || phones != PHO_N_PHONES)
        return erd_fail(diag, ERD_EMISMATCH, "%s: made for another phone inventory", path);
    line = pho__next_line(cur);
    if (!line || strncmp(line, "meta ", 5) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: no meta line", path);
    snprintf(ch->meta, sizeof ch->meta, "%s", line + 5);
    return ERD_OK;
}

/* Insertion rate and distribution, word-boundary probabilities. */
static int pho__ch_parse_ins(const char *path, char **cur, pho_channel *ch, erd_diag *diag)
{
    double row[PHO_N_PHONES + 1];
    char *line = pho__next_line(cur);
    if (!line || pho__parse_nums(line, "ins_rate", &ch->ins_rate, 1) < 0 || ch->ins_rate >= 1)
        return erd_fail(diag, ERD_ECORRUPT, "%s: bad ins_rate line", path);
    line = pho__next_line(cur);
    if (!line || pho__parse_nums(line, "ins", row, PHO_N_PHONES - 1) < 0 ||
        !pho__sum_ok(row, PHO_N_PHONES - 1))
        return erd_fail(diag, ERD_ECORRUPT, "%s: bad ins line", path);
    memcpy(ch->ins + 1, row, (PHO_N_PHONES - 1) * sizeof row[0]);
    line = pho__next_line(cur);
    if (!line || pho__parse_nums(line, "boundary", row, 4) < 0 || !pho__sum_ok(row, 2) ||
        !pho__sum_ok(row + 2, 2))
        return erd_fail(diag, ERD_ECORRUPT, "%s: bad boundary line", path);
    ch->boundary[0][0] = row[0];
    ch->boundary[0][1] = row[1];
    ch->boundary[1][0] = row[2];
    ch->boundary[1][1] = row[3];
    return ERD_OK;
}

/* One substitution row per intended phone, in order; '#' lines skipped. */
static int pho__ch_parse_subs(const char *path, char **cur, pho_channel *ch, erd_diag *diag)
{
    double row[PHO_N_PHONES + 1];
    unsigned r = 1;
    char *line;
    while ((line = pho__next_line(cur)) != NULL) {
        if (line[0] == '#')
            continue;
        char key[16];
        int nk = snprintf(key, sizeof key, "sub %u", r);
        if (r >= PHO_N_PHONES || nk < 0 || pho__parse_nums(line, key, row, PHO_N_PHONES) < 0 ||
            !pho__sum_ok(row, PHO_N_PHONES))
            return erd_fail(diag, ERD_ECORRUPT, "%s: bad substitution row %u", path, r);
        memcpy(ch->sub[r], row, PHO_N_PHONES * sizeof row[0]);
        r++;
    }
    if (r != PHO_N_PHONES)
        return erd_fail(diag, ERD_ECORRUPT, "%s: %u substitution rows, want %d", path, r - 1,
                        PHO_N_PHONES - 1);
    return ERD_OK;
}

int pho_channel_load(const char *path, pho_channel **ret, erd_diag *diag)
{
    char *data = NULL, *cur;
    size_t len = 0;
    uint64_t sum = 0;
    pho_channel *ch = calloc(1, sizeof *ch);
    int rc = ch ? pho__ch_read(path, &data, &len, diag) : erd_fail(diag, ERD_ENOMEM, "out of memory");
    if (rc == ERD_OK)
        rc = pho__ch_verify(path, data, len, &sum, diag);
    cur = data;
    if (rc == ERD_OK)
        rc = pho__ch_parse_header(path, &cur, ch, diag);
    if (rc == ERD_OK)
        rc = pho__ch_parse_ins(path, &cur, ch, diag);
    if (rc == ERD_OK)
        rc = pho__ch_parse_subs(path, &cur, ch, diag);
    if (rc == ERD_OK) {
        ch->checksum = sum;
        *ret = ch;
        ch = NULL;
    }
    free(data);
    free(ch);
    return rc;
}

/* ---- sampling ---- */

static double pho__uniform(uint64_t *s)
{
    return (double)(pho_splitmix64(s) >> 11) * 0x1.0p-53;
}

static unsigned pho__draw(const double *p, unsigned lo, unsigned hi, double u)
{
    double acc = 0;
    for (unsigned i = lo; i < hi; i++) {
        acc += p[i];
        if (u < acc)
            return i;
    }
    return hi - 1;
}

static int pho__emit(pho_token *out, size_t cap, size_t *n, unsigned phone, unsigned stress,
                     int ws)
{
    if (*n >= cap)
        return ERD_ETOOLONG;
    out[*n] = (pho_token){.phone = (uint8_t)phone,
                          .stress = pho_phone_is_vowel(phone) ? (uint8_t)stress : 0,
                          .word_start = (uint8_t)(ws || *n == 0)};
    (*n)++;
    return ERD_OK;
}

static int pho__sample_inserts(const pho_channel *ch, double strength, uint64_t *rng,
                               pho_token *out, size_t cap, size_t *n)
{
    double rate = fmin(0.5, ch->ins_rate * strength);
    while (pho__uniform(rng) < rate) {
        unsigned h = pho__draw(ch->ins, 1, PHO_N_PHONES, pho__uniform(rng));
        int ws = pho__uniform(rng) < fmin(1.0, ch->boundary[0][1] * strength);
        int rc = pho__emit(out, cap, n, h, PHO_STRESS_NONE, ws);
        if (rc < 0)
            return rc;
    }
    return ERD_OK;
}

int pho_channel_sample(const pho_channel *ch, const pho_token *in, size_t n, double strength,
                       uint64_t *rng, pho_token *out, size_t cap, size_t *ret_n)
{
    double row[PHO_N_PHONES];
    size_t m = 0;
    int pending_ws = 0, rc;

    if (!(strength >= 0))
        return ERD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned r = in[i].phone;
        if (r == 0 || r >= PHO_N_PHONES)
            return ERD_EINVAL;
        rc = pho__sample_inserts(ch, strength, rng, out, cap, &m);
        if (rc < 0)
            return rc;
        /* Scale every error down or up together; what is left is keeping r. */
        double err = 0;
        for (unsigned h = 0; h < PHO_N_PHONES; h++) {
            row[h] = h == r ? 0 : ch->sub[r][h] * strength;
            err += row[h];
        }
        if (err > 1) {
            for (unsigned h = 0; h < PHO_N_PHONES; h++)
                row[h] /= err;
            err = 1;
        }
        row[r] = 1 - err;
        unsigned h = pho__draw(row, 0, PHO_N_PHONES, pho__uniform(rng));
        /* A deleted word start moves the boundary to the next phone heard. */
        int ref_ws = in[i].word_start || pending_ws;
        if (h == PHO_CHANNEL_EPS) {
            pending_ws = ref_ws;
            continue;
        }
        pending_ws = 0;
        double flip = fmin(1.0, ch->boundary[ref_ws][!ref_ws] * strength);
        int ws = pho__uniform(rng) < flip ? !ref_ws : ref_ws;
        rc = pho__emit(out, cap, &m, h, h == r ? in[i].stress : PHO_STRESS_NONE, ws);
        if (rc < 0)
            return rc;
    }
    rc = pho__sample_inserts(ch, strength, rng, out, cap, &m);
    if (rc < 0)
        return rc;
    if (m == 0)
        return ERD_EEMPTY;
    *ret_n = m;
    return ERD_OK;
}
