#include "server/cmd/cmd_cli.h"
#include "proto/erd_clock.h"
#include "server/cmd/cmd_opt.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <unistd.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "proto/erd_hash.h"
#include "index/vix_build.h"
#include "index/vix_index.h"
#include "index/vix_resolve.h"
#include "server/http/srv_explain.h"
#include "server/http/srv_request.h"
#include "index/vix_snapshot.h"
#include "index/vix_store.h"
#include "phonetics/pho_g2p.h"
#include "phonetics/pho_encoder.h"
#include "server/http/srv_hint.h"
#include "server/http/srv_http.h"

int cmd_parse_uint(const char *cmd, const char *opt, const char *s, unsigned long long max,
                   unsigned long long *ret)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "erd %s: --%s wants a whole number up to %llu, not \"%s\"\n", cmd, opt,
                max, s);
        return ERD_EINVAL;
    }
    *ret = v;
    return 0;
}

int cmd_parse_real(const char *cmd, const char *opt, const char *s, double *ret)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "erd %s: --%s wants a number, not \"%s\"\n", cmd, opt, s);
        return ERD_EINVAL;
    }
    *ret = v;
    return 0;
}

int cmd_exit_code(int err)
{
    switch (err) {
    case ERD_OK:
        return CMD_EXIT_OK;
    case ERD_EINVAL:
        return CMD_EXIT_USAGE;
    case ERD_EPARSE:
    case ERD_EJSON:
    case ERD_EUTF8:
    case ERD_ETOOLONG:
    case ERD_EEMPTY:
        return CMD_EXIT_DATAERR;
    case ERD_ECONFIG:
        return CMD_EXIT_CONFIG;
    default:
        return CMD_EXIT_FAIL;
    }
}

#ifndef ERD_DATADIR
#define ERD_DATADIR "/usr/local/share/erd"
#endif

/* Where erd looks for a relative data file after the working directory:
 * the folder above the binary's (a build folder inside the source tree,
 * or /opt/erd/bin beside /opt/erd/phonetics), then the data directory
 * compiled in (meson install puts the models under PREFIX/share/erd).
 * Writes the first root holding rel to buf; false when none does. */
