#include "server/cmd/cmd_opt.h"

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "proto/erd_error.h"
#include "server/cmd/cmd_cli.h"

/* long options get values past any char, so a short name never collides */
#define OPT__LONG_BASE 256
#define OPT__MAX 64
/* help text starts two columns after the longest "  -x, --name ARG",
 * within these bounds */
#define OPT__HELP_COLUMN_MIN 21
#define OPT__HELP_COLUMN_MAX 25

static int opt__takes_arg(const cmd_opt *o)
{
    return o->type != CMD_OPT_FLAG;
}

/* The row's upper bound, within its destination's type (a bound such as
 * LONG_MAX rounds up as a double). */
static unsigned long long opt__max(const cmd_opt *o)
{
    unsigned long long cap = o->type == CMD_OPT_UINT ? UINT_MAX
                           : o->type == CMD_OPT_LONG ? (unsigned long long)LONG_MAX
                                                     : ULLONG_MAX;
    return o->max >= (double)cap ? cap : (unsigned long long)o->max;
}

/* Whole-number bounds narrower than the type's are worth a mention. */
static void opt__range(const cmd_opt *o, FILE *out)
{
    if (o->max < 1e9)
        fprintf(out, ", %.0f..%.0f", o->min, o->max);
}

static void opt__default(const cmd_opt *o, FILE *out)
{
    if (o->flags & CMD_OPT_NO_DEFAULT)
        return;
    if (o->cfg_key) {
        fprintf(out, " (default from config: %s)", cfg_default(o->cfg_key));
        return;
    }
    switch (o->type) {
    case CMD_OPT_STR:
        if (*o->out.str)
            fprintf(out, " (default %s)", *o->out.str);
        return;
    case CMD_OPT_UINT: fprintf(out, " (default %u", *o->out.uns); break;
    case CMD_OPT_ULL: fprintf(out, " (default %llu", *o->out.ull); break;
    case CMD_OPT_LONG: /* below its bound: a sentinel for "not set", no default */
        if ((double)*o->out.lng < o->min)
            return;
        fprintf(out, " (default %ld", *o->out.lng);
        break;
    case CMD_OPT_REAL: fprintf(out, " (default %g)", *o->out.real); return;
    case CMD_OPT_FLAG:
    case CMD_OPT_LIST: return;
    }
    opt__range(o, out);
    fputc(')', out);
}

static int opt__label(const cmd_opt *o, FILE *out)
{
    char label[128];
    int n = o->short_name ? snprintf(label, sizeof label, "  -%c, --%s", o->short_name, o->name)
                          : snprintf(label, sizeof label, "  --%s", o->name);
    if (opt__takes_arg(o) && n > 0 && (size_t)n < sizeof label)
        n += snprintf(label + n, sizeof label - (size_t)n, " %s", o->arg ? o->arg : "X");
    if (out)
        fputs(label, out);
    return n;
}

static void opt__help_row(const cmd_opt *o, int column, FILE *out)
{
    int col = opt__label(o, out);
    if (col >= column - 1) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", column - col, "");
    for (const char *h = o->help; *h; h++) {
        fputc(*h, out);
        if (*h == '\n')
            fprintf(out, "%*s", column, "");
    }
    opt__default(o, out);
    fputc('\n', out);
}

void cmd_opt_help(const cmd_spec *spec, FILE *out)
{
    fprintf(out, "usage: erd %s %s\n\n", spec->name, spec->usage);
    if (spec->about && *spec->about)
        fprintf(out, "%s\n\n", spec->about);
    int column = OPT__HELP_COLUMN_MIN;
    for (size_t i = 0; i < spec->n_opts; i++) {
        int w = opt__label(&spec->opts[i], NULL) + 2;
        if (w > column && w <= OPT__HELP_COLUMN_MAX)
            column = w;
    }
    for (size_t i = 0; i < spec->n_opts; i++)
        opt__help_row(&spec->opts[i], column, out);
    fprintf(out, "  -h, --help%*sthis help\n", column - 12, "");
}

static int opt__store(const cmd_spec *spec, const cmd_opt *o, char *arg)
{
    unsigned long long u;
    double d;
    int rc = ERD_OK;
    switch (o->type) {
    case CMD_OPT_FLAG: *o->out.flag = 1; break;
    case CMD_OPT_STR: *o->out.str = arg; break;
    case CMD_OPT_UINT:
    case CMD_OPT_ULL:
    case CMD_OPT_LONG:
        rc = cmd_parse_uint(spec->name, o->name, arg, opt__max(o), &u);
        if (rc == ERD_OK && (double)u < o->min) {
            fprintf(stderr, "erd %s: --%s wants at least %g, not \"%s\"\n", spec->name, o->name,
                    o->min, arg);
            rc = ERD_EINVAL;
        }
        if (rc == ERD_OK && o->type == CMD_OPT_UINT)
            *o->out.uns = (unsigned)u;
        else if (rc == ERD_OK && o->type == CMD_OPT_ULL)
            *o->out.ull = u;
        else if (rc == ERD_OK)
            *o->out.lng = (long)u;
        break;
    case CMD_OPT_REAL:
        rc = cmd_parse_real(spec->name, o->name, arg, &d);
        if (rc == ERD_OK && !(d >= o->min && d <= o->max)) {
            fprintf(stderr, "erd %s: --%s wants a number in [%g, %g], not \"%s\"\n", spec->name,
                    o->name, o->min, o->max, arg);
            rc = ERD_EINVAL;
        }
        if (rc == ERD_OK)
            *o->out.real = d;
        break;
    case CMD_OPT_LIST:
        rc = cmd_split_list(arg, o->out.list, o->cap, o->count);
        if (rc < 0)
            fprintf(stderr, "erd %s: --%s wants 1 to %zu comma-separated items in all\n", spec->name,
                    o->name, o->cap);
        break;
    }
    return rc;
}

