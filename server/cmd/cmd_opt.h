/* One option table per command: each row names an option, its type, its
 * bounds, where its value goes and its help text.  The same table drives
 * getopt parsing, validation (one number parser, cmd_parse_uint /
 * cmd_parse_real) and --help, whose defaults are printed from the variables
 * themselves, so a default in the help can never be stale. */
#ifndef CMD_OPT_H
#define CMD_OPT_H

#include <stddef.h>
#include <stdio.h>

typedef enum cmd_opt_type {
    CMD_OPT_FLAG, /* no argument: *flag = 1 */
    CMD_OPT_STR,  /* *str = the argument */
    CMD_OPT_UINT, /* unsigned in [min, max] */
    CMD_OPT_ULL,  /* unsigned long long in [min, max] */
    CMD_OPT_LONG, /* long in [min, max] */
    CMD_OPT_REAL, /* finite double in [min, max] */
    CMD_OPT_LIST, /* comma-separated, repeatable: at most cap items in all */
} cmd_opt_type;

/* Print no default for this option (a file, or a default said in the text). */
#define CMD_OPT_NO_DEFAULT 1u

typedef struct cmd_opt {
    const char *name; /* the long name, without "--" */
    char short_name;  /* 0: none */
    cmd_opt_type type;
    const char *arg; /* the argument's name in --help */
    const char *help; /* lines after the first are indented under it */
    unsigned flags;
    double min, max;
    union {
        int *flag;
        const char **str;
        unsigned *uns;
        unsigned long long *ull;
        long *lng;
        double *real;
        const char **list;
    } out;
    const char *cfg_key; /* a flag over this configuration key: its default */
    size_t cap;     /* CMD_OPT_LIST: room in out.list */
    size_t *count;  /* CMD_OPT_LIST: how many items it holds */
} cmd_opt;

/* Typed constructors: the compiler checks each destination's type. */
#define CMD_FLAG(n, s, p, h) {.name = (n), .short_name = (s), .type = CMD_OPT_FLAG, \
                              .help = (h), .flags = CMD_OPT_NO_DEFAULT, .out.flag = (p)}
#define CMD_STR(n, s, a, p, h) {.name = (n), .short_name = (s), .type = CMD_OPT_STR, \
                                .arg = (a), .help = (h), .flags = CMD_OPT_NO_DEFAULT,  \
                                .out.str = (p)}
#define CMD_STR_DEF(n, s, a, p, h) {.name = (n), .short_name = (s), .type = CMD_OPT_STR, .arg = (a), .help = (h), \
                                 .out.str = (p)}
/* A string flag that overrides configuration key k: unset (NULL) unless
 * given, its help default the configuration table's. */
#define CMD_CFG(n, s, a, p, k, h) {.name = (n), .short_name = (s), .type = CMD_OPT_STR, \
                                   .arg = (a), .help = (h), .cfg_key = (k), .out.str = (p)}
#define CMD_UINT(n, s, a, p, lo, hi, h) {.name = (n), .short_name = (s), .type = CMD_OPT_UINT, .arg = (a), \
                                      .help = (h), .min = (lo), .max = (hi), .out.uns = (p)}
#define CMD_ULL(n, s, a, p, lo, hi, h) {.name = (n), .short_name = (s), .type = CMD_OPT_ULL, .arg = (a), \
                                     .help = (h), .min = (lo), .max = (hi), .out.ull = (p)}
#define CMD_LONG(n, s, a, p, lo, hi, h) {.name = (n), .short_name = (s), .type = CMD_OPT_LONG, .arg = (a), \
                                      .help = (h), .min = (lo), .max = (hi), .out.lng = (p)}
#define CMD_REAL(n, s, a, p, lo, hi, h) {.name = (n), .short_name = (s), .type = CMD_OPT_REAL, .arg = (a), \
                                      .help = (h), .min = (lo), .max = (hi), .out.real = (p)}
/* A number that overrides configuration key k: left as it was (a value
 * below lo, meaning "unset") unless given; its help default the table's. */
#define CMD_UINT_CFG(n, s, a, p, lo, hi, k, h) {.name = (n), .short_name = (s), .type = CMD_OPT_UINT, \
                                             .arg = (a), .help = (h), .min = (lo), .max = (hi),      \
                                             .cfg_key = (k), .out.uns = (p)}
#define CMD_REAL_CFG(n, s, a, p, lo, hi, k, h) {.name = (n), .short_name = (s), .type = CMD_OPT_REAL, \
                                             .arg = (a), .help = (h), .min = (lo), .max = (hi),      \
                                             .cfg_key = (k), .out.real = (p)}
/* A numeric constant as text, for help strings built at compile time. */
#define CMD_STRINGIFY_(x) #x
#define CMD_STRINGIFY(x) CMD_STRINGIFY_(x)

typedef struct cmd_spec {
    const char *name;  /* "train": erd train */
    const char *usage; /* after "usage: erd NAME " */
    const char *about; /* paragraph(s) between usage and the options */
    const cmd_opt *opts;
    size_t n_opts;
    const char *required; /* comma-separated long names the command cannot run without */
    int min_operands, max_operands; /* arguments after the options; max -1: any number */
} cmd_spec;

#define CMD_SPEC_FULL(nm, us, ab, table, req, lo, hi)                                \
    {.name = (nm), .usage = (us), .about = (ab), .opts = (table),                   \
     .n_opts = sizeof(table) / sizeof(table)[0], .required = (req), .min_operands = (lo), \
     .max_operands = (hi)}
/* No operands, no option required. */
#define CMD_SPEC(nm, us, ab, table) CMD_SPEC_FULL(nm, us, ab, table, NULL, 0, 0)

/* Parses argv by spec into the rows' destinations; -h/--help prints the help
 * (with each destination's value at that moment as its default).  Returns 1
 * when the command should run (optind is then the first operand), 0 when it
 * should exit with *ret_exit (help printed: CMD_EXIT_OK; a bad option or
 * value, a required option missing or too few or many operands, said on
 * stderr: CMD_EXIT_USAGE). */
int cmd_opt_parse(const cmd_spec *spec, int argc, char **argv, int *ret_exit);

/* The help text of spec, as --help prints it. */
void cmd_opt_help(const cmd_spec *spec, FILE *out);

#define CMD_LIST(n, s, a, items, n_items, h) {.name = (n), .short_name = (s), .type = CMD_OPT_LIST, .arg = (a), \
                                     .help = (h), .flags = CMD_OPT_NO_DEFAULT,            \
                                     .out.list = (items),                                 \
                                     .cap = sizeof(items) / sizeof(items)[0],             \
                                     .count = (n_items)}

/* Appends the items of a comma-separated list, split in place, to items,
 * which holds *n of at most cap: a repeated option adds to the list.
 * ERD_ETOOLONG past cap, ERD_EEMPTY for a list of none; *n grows only on
 * success. */
int cmd_split_list(char *list, const char **items, size_t cap, size_t *n);

#endif