static bool cmd__data_root(const char *rel, size_t rel_len, char *buf, size_t cap)
{
    char dir[1024], file[2048];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    char *slash = n > 0 ? (dir[n] = '\0', strrchr(dir, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        int m = snprintf(file, sizeof file, "%s/../%.*s", dir, (int)rel_len, rel);
        if (m > 0 && (size_t)m < sizeof file && access(file, F_OK) == 0)
            return snprintf(buf, cap, "%s/..", dir) < (int)cap;
    }
    int m = snprintf(file, sizeof file, "%s/%.*s", ERD_DATADIR, (int)rel_len, rel);
    if (m > 0 && (size_t)m < sizeof file && access(file, F_OK) == 0)
        return snprintf(buf, cap, "%s", ERD_DATADIR) < (int)cap;
    return false;
}

const char *cmd_rerank_spec(const char *spec, char *buf, size_t cap)
{
    char dir[1024], root[1100];
    size_t flen = strcspn(spec, ",");
    if (!strcmp(spec, "off") || spec[0] == '/' || flen == 0 || flen >= sizeof dir)
        return spec;
    memcpy(dir, spec, flen);
    dir[flen] = '\0';
    if (access(dir, F_OK) == 0 || !cmd__data_root(spec, flen, root, sizeof root))
        return spec;
    int m = snprintf(buf, cap, "%s/%s", root, spec);
    return m < 0 || (size_t)m >= cap ? spec : buf;
}

int cmd_model_dir(const char *setting)
{
    static const char rel[] = "phonetics/models";
    char root[1100], models[1200];
    if (setting && strcmp(setting, "auto") != 0)
        return pho_encoder_set_model_dir(setting);
    if (!cmd__data_root(rel, sizeof rel - 1, root, sizeof root))
        return pho_encoder_set_model_dir(NULL);
    int m = snprintf(models, sizeof models, "%s/%s", root, rel);
    if (m < 0 || (size_t)m >= sizeof models)
        return pho_encoder_set_model_dir(NULL);
    return pho_encoder_set_model_dir(models);
}

int cmd_fail(const char *cmd, const erd_diag *diag, int err)
{
    fprintf(stderr, "erd %s: %s\n", cmd, erd_diag_message(diag, err));
    return cmd_exit_code(err);
}

/* A calibration that does not apply leaves scores uncalibrated rather
 * than stopping the service; say so once at start, naming each catalog it
 * concerns (only the one asked for when only is not NULL) and the whole
 * encoder id, which the resolver's fixed-size message would cut. */
static void cmd__calibration_note(const char *cmd, const vix_resolver *resolver, const char *only,
                                  const char *calibration)
{
    for (size_t i = 0; i < vix_resolver_catalog_count(resolver); i++) {
        const char *name = vix_resolver_catalog_name(resolver, i);
        if (!name || (only && strcmp(name, only) != 0))
            continue;
        erd_diag d = {0};
        int rc = vix_resolver_calibrated(resolver, i, &d);
        if (rc != ERD_EMISMATCH)
            continue;
        const char *enc = vix_resolver_catalog_encoder(resolver, i);
        if (strstr(d.msg, "built with encoder"))
            fprintf(stderr,
                    "erd %s: warning: catalog \"%s\" was built with encoder %s, but the "
                    "calibration %s was fitted on another: its scores are uncalibrated "
                    "(rebuild it with the default encoder, or set calibration off)\n",
                    cmd, name, enc ? enc : "?", calibration);
        else
            fprintf(stderr, "erd %s: warning: catalog \"%s\": %s\n", cmd, name,
                    erd_diag_message(&d, rc));
    }
}

int cmd_startup(const char *path, const char *const *overrides, int secrets, cfg_config *ret,
                erd_diag *diag)
{
    cfg_config cfg;
    if (!path)
        path = getenv("ERD_CONFIG");
    int rc = secrets ? cfg_load(&cfg, path, overrides, diag)
                     : cfg_load_settings(&cfg, path, overrides, diag);
    if (rc == ERD_OK)
        rc = vix_simd_limit(cfg.simd, diag);
    if (rc == ERD_OK && (rc = cmd_model_dir(cfg.model_dir)) < 0)
        rc = erd_fail(diag, rc, "model_dir too long");
    if (rc == ERD_OK)
        *ret = cfg;
    return rc;
}

static int cmd__config(const char *cmd, const char *path, cfg_config *cfg)
{
    erd_diag diag = {0};
    int rc = cmd_startup(path, NULL, 0, cfg, &diag);
    return rc < 0 ? cmd_fail(cmd, &diag, rc) : CMD_EXIT_OK;
}

int cmd_open_queries(const char *cmd, const char *config, const char *queries, cfg_config *ret_cfg,
                     FILE **ret_in)
{
    erd_diag diag = {0};
    int rc = cmd_startup(config, NULL, 0, ret_cfg, &diag);
    if (rc < 0) {
        fprintf(stderr, "erd %s: %s\n", cmd, erd_diag_message(&diag, rc));
        return CMD_EXIT_CONFIG;
    }
    FILE *in = fopen(queries, "r");
    if (!in) {
        fprintf(stderr, "erd %s: %s: %s\n", cmd, queries, strerror(errno));
        return CMD_EXIT_NOINPUT;
    }
    *ret_in = in;
    return CMD_EXIT_OK;
}

int cmd_training_g2p(const char *voice, int second, pho_g2p **ret, erd_diag *diag)
{
    pho_g2p *g2p = NULL;
    int rc = pho_g2p_create(voice, 0, &g2p, diag);
    if (rc < 0)
        return rc;
    if (second && !pho_g2p_has_second(g2p)) {
        pho_g2p_destroy(g2p);
        return erd_fail(diag, ERD_EINVAL,
                        "--second-pronunciation needs a g2p_voice with +cmu (it is %s)", voice);
    }
    *ret = g2p;
    return ERD_OK;
}

int cmd_each_record(const char *path, cmd_record_fn *fn, void *user, cmd_record_stats *st,
                    erd_diag *diag)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long long lineno = 0;
    int rc = ERD_OK;

    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    while (rc == ERD_OK && (len = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        lineno++;
        if (line[len - 1] != '\n') {
            st->partial++;
            break;
        }
        st->checksum = erd_fnv1a64(st->checksum, line, (size_t)len);
        if (len == 1)
            continue;
        json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
        if (!rec) {
            rc = erd_fail(diag, ERD_EJSON, "%s:%llu: %s", path, lineno, jerr.text);
            break;
        }
        rc = fn(user, rec, diag);
        json_decref(rec);
        if (rc < 0) {
            char msg[sizeof diag->msg];
            snprintf(msg, sizeof msg, "%s", erd_diag_message(diag, rc));
            rc = erd_fail(diag, rc, "%s:%llu: %s", path, lineno, msg);
            break;
        }
        st->records++;
    }
    if (rc == ERD_OK && ferror(f))
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

int cmd_bad_usage(const char *cmd)
{
    fprintf(stderr, "Try 'erd %s --help'.\n", cmd);
    return CMD_EXIT_USAGE;
}

/* ---- import ---- */

static void cmd__import_progress(void *user, uint64_t lines, uint64_t bytes, uint64_t total)
{
    double *t0 = user;
    if (total)
        fprintf(stderr, "\rerd import: %llu records, %.0f%% (%.1f s)", (unsigned long long)lines,
                100.0 * (double)bytes / (double)total, erd_now_s() - *t0);
    else
        fprintf(stderr, "\rerd import: %llu records (%.1f s)", (unsigned long long)lines,
                erd_now_s() - *t0);
}

/* "," ";" "|" ... or "tab" / "\t" for tab-separated files. */
static int cmd__delimiter(const char *arg, char *ret)
{
    char c = !strcmp(arg, "tab") || !strcmp(arg, "\\t") ? '\t' : arg[0];
    if ((arg[0] && arg[1] && c != '\t') || !c || c == '"' || c == '\r' || c == '\n') {
        fprintf(stderr, "erd import: --delimiter takes one character (not a quote), or tab\n");
        return ERD_EINVAL;
    }
    *ret = c;
    return ERD_OK;
}

static int cmd__any_catalog(void *user, const vix_catalog_info *info)
{
    (void)user;
    (void)info;
    return 1;
}

/* Removes a database file this import created, with the journal files
 * SQLite keeps beside it, unless it holds a catalog by now (another
 * process's first import may have landed in it meanwhile). */
static void cmd__remove_new_db(const char *db)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    vix_store *store = NULL;
    if (vix_store_open(db, 0, &store, NULL) == ERD_OK) {
        int any = vix_store_catalog_foreach(store, 0, cmd__any_catalog, NULL, NULL);
        vix_store_close(store);
        if (any != 0)
            return;
    }
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char path[2048];
        if (snprintf(path, sizeof path, "%s%s", db, suffix[i]) < (int)sizeof path)
            unlink(path);
    }
}