/* getopt_long's tables from the spec: short names first, then every row's
 * long name with its index past OPT__LONG_BASE. */
static void opt__tables(const cmd_spec *spec, struct option *longs, char *shorts)
{
    size_t n = 0, s = 0;
    for (size_t i = 0; i < spec->n_opts; i++) {
        const cmd_opt *o = &spec->opts[i];
        longs[n++] = (struct option){o->name, opt__takes_arg(o) ? required_argument : no_argument,
                                     NULL, OPT__LONG_BASE + (int)i};
        if (o->short_name) {
            shorts[s++] = o->short_name;
            if (opt__takes_arg(o))
                shorts[s++] = ':';
        }
    }
    longs[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[n] = (struct option){0, 0, 0, 0};
    shorts[s++] = 'h';
    shorts[s] = '\0';
}

static const cmd_opt *opt__by_short(const cmd_spec *spec, int c)
{
    for (size_t i = 0; i < spec->n_opts; i++)
        if (spec->opts[i].short_name == c)
            return &spec->opts[i];
    return NULL;
}

static const cmd_opt *opt__by_long(const cmd_spec *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n_opts; i++)
        if (strlen(spec->opts[i].name) == len && !strncmp(spec->opts[i].name, name, len))
            return &spec->opts[i];
    return NULL;
}

/* What the table asks beyond each value: its required options given and
 * the operand count within bounds.  ERD_EINVAL, said on stderr, if not. */
static int opt__complete(const cmd_spec *spec, const bool *given, int argc, char **argv)
{
    for (const char *r = spec->required; r && *r;) {
        size_t len = strcspn(r, ",");
        const cmd_opt *o = opt__by_long(spec, r, len);
        if (!o || !given[o - spec->opts]) {
            fprintf(stderr, "erd %s: --%.*s is required\n", spec->name, (int)len, r);
            return ERD_EINVAL;
        }
        r += len + (r[len] == ',');
    }
    int n = argc - optind;
    if (spec->max_operands >= 0 && n > spec->max_operands) {
        fprintf(stderr, "erd %s: unexpected argument \"%s\"\n", spec->name,
                argv[optind + spec->max_operands]);
        return ERD_EINVAL;
    }
    if (n < spec->min_operands) {
        fprintf(stderr, "erd %s: missing arguments: erd %s %s\n", spec->name, spec->name,
                spec->usage);
        return ERD_EINVAL;
    }
    return ERD_OK;
}

int cmd_opt_parse(const cmd_spec *spec, int argc, char **argv, int *ret_exit)
{
    struct option longs[OPT__MAX + 2];
    char shorts[2 * OPT__MAX + 2];
    bool given[OPT__MAX] = {false};
    int c;
    if (spec->n_opts > OPT__MAX) { /* a table this long is a programming error */
        fprintf(stderr, "erd %s: too many options\n", spec->name);
        *ret_exit = CMD_EXIT_FAIL;
        return 0;
    }
    opt__tables(spec, longs, shorts);
    optind = 0; /* glibc: 0 starts afresh, forgetting a permutation it made for an earlier argv */
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const cmd_opt *o = c >= OPT__LONG_BASE ? &spec->opts[c - OPT__LONG_BASE]
                                               : opt__by_short(spec, c);
        if (c == 'h' && !o) {
            cmd_opt_help(spec, stdout);
            *ret_exit = CMD_EXIT_OK;
            return 0;
        }
        if (!o || opt__store(spec, o, optarg) < 0)
            goto usage;
        given[o - spec->opts] = true;
    }
    if (opt__complete(spec, given, argc, argv) < 0)
        goto usage;
    return 1;
usage:
    fprintf(stderr, "Try 'erd %s --help'.\n", spec->name);
    *ret_exit = CMD_EXIT_USAGE;
    return 0;
}

int cmd_split_list(char *list, const char **items, size_t cap, size_t *n)
{
    size_t k = *n;
    for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
        if (k == cap)
            return ERD_ETOOLONG;
        items[k++] = s;
    }
    if (k == *n)
        return ERD_EEMPTY;
    *n = k;
    return ERD_OK;
}