/* --format's words, the import's formats in the same order */
static int cmd__import_format(const char *arg, enum vix_import_format *ret)
{
    static const struct {
        const char *name;
        enum vix_import_format format;
    } formats[] = {{"auto", VIX_FORMAT_AUTO}, {"jsonl", VIX_FORMAT_JSONL},
                   {"json", VIX_FORMAT_JSONL}, {"csv", VIX_FORMAT_CSV}};
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (!strcmp(arg, formats[i].name)) {
            *ret = formats[i].format;
            return ERD_OK;
        }
    fprintf(stderr, "erd import: --format must be jsonl, csv or auto\n");
    return ERD_EINVAL;
}

int cmd_import(int argc, char **argv)
{
    const char *db = NULL, *catalog = NULL, *config = NULL, *format = "auto", *delimiter = ",";
    vix_import_opts io = {0}; /* its NULL columns: the import's defaults, aliases optional */
    int quiet = 0;
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &db, "db", "catalog store (SQLite; created when absent)"),
        CMD_STR("catalog", 'c', "NAME", &catalog, "catalog to import into ([a-z0-9_.-], up to 64)"),
        CMD_STR_DEF("format", 'f', "FMT", &format, "jsonl, csv or auto (by the first byte)"),
        CMD_STR("id-column", 0, "COL", &io.csv_id_column, "CSV column holding ids (default id)"),
        CMD_STR("name-column", 0, "COL", &io.csv_name_column,
                "CSV column holding names (default name)"),
        CMD_STR("aliases-column", 0, "COL", &io.csv_aliases_column,
                "CSV column of '|'-separated aliases (default\n"
                "aliases, when the header has one)"),
        CMD_STR_DEF("delimiter", 0, "C", &delimiter, "CSV field separator: one character, or tab"),
        CMD_STR("config", 0, "FILE", &config, "configuration file (for db)"),
        CMD_FLAG("quiet", 'q', &quiet, "no progress on stderr"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("import", "--db FILE --catalog NAME [OPTIONS] ENTITIES",
        "Loads entities into a catalog (created when absent) in one transaction:\n"
        "a bad record aborts the import, names its line and changes nothing.\n"
        "An id imported again replaces the earlier entity.\n\n"
        "ENTITIES is a file or - for standard input, either JSON lines\n"
        "  {\"id\": \"...\", \"name\": \"...\", \"aliases\": [...], \"attrs\": {...}}\n"
        "or CSV with a header row naming the columns.", opts, "catalog", 1, 1);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    if (cmd__import_format(format, &io.format) < 0 || cmd__delimiter(delimiter, &io.csv_delimiter) < 0)
        return cmd_bad_usage("import");
    cfg_config cfg;
    int rc = cmd__config("import", config, &cfg);
    if (rc)
        return rc;
    if (!db)
        db = cfg.db;
    const char *path = argv[optind];
    FILE *in = stdin;
    if (strcmp(path, "-") != 0) {
        in = fopen(path, "rb");
        if (!in) {
            fprintf(stderr, "erd import: %s: %s\n", path, strerror(errno));
            return CMD_EXIT_NOINPUT;
        }
        struct stat st;
        if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
            io.total_bytes = (uint64_t)st.st_size;
    }
    double t0 = erd_now_s();
    /* Progress only where a person may be waiting: large inputs, on a tty. */
    if (!quiet && (io.total_bytes == 0 || io.total_bytes > (1u << 20)) && isatty(STDERR_FILENO)) {
        io.progress = cmd__import_progress;
        io.progress_user = &t0;
    }

    erd_diag diag = {0};
    vix_store *store = NULL;
    vix_import_result res;
    bool created = access(db, F_OK) != 0;
    rc = vix_store_open(db, 0, &store, &diag);
    if (rc == ERD_OK)
        rc = vix_store_import(store, catalog, in, &io, &res, &diag);
    vix_store_close(store);
    if (rc < 0 && created)
        cmd__remove_new_db(db); /* a failed first import leaves no database behind */
    if (in != stdin)
        fclose(in);
    if (io.progress)
        fputc('\n', stderr);
    if (rc < 0) {
        if (rc == ERD_EPARSE)
            fprintf(stderr, "erd import: %s: %s (nothing imported)\n", path,
                    erd_diag_message(&diag, rc));
        else
            fprintf(stderr, "erd import: %s\n", erd_diag_message(&diag, rc));
        return cmd_exit_code(rc);
    }
    if (!quiet)
        fprintf(stderr,
                "erd import: %llu records into catalog \"%s\" (%llu new, %llu updated) in %.2f s\n",
                (unsigned long long)res.lines, catalog, (unsigned long long)res.inserted,
                (unsigned long long)res.updated, erd_now_s() - t0);
    return CMD_EXIT_OK;
}

/* ---- build ---- */

/* Progress of a build: on a terminal one line kept up to date, otherwise
 * (a log) a line every 10 s; each with the stage's estimated time left,
 * from its rate so far. */
typedef struct cmd__progress {
    double t0, stage_t0, last;
    const char *stage;
    bool tty;
} cmd__progress;

static void cmd__build_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    cmd__progress *p = user;
    double now = erd_now_s();
    if (!p->stage || strcmp(p->stage, stage) != 0) {
        p->stage = stage; /* the build's own string constants */
        p->stage_t0 = now;
    }
    if (!p->tty && now - p->last < 10 && done < total)
        return;
    p->last = now;
    char eta[48] = "";
    if (done > 0 && done < total)
        snprintf(eta, sizeof eta, ", about %.0f s left in this stage",
                 (now - p->stage_t0) * (double)(total - done) / (double)done);
    fprintf(stderr, "%serd build: %s %llu/%llu (%.1f s%s)%s", p->tty ? "\r" : "", stage,
            (unsigned long long)done, (unsigned long long)total, now - p->t0, eta,
            p->tty ? "   " : "\n");
}

int cmd_build(int argc, char **argv)
{
    const char *db = NULL, *catalog = NULL, *config = NULL, *encoder = NULL, *factory = NULL;
    const char *voice = NULL;
    int quiet = 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned g2p_procs = online > 1 ? (unsigned)online : 1;
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &db, "db", "catalog store"),
        CMD_STR("catalog", 'c', "NAME", &catalog, "catalog to build"),
        CMD_CFG("encoder", 'e', "SPEC", &encoder, "encoder", "phonetic encoder"),
        CMD_CFG("factory", 0, "STRING", &factory, "faiss_factory",
                "FAISS index_factory string, erd's own\n"
                "erdIVF<lists>,SQ<8|4|2>, or auto: Flat up to\n"
                "index_flat_max vectors, erdIVF<lists>,SQ4 above"),
        CMD_CFG("g2p-voice", 0, "VOICE", &voice, "g2p_voice",
                "espeak-ng voice the names are spoken in, recorded\n"
                "with the index: queries of the catalog use it too.\n"
                "Needed to change the voice of a built catalog"),
        CMD_UINT("g2p-procs", 0, "N", &g2p_procs, 1, 64,
                 "processes making the missing phonemes of a catalog\n"
                 "of 100,000 entities or more (espeak-ng runs on one\n"
                 "core per process; default: one per core)"),
        CMD_STR("config", 0, "FILE", &config, "configuration file"),
        CMD_FLAG("quiet", 'q', &quiet, "no progress on stderr"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("build", "--db FILE --catalog NAME [OPTIONS]",
        "Turns every name and alias of the catalog (and the ways people shorten\n"
        "titles: before/after a colon, without a leading article) into phonemes\n"
        "with espeak-ng, encodes them and writes the FAISS index beside the\n"
        "database (DB.CATALOG.GENERATION-STAMP.faiss, a new file per build; the one it\n"
        "replaces is deleted once the database names the new one), and beside it\n"
        "the entity table (the same name + .ents) that erd serve maps instead of\n"
        "reading every name from the database.  Writers go on\n"
        "meanwhile; a running erd serve swaps the new index in within its\n"
        "sync_interval_ms and serves what was written since from its delta.", opts, "catalog", 0, 0);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    cfg_config cfg;
    int rc = cmd__config("build", config, &cfg);
    if (rc)
        return rc;
    if (access(db ? db : cfg.db, F_OK) != 0) {
        fprintf(stderr, "erd build: %s: no such database (run erd import first)\n",
                db ? db : cfg.db);
        return CMD_EXIT_NOINPUT;
    }
    cmd__progress progress = {.t0 = erd_now_s(), .tty = isatty(STDERR_FILENO)};
    vix_build_opts bo = {
        .db_path = db ? db : cfg.db,
        .catalog = catalog,
        .encoder_spec = encoder ? encoder : cfg.encoder,
        .factory = factory ? factory : cfg.faiss_factory,
        .flat_max = cfg.index_flat_max,
        .nprobe = cfg.ivf_nprobe,
        .ef_search = cfg.hnsw_ef_search,
        .g2p_voice = voice ? voice : cfg.g2p_voice,
        .g2p_voice_change = voice != NULL,
        .g2p_procs = g2p_procs,
        .progress = quiet ? NULL : cmd__build_progress,
        .progress_user = &progress,
    };
    vix_build_result res;
    erd_diag diag = {0};
    rc = vix_build(&bo, &res, &diag);
    if (bo.progress && progress.tty)
        fputc('\n', stderr);
    if (rc < 0)
        return cmd_fail("build", &diag, rc);
    char procs_note[64] = "";
    if (res.g2p_procs)
        snprintf(procs_note, sizeof procs_note, " after %zu worker processes", res.g2p_procs);
    if (!quiet)
        fprintf(stderr,
                "erd build: catalog \"%s\": %llu entities, %llu vectors (%s, %s) in %.2f s "
                "[phonemes %.2f s, %llu espeak-ng calls%s; encode %.2f s; index %.2f s; entity "
                "table %.2f s] -> %s "
                "(%.1f MB, %.0f bytes per entity)\n",
                catalog, (unsigned long long)res.entities, (unsigned long long)res.vectors,
                res.encoder_id, res.factory, res.seconds, res.phoneme_seconds,
                (unsigned long long)res.g2p_calls, procs_note, res.encode_seconds,
                res.index_seconds, res.table_seconds, res.index_path, (double)res.index_bytes / 1e6,
                res.entities ? (double)res.index_bytes / (double)res.entities : 0.0);
    return CMD_EXIT_OK;
}

/* ---- serve ---- */

/* A read replica's snapshot: unpacked into SNAP.d/current, and when the
 * file is replaced, into SNAP.d/next, which then takes current's place
 * while resolves go on against what is loaded. */
typedef struct cmd__replica {
    const char *snapshot;
    char dir[1100], current[1200], next[1200], old[1200], db[1300];
    struct stat seen;
    vix_resolver *resolver;
} cmd__replica;

/* Removes one of the replica's folders: an unpacked snapshot, files only
 * (the database with its journal files and the index files).  Without a
 * shell, so any character in the path is fine. */
static void cmd__rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            fprintf(stderr, "erd: warning: could not remove %s: %s\n", dir, strerror(errno));
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        char path[2048];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    }
    closedir(d);
    if (rmdir(dir) != 0)
        fprintf(stderr, "erd: warning: could not remove %s: %s\n", dir, strerror(errno));
}

static bool cmd__same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int cmd__replica_init(cmd__replica *rp, const char *snapshot, erd_diag *diag)
{
    rp->snapshot = snapshot;
    if (snprintf(rp->dir, sizeof rp->dir, "%s.d", snapshot) >= (int)sizeof rp->dir)
        return erd_fail(diag, ERD_ETOOLONG, "snapshot path too long");
    snprintf(rp->current, sizeof rp->current, "%s/current", rp->dir);
    snprintf(rp->next, sizeof rp->next, "%s/next", rp->dir);
    snprintf(rp->old, sizeof rp->old, "%s/old", rp->dir);
    if (mkdir(rp->dir, 0755) != 0 && errno != EEXIST)
        return erd_fail(diag, ERD_EIO, "creating %s: %s", rp->dir, strerror(errno));
    if (stat(snapshot, &rp->seen) != 0)
        return erd_fail(diag, ERD_EIO, "snapshot %s: %s", snapshot, strerror(errno));
    cmd__rm_dir(rp->current);
    vix_snapshot_info info;
    int rc = vix_snapshot_unpack(snapshot, rp->current, rp->db, sizeof rp->db, &info, diag);
    if (rc == ERD_OK)
        fprintf(stderr, "erd: replica of %s (%llu files, fnv1a64 %016llx)\n", snapshot,
                (unsigned long long)info.files, (unsigned long long)info.checksum);
    return rc;
}

/* Runs every sync interval: a replaced snapshot file is checked, unpacked
 * and swapped in; a damaged one is logged and the current one kept. */
static void cmd__replica_tick(void *user)
{
    cmd__replica *rp = user;
    struct stat sb;
    char db[1300];
    vix_snapshot_info info;
    erd_diag d = {0};
    if (stat(rp->snapshot, &sb) != 0 || cmd__same_file(&sb, &rp->seen))
        return;
    rp->seen = sb;
    cmd__rm_dir(rp->next);
    int rc = vix_snapshot_unpack(rp->snapshot, rp->next, db, sizeof db, &info, &d);
    if (rc == ERD_OK) {
        cmd__rm_dir(rp->old);
        if (rename(rp->current, rp->old) != 0 || rename(rp->next, rp->current) != 0)
            rc = erd_fail(&d, ERD_EIO, "swapping %s in: %s", rp->next, strerror(errno));
    }
    if (rc == ERD_OK)
        rc = vix_resolver_retarget(rp->resolver, rp->db, &d);
    if (rc < 0) {
        fprintf(stderr, "erd: warning: new snapshot %s not served: %s\n", rp->snapshot,
                erd_diag_message(&d, rc));
        return;
    }
    cmd__rm_dir(rp->old);
    fprintf(stderr, "erd: serving the new snapshot %s (%llu files, fnv1a64 %016llx)\n",
            rp->snapshot, (unsigned long long)info.files, (unsigned long long)info.checksum);
}

/* Writes made by others (erd import, erd entity, another server) and
 * indexes built by erd build are picked up here; the server's own writes
 * sync before they are acknowledged. */
static void cmd__sync_tick(void *user)
{
    erd_diag d = {0};
    int rc = vix_resolver_sync(user, NULL, &d);
    if (rc < 0)
        fprintf(stderr, "erd: warning: sync: %s\n", erd_diag_message(&d, rc));
}

/* What start-up found: catalogs whose index lags the database are served
 * index + delta (and rebuilt in the background past delta_max). */
static void cmd__serving_note(vix_resolver *resolver)
{
    for (size_t i = 0; i < vix_resolver_catalog_count(resolver); i++) {
        const char *name = vix_resolver_catalog_name(resolver, i);
        vix_serving_status st;
        if (!name)
            continue;
        vix_resolver_status(resolver, name, &st);
        if (st.served_generation != st.index_generation)
            fprintf(stderr,
                    "erd: catalog \"%s\": index at generation %lld, database at %lld: serving "
                    "%zu changed entities from the delta\n",
                    name, (long long)st.index_generation, (long long)st.served_generation,
                    st.delta_entities + st.masked);
    }
}

/* erd serve's resolver over cfg's database, its start-up reported on
 * stderr.  A replica (read-only) never builds: the primary publishes the
 * next snapshot. */
static int cmd__serve_open(const cfg_config *cfg, bool replica, vix_resolver **ret,
                           erd_diag *diag)
{
    vix_resolver *resolver = NULL;
    vix_resolver_opts ro = {
        .db_path = cfg->db,
        .g2p_voice = cfg->g2p_voice,
        .g2p_cache_entries = cfg->g2p_cache_entries,
        .candidates = (size_t)cfg->candidates,
        .build_encoder = cfg->encoder,
        .build_factory = cfg->faiss_factory,
        .ivf_search = cfg->ivf_search,
        .delta_max = replica ? 0 : cfg->delta_max,
        .delta_max_bytes = cfg->delta_max_bytes,
    };
    char rerank[2048], calibration[2048];
    ro.rerank = cmd_rerank_spec(cfg->rerank, rerank, sizeof rerank);
    ro.calibration = cmd_rerank_spec(cfg->calibration, calibration, sizeof calibration);
    /* Indexes, entity sets and deltas are large arrays that a rebuild
     * replaces whole.  A fixed mmap threshold keeps them out of the heap
     * (glibc otherwise raises it after the first such free), so freeing a
     * replaced one returns its memory to the system at once.  Fixing it
     * also fixes the trim threshold at 128 KiB, and then every resolve's
     * scratch freed at the top of a thread's arena is handed back with
     * madvise, whose TLB shootdown stalls the other core: a fifth of the
     * server's CPU at 2 connections.  Rebuilds trim explicitly. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    double t0 = erd_now_s();
    int rc = vix_resolver_open(&ro, &resolver, diag);
    if (rc < 0)
        return rc;
    size_t n = vix_resolver_catalog_count(resolver);
    fprintf(stderr, "erd: loaded %zu catalog%s from %s in %.2f s", n, n == 1 ? "" : "s", cfg->db,
            erd_now_s() - t0);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i ? ", " : ": ", vix_resolver_catalog_name(resolver, i));
    fputc('\n', stderr);
    cmd__calibration_note("serve", resolver, NULL, ro.calibration);
    if (n == 0)
        fprintf(stderr, "erd: warning: no catalog has an index yet; run erd build\n");
    cmd__serving_note(resolver);
    char bad[72];
    erd_diag bd;
    for (size_t i = 0; vix_resolver_unavailable(resolver, i, bad, sizeof bad, &bd) == ERD_OK; i++)
        fprintf(stderr,
                "erd: warning: catalog \"%s\" not served, its index did not load: %s (rebuild it: "
                "POST /v1/catalogs/%s/rebuild, or erd build)\n",
                bad, erd_diag_message(&bd, bd.code), bad);
    *ret = resolver;
    return ERD_OK;
}

int cmd_serve(int argc, char **argv)
{
    const char *db = NULL, *listen = NULL, *threads = NULL, *config = NULL, *snapshot = NULL;
    static cmd__replica replica; /* the tick's, for the life of the server */
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &db, "db", "catalog store"),
        CMD_CFG("listen", 'l', "HOST:PORT", &listen, "listen", "address"),
        CMD_CFG("threads", 't', "N", &threads, "threads", "worker threads (0: one per core)"),
        CMD_STR("snapshot", 0, "FILE", &snapshot,
                "serve a snapshot (erd snapshot) read-only, as a replica:\n"
                "it is unpacked beside it (FILE.d/) and swapped live\n"
                "when the file is replaced; admin writes answer 403"),
        CMD_STR("config", 0, "FILE", &config, "configuration file (see config/erd.conf)"),
    };
    const cmd_spec spec = CMD_SPEC("serve", "--db FILE [--listen HOST:PORT] [OPTIONS]\n"
        "       erd serve --snapshot SNAPSHOT [--listen HOST:PORT] [OPTIONS]",
        "Serves every built catalog of the database over HTTP:\n"
        "  POST /v1/resolve  {\"catalog\":..., \"hypotheses\":[{\"text\",\"score\"}], \"k\":5}\n"
        "  GET  /healthz   liveness\n"
        "  GET  /readyz    readiness (a catalog index is loaded)\n"
        "  GET  /metrics   Prometheus metrics (needs metrics_token or admin_token)\n"
        "  /v1/catalogs... the admin API (needs admin_token): catalogs, entity\n"
        "                  upserts and deletes served within a second, bulk JSON\n"
        "                  lines, background rebuilds swapped in atomically\n"
        "SIGHUP reloads the configuration (limits, tokens, log_requests); SIGINT or\n"
        "SIGTERM stop after in-flight requests finish.  An invalid configuration\n"
        "exits 78 naming the key (and line).", opts);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    if (snapshot && db) {
        fprintf(stderr, "erd serve: --db and --snapshot exclude each other\n");
        return cmd_bad_usage("serve");
    }
    if (snapshot) {
        erd_diag sd = {0};
        int src = cmd__replica_init(&replica, snapshot, &sd);
        if (src < 0)
            return cmd_fail("serve", &sd, src);
        db = replica.db;
    }
    /* Flags are kept as overrides so a reload (SIGHUP) re-reads the file
     * and environment under them, exactly as start-up did. */
    const char *overrides[7];
    size_t no = 0;
    if (db) {
        overrides[no++] = "db";
        overrides[no++] = db;
    }
    if (listen) {
        overrides[no++] = "listen";
        overrides[no++] = listen;
    }
    if (threads) {
        overrides[no++] = "threads";
        overrides[no++] = threads;
    }
    overrides[no] = NULL;
    if (!config)
        config = getenv("ERD_CONFIG");
    srv_http_opts ho = {.config_path = config && *config ? config : NULL, .overrides = overrides};
    cfg_config cfg;
    erd_diag cdiag = {0};
    int rc = cmd_startup(ho.config_path, overrides, 1, &cfg, &cdiag);
    if (rc < 0)
        return cmd_fail("serve", &cdiag, rc);
    if (access(cfg.db, F_OK) != 0) {
        fprintf(stderr, "erd serve: %s: no such database (run erd import and erd build first)\n",
                cfg.db);
        return CMD_EXIT_NOINPUT;
    }
    /* before the catalogs load, which takes a while on a large database */
    rc = srv_http_check_listen(cfg.listen, &cdiag);
    if (rc < 0)
        return cmd_fail("serve", &cdiag, rc);

    erd_diag diag = {0};
    vix_resolver *resolver = NULL;
    rc = cmd__serve_open(&cfg, snapshot != NULL, &resolver, &diag);
    if (rc < 0)
        return cmd_fail("serve", &diag, rc);

    ho.tick = cmd__sync_tick;
    ho.tick_user = resolver;
    if (snapshot) {
        replica.resolver = resolver;
        ho.tick = cmd__replica_tick;
        ho.tick_user = &replica;
        ho.read_only = true;
    }
    rc = srv_http_run(&cfg, &ho, resolver, &diag);
    vix_resolver_close(resolver);
    if (rc < 0)
        return cmd_fail("serve", &diag, rc);
    return CMD_EXIT_OK;
}

/* ---- resolve ---- */

int cmd_resolve(int argc, char **argv)
{
    const char *db = NULL, *config = NULL;
    srv_resolve_req req = {.k = 0, .min_score = -1}; /* unset: from the configuration */
    unsigned k = 0;
    int json = 0, timing = 0, explain = 0;
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &db, "db", "catalog store"),
        CMD_STR("catalog", 'c', "NAME", &req.catalog, "catalog to search"),
        CMD_UINT_CFG("k", 'k', "N", &k, 1, 1000, "default_k", "results to print"),
        CMD_REAL_CFG("min-score", 0, "X", &req.min_score, 0, 1, "no_match_threshold",
                     "the top score \"match\" needs"),
        CMD_FLAG("explain", 0, &explain,
                 "per result: the name or alias each hypothesis matched,\n"
                 "both sides' phones, the alignment step by step with its\n"
                 "channel costs, every stage's score and the calibration\n"
                 "features (with --json: POST /v1/resolve's \"explain\")"),
        CMD_FLAG("json", 'j', &json, "print the same JSON as POST /v1/resolve"),
        CMD_FLAG("timing", 0, &timing, "print per-stage times on stderr"),
        CMD_STR("config", 0, "FILE", &config, "configuration file"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("resolve", "--db FILE --catalog NAME [-k N] [--json] [--explain] TEXT...",
        "Resolves one query; several TEXT arguments are an n-best list, best first.\n"
        "Prints the results and whether the top one is a match (its score reaches\n"
        "no_match_threshold, or --min-score).", opts, "catalog", 1, -1);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    req.k = k;
    req.explain = explain != 0;
    cfg_config cfg;
    int rc = cmd__config("resolve", config, &cfg);
    if (rc)
        return rc;
    if (!db)
        db = cfg.db;
    if (!req.k)
        req.k = (size_t)cfg.default_k;
    if (access(db, F_OK) != 0) {
        fprintf(stderr, "erd resolve: %s: no such database\n", db);
        return CMD_EXIT_NOINPUT;
    }
    req.n_hyps = (size_t)(argc - optind);
    vix_hypothesis *hyps = calloc(req.n_hyps, sizeof *hyps);
    vix_result *results = calloc(req.k, sizeof *results);
    vix_resolver *resolver = NULL;
    vix_view *view = NULL;
    srv_answer answer = {0};
    erd_diag diag = {0};
    if (!hyps || !results) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < req.n_hyps; i++)
        hyps[i] = (vix_hypothesis){.text = argv[optind + (int)i], .len = strlen(argv[optind + (int)i])};
    req.hyps = hyps;
    vix_resolver_opts ro = {.db_path = db, .g2p_voice = cfg.g2p_voice,
                            .g2p_cache_entries = 64, .candidates = (size_t)cfg.candidates,
                            .ivf_search = cfg.ivf_search};
    char rerank[2048], calibration[2048];
    ro.rerank = cmd_rerank_spec(cfg.rerank, rerank, sizeof rerank);
    ro.calibration = cmd_rerank_spec(cfg.calibration, calibration, sizeof calibration);
    rc = vix_resolver_open(&ro, &resolver, &diag);
    if (rc < 0)
        goto out;
    cmd__calibration_note("resolve", resolver, req.catalog, ro.calibration);
    vix_timing tm;
    view = vix_resolver_acquire(resolver);
    rc = srv_answer_resolve(resolver, view, &req, cfg.no_match_threshold, results, &tm, &answer,
                            &diag);
    rc = srv_hint_unbuilt(db, req.catalog, rc, &diag);
    if (rc < 0)
        goto out;
    if (json) {
        char *text = NULL;
        size_t len = 0;
        rc = srv_write_answer(&answer, &text, &len, &diag);
        if (rc < 0)
            goto out;
        printf("%s\n", text);
        free(text);
    } else {
        srv_explain_print(stdout, &answer);
    }
    if (timing)
        fprintf(stderr,
                "g2p %.3f ms, encode %.3f ms, search %.3f ms, aggregate %.3f ms, rerank %.3f ms\n",
                (double)tm.g2p_ns / 1e6, (double)tm.encode_ns / 1e6, (double)tm.search_ns / 1e6,
                (double)tm.aggregate_ns / 1e6, (double)tm.rerank_ns / 1e6);
out:
    srv_answer_clear(&answer);
    vix_view_release(view);
    vix_resolver_close(resolver);
    free(hyps);
    free(results);
    if (rc < 0)
        return cmd_fail("resolve", &diag, rc);
    return CMD_EXIT_OK;
}

/* ---- config ---- */

int cmd_config(int argc, char **argv)
{
    const char *config = NULL;
    int dump = 0;
    const cmd_opt opts[] = {
        CMD_STR("config", 0, "FILE", &config, "configuration file (else $ERD_CONFIG)"),
        CMD_FLAG("dump", 0, &dump, "print the settings (what erd config does either way)"),
    };
    const cmd_spec spec = CMD_SPEC("config", "[--config FILE] --dump",
        "Prints every setting with its effective value (defaults, then FILE or\n"
        "$ERD_CONFIG, then ERD_<KEY> environment variables) and its documentation.\n"
        "Exits 78 naming the key and line when the configuration is invalid.", opts);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    cfg_config cfg;
    int rc = cmd__config("config", config, &cfg);
    if (rc)
        return rc;
    cfg_dump(&cfg, stdout);
    return CMD_EXIT_OK;
}

size_t cmd_nbest(json_t *nbest, vix_hypothesis *hyps, size_t cap)
{
    size_t n = json_array_size(nbest) < cap ? json_array_size(nbest) : cap;
    for (size_t i = 0; i < n; i++) {
        json_t *h = json_array_get(nbest, i), *score = json_object_get(h, "score");
        const char *text = json_string_value(json_object_get(h, "text"));
        hyps[i] = (vix_hypothesis){.text = text ? text : "", .len = text ? strlen(text) : 0,
                                   .score = json_is_number(score) ? json_number_value(score) : 0,
                                   .has_score = json_is_number(score)};
    }
    return n;
}
