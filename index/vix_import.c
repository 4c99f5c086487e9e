/* Catalog import: JSON lines or RFC 4180 CSV into one catalog, in one
 * transaction.  See vix_store_import in vix_store.h. */
#include "index/vix_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One record (a JSON line, or a CSV record with its embedded newlines).
 * Generous for any real entity, small enough that a binary file or a
 * missing newline cannot make us swallow gigabytes. */
#define VIX_IMPORT_MAX_RECORD (1u << 20)
#define VIX_IMPORT_MAX_ID 1000
#define VIX_IMPORT_MAX_NAME 1000
#define VIX_IMPORT_MAX_ALIASES 256
#define VIX_IMPORT_MAX_COLUMNS 1024
#define VIX_IMPORT_PROGRESS_EVERY 1000

/* ---- buffered input: line numbers and byte counts for messages/progress ---- */

typedef struct reader {
    FILE *f;
    size_t pos, len;
    bool eof;
    int error; /* errno of a failed read, 0 if none */
    uint64_t bytes; /* consumed */
    uint64_t nl;    /* newlines consumed: the current line is nl + 1 */
    unsigned char buf[1u << 16];
} reader;

/* Keeps the unconsumed tail and reads more after it. */
static void rd_fill(reader *r)
{
    if (r->eof)
        return;
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->len == sizeof r->buf)
        return;
    size_t n = fread(r->buf + r->len, 1, sizeof r->buf - r->len, r->f);
    r->len += n;
    if (n == 0) {
        if (ferror(r->f))
            r->error = errno ? errno : EIO;
        r->eof = true;
    }
}

static inline int rd_getc(reader *r)
{
    if (r->pos == r->len) {
        rd_fill(r);
        if (r->pos == r->len)
            return EOF;
    }
    int c = r->buf[r->pos++];
    r->bytes++;
    if (c == '\n')
        r->nl++;
    return c;
}

static inline int rd_peek(reader *r)
{
    if (r->pos == r->len) {
        rd_fill(r);
        if (r->pos == r->len)
            return EOF;
    }
    return r->buf[r->pos];
}

static void rd_skip_bom(reader *r)
{
    rd_fill(r);
    if (r->len - r->pos >= 3 && memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3) == 0) {
        r->pos += 3;
        r->bytes += 3;
    }
}

static int rd_io_fail(reader *r, erd_diag *diag)
{
    return erd_fail(diag, ERD_EIO, "line %" PRIu64 ": read error: %s", r->nl + 1,
                    strerror(r->error));
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

/* Keeps room for a terminating NUL. */
static int buf_append(buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return ERD_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return ERD_OK;
}

/* Reads one line without its "\n" or "\r\n".  1: a line, 0: end of input. */
static int rd_line(reader *r, buf *line, erd_diag *diag)
{
    uint64_t lineno = r->nl + 1;
    bool got = false;

    line->len = 0;
    if (buf_append(line, "", 0))
        return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", lineno);
    for (;;) {
        if (r->pos == r->len) {
            rd_fill(r);
            if (r->error)
                return rd_io_fail(r, diag);
            if (r->pos == r->len)
                break;
        }
        got = true;
        unsigned char *start = r->buf + r->pos;
        unsigned char *nl = memchr(start, '\n', r->len - r->pos);
        size_t take = nl ? (size_t)(nl - start) : r->len - r->pos;
        if (line->len + take > VIX_IMPORT_MAX_RECORD)
            return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": longer than %u bytes", lineno,
                            VIX_IMPORT_MAX_RECORD);
        if (buf_append(line, start, take))
            return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", lineno);
        r->pos += take;
        r->bytes += take;
        if (nl) {
            r->pos++;
            r->bytes++;
            r->nl++;
            break;
        }
    }
    if (!got)
        return 0;
    if (line->len && line->p[line->len - 1] == '\r')
        line->p[--line->len] = '\0';
    return 1;
}

static bool is_blank_byte(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Consumes whole blank lines only, so that leading spaces of a CSV header
 * survive, then decides by the first non-blank byte. */
static int sniff_format(reader *r, enum vix_import_format *ret, erd_diag *diag)
{
    for (;;) {
        size_t i = r->pos;
        while (i < r->len && is_blank_byte(r->buf[i])) {
            if (r->buf[i] == '\n') {
                r->nl++;
                r->bytes += i + 1 - r->pos;
                r->pos = i + 1;
            }
            i++;
        }
        if (i < r->len) {
            *ret = r->buf[i] == '{' ? VIX_FORMAT_JSONL : VIX_FORMAT_CSV;
            return ERD_OK;
        }
        if (r->eof) {
            *ret = VIX_FORMAT_JSONL; /* blank input: both parsers yield nothing */
            return ERD_OK;
        }
        if (r->pos == 0 && r->len == sizeof r->buf) {
            /* a full buffer of blanks without a newline: no line to keep */
            r->bytes += r->len;
            r->pos = r->len;
        }
        rd_fill(r);
        if (r->error)
            return rd_io_fail(r, diag);
    }
}

/* ---- validation shared by both formats ---- */

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        p += len;
    }
    return true;
}

static bool all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_blank_byte((unsigned char)s[i]))
            return false;
    return true;
}

/* Checks a value stored as a column; what names it in the message. */
static int check_text(const char *s, size_t n, size_t max, const char *what, uint64_t line,
                      erd_diag *diag)
{
    if (n == 0 || all_blank(s, n))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %s is empty", line, what);
    if (n > max)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %s is %zu bytes, limit %zu", line,
                        what, n, max);
    if (memchr(s, '\0', n))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %s contains a NUL byte", line, what);
    if (!utf8_valid(s, n))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %s is not valid UTF-8", line, what);
    return ERD_OK;
}

/* ---- the upsert ---- */

typedef struct import_ctx {
    vix_store *store;
    const vix_import_opts *opts;
    sqlite3_stmt *upsert;
    int64_t catalog_id;
    int64_t now;
    vix_import_result res;
    reader *rd;
} import_ctx;

static int upsert(import_ctx *cx, const char *ext_id, const char *name, const char *aliases,
                  const char *attrs, uint64_t line, erd_diag *diag)
{
    sqlite3_stmt *st = cx->upsert;
    sqlite3 *db = cx->store->db;

    sqlite3_bind_int64(st, 1, cx->catalog_id);
    sqlite3_bind_text(st, 2, ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, aliases, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, attrs, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, cx->now);
    /* The DO UPDATE branch leaves last_insert_rowid alone and real rowids
     * are positive, so a zero afterwards means the id already existed. */
    sqlite3_set_last_insert_rowid(db, 0);
    int rc = sqlite3_step(st);
    int err = ERD_OK;
    if (rc != SQLITE_DONE) {
        char what[64];
        snprintf(what, sizeof what, "line %" PRIu64, line);
        err = vix__db_fail(cx->store, diag, rc, what);
    } else if (sqlite3_last_insert_rowid(db) != 0) {
        cx->res.inserted++;
    } else {
        cx->res.updated++;
    }
    sqlite3_reset(st);
    return err;
}

static void record_done(import_ctx *cx)
{
    cx->res.lines++;
    if (cx->opts->progress && cx->res.lines % VIX_IMPORT_PROGRESS_EVERY == 0)
        cx->opts->progress(cx->opts->progress_user, cx->res.lines, cx->rd->bytes,
                           cx->opts->total_bytes);
}

/* ---- JSON lines ---- */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* Only the four fields: a typo such as "alias" would otherwise silently
 * lose data. */
static int jsonl_fields(const json_t *rec, uint64_t line, erd_diag *diag)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)rec, key, val)
    {
        if (strcmp(key, "id") && strcmp(key, "name") && strcmp(key, "aliases") &&
            strcmp(key, "attrs"))
            return erd_fail(diag, ERD_EPARSE,
                            "line %" PRIu64 ": unknown field \"%.40s\" (expected id, name, "
                            "aliases, attrs)",
                            line, key);
    }
    return ERD_OK;
}

/* "id", a string or an integer (written into idbuf). */
static int jsonl_id(const json_t *rec, uint64_t line, char *idbuf, size_t cap,
                    const char **ret_id, erd_diag *diag)
{
    json_t *id = json_object_get(rec, "id");
    if (!id)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": missing \"id\"", line);
    if (json_is_integer(id)) {
        snprintf(idbuf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        *ret_id = idbuf;
        return ERD_OK;
    }
    if (!json_is_string(id))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": \"id\" is %s, want a string or integer",
                        line, json_type_name(id));
    int err = check_text(json_string_value(id), json_string_length(id), VIX_IMPORT_MAX_ID,
                         "\"id\"", line, diag);
    if (err)
        return err;
    *ret_id = json_string_value(id);
    return ERD_OK;
}

static int jsonl_name(const json_t *rec, uint64_t line, const char **ret_name, erd_diag *diag)
{
    json_t *name = json_object_get(rec, "name");
    if (!name)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": missing \"name\"", line);
    if (!json_is_string(name))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": \"name\" is %s, want a string", line,
                        json_type_name(name));
    int err = check_text(json_string_value(name), json_string_length(name), VIX_IMPORT_MAX_NAME,
                         "\"name\"", line, diag);
    if (err)
        return err;
    *ret_name = json_string_value(name);
    return ERD_OK;
}

/* "aliases", an array of strings, as compact JSON (NULL when absent). */
static int jsonl_aliases(const json_t *rec, uint64_t line, char **ret_json, erd_diag *diag)
{
    json_t *aliases = json_object_get(rec, "aliases");
    if (!aliases || json_is_null(aliases))
        return ERD_OK;
    if (!json_is_array(aliases))
        return erd_fail(diag, ERD_EPARSE,
                        "line %" PRIu64 ": \"aliases\" is %s, want an array of strings", line,
                        json_type_name(aliases));
    if (json_array_size(aliases) > VIX_IMPORT_MAX_ALIASES)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %zu aliases, limit %d", line,
                        json_array_size(aliases), VIX_IMPORT_MAX_ALIASES);
    size_t i;
    json_t *a;
    json_array_foreach(aliases, i, a)
    {
        char what[32];
        snprintf(what, sizeof what, "aliases[%zu]", i);
        if (!json_is_string(a))
            return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %s is %s, want a string", line,
                            what, json_type_name(a));
        int err = check_text(json_string_value(a), json_string_length(a), VIX_IMPORT_MAX_NAME,
                             what, line, diag);
        if (err)
            return err;
    }
    *ret_json = json_dumps(aliases, JSON_COMPACT);
    return *ret_json ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
}

/* "attrs", an object, as compact JSON (NULL when absent). */
static int jsonl_attrs(const json_t *rec, uint64_t line, char **ret_json, erd_diag *diag)
{
    json_t *attrs = json_object_get(rec, "attrs");
    if (!attrs || json_is_null(attrs))
        return ERD_OK;
    if (!json_is_object(attrs))
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": \"attrs\" is %s, want an object",
                        line, json_type_name(attrs));
    *ret_json = json_dumps(attrs, JSON_COMPACT);
    return *ret_json ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
}

static int jsonl_record(import_ctx *cx, const char *text, size_t len, uint64_t line, erd_diag *diag)
{
    json_error_t jerr;
    char *aliases_s = NULL, *attrs_s = NULL;
    char idbuf[32];
    const char *ext_id = NULL, *name = NULL;
    int err;

    json_t *rec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": invalid JSON at column %d: %s", line,
                        jerr.column, jerr.text);
    if (!json_is_object(rec))
        err = erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": record is %s, not an object", line,
                       json_type_name(rec));
    else if (!(err = jsonl_fields(rec, line, diag)) &&
             !(err = jsonl_id(rec, line, idbuf, sizeof idbuf, &ext_id, diag)) &&
             !(err = jsonl_name(rec, line, &name, diag)) &&
             !(err = jsonl_aliases(rec, line, &aliases_s, diag)) &&
             !(err = jsonl_attrs(rec, line, &attrs_s, diag)))
        err = upsert(cx, ext_id, name, aliases_s ? aliases_s : "[]", attrs_s ? attrs_s : "{}",
                     line, diag);
    free(aliases_s);
    free(attrs_s);
    json_decref(rec);
    return err;
}

static int import_jsonl(import_ctx *cx, erd_diag *diag)
{
    buf line = {0};
    int err = ERD_OK;

    for (;;) {
        uint64_t lineno = cx->rd->nl + 1;
        int r = rd_line(cx->rd, &line, diag);
        if (r < 0) {
            err = r;
            break;
        }
        if (r == 0)
            break;
        if (all_blank(line.p, line.len))
            continue;
        err = jsonl_record(cx, line.p, line.len, lineno, diag);
        if (err)
            break;
        record_done(cx);
    }
    free(line.p);
    return err;
}

/* ---- CSV (RFC 4180) ---- */

typedef struct csv_rec {
    buf data;     /* fields, each NUL-terminated */
    size_t *off;  /* start of each field in data */
    size_t *flen; /* length of each field */
    size_t n, cap;
} csv_rec;

static int csv_end_field(csv_rec *rec, size_t start)
{
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? rec->cap * 2 : 16;
        size_t *off = realloc(rec->off, cap * sizeof *off);
        if (!off)
            return ERD_ENOMEM;
        rec->off = off;
        size_t *flen = realloc(rec->flen, cap * sizeof *flen);
        if (!flen)
            return ERD_ENOMEM;
        rec->flen = flen;
        rec->cap = cap;
    }
    rec->off[rec->n] = start;
    rec->flen[rec->n] = rec->data.len - start;
    rec->n++;
    /* separator: field text stays NUL-terminated for SQLite and jansson */
    return buf_append(&rec->data, "", 1);
}

enum { CSV_EOF = 0, CSV_RECORD = 1, CSV_BLANK = 2 };

/* Reads one record; *ret_line is the line it starts on. */
static int csv_read(reader *r, int delim, csv_rec *rec, uint64_t *ret_line, erd_diag *diag)
{
    enum { FIELD_START, UNQUOTED, QUOTED, AFTER_QUOTE } state = FIELD_START;
    uint64_t start_line = r->nl + 1;
    size_t field_start = 0;
    bool any = false;

    rec->data.len = 0;
    rec->n = 0;
    *ret_line = start_line;
    if (rd_peek(r) == EOF) {
        if (r->error)
            return rd_io_fail(r, diag);
        return CSV_EOF;
    }
    for (;;) {
        int c = rd_getc(r);
        if (c == EOF && r->error)
            return rd_io_fail(r, diag);
        if (c == '\0')
            return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": NUL byte in CSV", r->nl + 1);
        bool end_record = false, end_field = false;
        switch (state) {
        case FIELD_START:
        case UNQUOTED:
            if (c == '"' && state == FIELD_START) {
                state = QUOTED;
                any = true;
                continue;
            }
            if (c == '"')
                return erd_fail(diag, ERD_EPARSE,
                                "line %" PRIu64 ": quote inside an unquoted field (quote the "
                                "whole field and double the quote)",
                                r->nl + 1);
            if (c == delim) {
                any = true;
                end_field = true;
            } else if (c == '\r' || c == '\n' || c == EOF) {
                end_record = true;
            } else {
                state = UNQUOTED;
                any = true;
            }
            break;
        case QUOTED:
            if (c == '"') {
                state = AFTER_QUOTE;
                continue;
            }
            if (c == EOF)
                return erd_fail(diag, ERD_EPARSE,
                                "line %" PRIu64 ": quoted field never closed (input ends on "
                                "line %" PRIu64 ")",
                                start_line, r->nl + 1);
            break;
        case AFTER_QUOTE:
            if (c == '"') {
                state = QUOTED; /* "" is a literal quote */
                break;
            }
            if (c == delim) {
                end_field = true;
            } else if (c == '\r' || c == '\n' || c == EOF) {
                end_record = true;
            } else {
                return erd_fail(diag, ERD_EPARSE,
                                "line %" PRIu64 ": unexpected character after a closing quote",
                                r->nl + 1);
            }
            break;
        }
        if (end_record) {
            if (c == '\r' && rd_peek(r) == '\n')
                rd_getc(r);
            if (!any)
                return CSV_BLANK;
            if (csv_end_field(rec, field_start))
                return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", start_line);
            return CSV_RECORD;
        }
        if (end_field) {
            if (csv_end_field(rec, field_start))
                return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", start_line);
            if (rec->n > VIX_IMPORT_MAX_COLUMNS)
                return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": more than %d fields",
                                start_line, VIX_IMPORT_MAX_COLUMNS);
            field_start = rec->data.len;
            state = FIELD_START;
            continue;
        }
        if (rec->data.len >= VIX_IMPORT_MAX_RECORD)
            return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": record longer than %u bytes",
                            start_line, VIX_IMPORT_MAX_RECORD);
        char ch = (char)c;
        if (buf_append(&rec->data, &ch, 1))
            return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", start_line);
    }
}

static const char *csv_field(const csv_rec *rec, size_t i)
{
    return rec->data.p + rec->off[i];
}

typedef struct csv_header {
    char **names;
    size_t n;
    size_t id_col, name_col, aliases_col; /* aliases_col == n when absent */
} csv_header;

static void csv_header_free(csv_header *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->names[i]);
    free(h->names);
}

static int csv_find_column(const csv_header *h, const char *name, size_t *ret)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->names[i], name) == 0) {
            *ret = i;
            return ERD_OK;
        }
    }
    return ERD_ENOTFOUND;
}

static int csv_parse_header(const vix_import_opts *opts, const csv_rec *rec, uint64_t line,
                            csv_header *h, erd_diag *diag)
{
    h->names = calloc(rec->n, sizeof *h->names);
    if (!h->names)
        return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
    h->n = rec->n;
    for (size_t i = 0; i < rec->n; i++) {
        const char *name = csv_field(rec, i);
        char what[48];
        snprintf(what, sizeof what, "header column %zu", i + 1);
        int err = check_text(name, rec->flen[i], 256, what, line, diag);
        if (err)
            return err;
        for (size_t j = 0; j < i; j++)
            if (strcmp(h->names[j], name) == 0)
                return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": duplicate column \"%.60s\"",
                                line, name);
        h->names[i] = strdup(name);
        if (!h->names[i])
            return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
    }
    const char *id_name = opts->csv_id_column ? opts->csv_id_column : "id";
    const char *name_name = opts->csv_name_column ? opts->csv_name_column : "name";
    const char *al_name = opts->csv_aliases_column ? opts->csv_aliases_column : "aliases";
    if (csv_find_column(h, id_name, &h->id_col)) {
        /* the usual cause: a file separated by something else than commas */
        const char *other = h->n != 1 ? NULL : strchr(h->names[0], ';') ? ";"
                                          : strchr(h->names[0], '\t') ? "\\t" : NULL;
        if (other)
            return erd_fail(diag, ERD_EPARSE,
                            "line %" PRIu64 ": CSV header has no id column \"%.60s\"; it is one "
                            "column holding '%s': pass --delimiter '%s'",
                            line, id_name, other, other);
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": CSV header has no id column \"%.60s\"",
                        line, id_name);
    }
    if (csv_find_column(h, name_name, &h->name_col))
        return erd_fail(diag, ERD_EPARSE,
                        "line %" PRIu64 ": CSV header has no name column \"%.60s\"", line,
                        name_name);
    if (csv_find_column(h, al_name, &h->aliases_col)) {
        /* optional by default; a column the caller named must be there */
        if (opts->csv_aliases_column)
            return erd_fail(diag, ERD_EPARSE,
                            "line %" PRIu64 ": CSV header has no aliases column \"%.60s\"", line,
                            al_name);
        h->aliases_col = h->n;
    }
    if (h->id_col == h->name_col)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": id and name are the same column", line);
    return ERD_OK;
}

static int csv_aliases(const char *s, size_t n, uint64_t line, json_t *arr, erd_diag *diag)
{
    const char *end = s + n;
    while (s <= end) {
        const char *bar = memchr(s, '|', (size_t)(end - s));
        const char *e = bar ? bar : end;
        const char *a = s;
        while (a < e && is_blank_byte((unsigned char)*a))
            a++;
        const char *b = e;
        while (b > a && is_blank_byte((unsigned char)b[-1]))
            b--;
        if (b > a) {
            if (json_array_size(arr) >= VIX_IMPORT_MAX_ALIASES)
                return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": more than %d aliases", line,
                                VIX_IMPORT_MAX_ALIASES);
            int err = check_text(a, (size_t)(b - a), VIX_IMPORT_MAX_NAME, "alias", line, diag);
            if (err)
                return err;
            if (json_array_append_new(arr, json_stringn(a, (size_t)(b - a))))
                return erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
        }
        s = e + 1;
    }
    return ERD_OK;
}

static int csv_record(import_ctx *cx, const csv_header *h, const csv_rec *rec, uint64_t line,
                      erd_diag *diag)
{
    json_t *aliases = NULL, *attrs = NULL;
    char *aliases_s = NULL, *attrs_s = NULL;
    int err;

    if (rec->n != h->n) {
        err = erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": %zu fields, the header has %zu", line,
                       rec->n, h->n);
        goto out;
    }
    err = check_text(csv_field(rec, h->id_col), rec->flen[h->id_col], VIX_IMPORT_MAX_ID, "id",
                     line, diag);
    if (err)
        goto out;
    err = check_text(csv_field(rec, h->name_col), rec->flen[h->name_col], VIX_IMPORT_MAX_NAME,
                     "name", line, diag);
    if (err)
        goto out;
    aliases = json_array();
    attrs = json_object();
    if (!aliases || !attrs) {
        err = erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
        goto out;
    }
    if (h->aliases_col < h->n) {
        err = csv_aliases(csv_field(rec, h->aliases_col), rec->flen[h->aliases_col], line, aliases,
                          diag);
        if (err)
            goto out;
    }
    for (size_t i = 0; i < h->n; i++) {
        if (i == h->id_col || i == h->name_col || i == h->aliases_col || rec->flen[i] == 0)
            continue;
        json_t *v = json_stringn(csv_field(rec, i), rec->flen[i]);
        if (!v) {
            /* jansson refuses invalid UTF-8 and NUL */
            err = erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": column \"%.60s\" is not valid UTF-8",
                           line, h->names[i]);
            goto out;
        }
        if (json_object_set_new(attrs, h->names[i], v)) {
            err = erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
            goto out;
        }
    }
    aliases_s = json_dumps(aliases, JSON_COMPACT);
    attrs_s = json_dumps(attrs, JSON_COMPACT);
    if (!aliases_s || !attrs_s) {
        err = erd_fail(diag, ERD_ENOMEM, "line %" PRIu64 ": out of memory", line);
        goto out;
    }
    err = upsert(cx, csv_field(rec, h->id_col), csv_field(rec, h->name_col), aliases_s, attrs_s,
                 line, diag);
out:
    free(aliases_s);
    free(attrs_s);
    json_decref(aliases);
    json_decref(attrs);
    return err;
}

static int import_csv(import_ctx *cx, erd_diag *diag)
{
    csv_rec rec = {0};
    csv_header h = {0};
    bool have_header = false;
    int err = ERD_OK;
    int delim = cx->opts->csv_delimiter ? (unsigned char)cx->opts->csv_delimiter : ',';

    for (;;) {
        uint64_t line;
        int r = csv_read(cx->rd, delim, &rec, &line, diag);
        if (r < 0) {
            err = r;
            break;
        }
        if (r == CSV_EOF)
            break;
        /* a line of spaces is blank too, not a one-field record */
        if (r == CSV_BLANK || (rec.n == 1 && all_blank(csv_field(&rec, 0), rec.flen[0])))
            continue;
        if (!have_header) {
            err = csv_parse_header(cx->opts, &rec, line, &h, diag);
            if (err)
                break;
            have_header = true;
            continue;
        }
        err = csv_record(cx, &h, &rec, line, diag);
        if (err)
            break;
        record_done(cx);
    }
    csv_header_free(&h);
    free(rec.data.p);
    free(rec.off);
    free(rec.flen);
    return err;
}

/* ---- entry point ---- */

int vix_store_import(vix_store *store, const char *catalog, FILE *in, const vix_import_opts *opts,
                     vix_import_result *ret, erd_diag *diag)
{
    static const vix_import_opts default_opts = {0};
    reader *rd = NULL;
    vix__stmt up = {0};
    import_ctx cx = {0};
    bool in_txn = false;
    int err;

    if (!store || !in)
        return erd_fail(diag, ERD_EINVAL, "import: no store or input");
    if (vix__catalog_name_check(catalog, diag) < 0)
        return ERD_EINVAL;
    if (store->readonly)
        return erd_fail(diag, ERD_EINVAL, "import: store %s is open read-only", store->path);
    if (!opts)
        opts = &default_opts;
    if (opts->format != VIX_FORMAT_AUTO && opts->format != VIX_FORMAT_JSONL &&
        opts->format != VIX_FORMAT_CSV)
        return erd_fail(diag, ERD_EINVAL, "import: unknown format %d", (int)opts->format);

    rd = calloc(1, sizeof *rd);
    if (!rd)
        return erd_fail(diag, ERD_ENOMEM, "import: out of memory");
    rd->f = in;

    /* A caller's open transaction (vix_store_begin) gets a savepoint, so a
     * failed import undoes only itself. */
    bool nested = !sqlite3_get_autocommit(store->db);
    err = vix__exec(store, nested ? "SAVEPOINT vix_import" : "BEGIN IMMEDIATE", diag);
    if (err)
        goto out;
    in_txn = true;

    cx.store = store;
    cx.opts = opts;
    cx.now = (int64_t)time(NULL);
    cx.rd = rd;
    err = vix__catalog_ensure(store, catalog, &cx.catalog_id, diag);
    if (err)
        goto out;
    err = vix__stmt_acquire(store, VIX__ST_ENTITY_UPSERT, &up, diag);
    if (err)
        goto out;
    cx.upsert = up.st;

    rd_skip_bom(rd);
    enum vix_import_format fmt = opts->format;
    if (fmt == VIX_FORMAT_AUTO) {
        err = sniff_format(rd, &fmt, diag);
        if (err)
            goto out;
    }
    err = fmt == VIX_FORMAT_JSONL ? import_jsonl(&cx, diag) : import_csv(&cx, diag);
    if (err)
        goto out;
    vix__stmt_release(&up);

    /* an import that carried no records changed nothing an index depends on */
    if (cx.res.lines > 0 && (err = vix_store_catalog_bump(store, cx.catalog_id, diag)) < 0)
        goto out;
    err = vix__exec(store, nested ? "RELEASE vix_import" : "COMMIT", diag);
    if (err)
        goto out;
    in_txn = false;
    if (opts->progress)
        opts->progress(opts->progress_user, cx.res.lines, rd->bytes, opts->total_bytes);
    if (ret)
        *ret = cx.res;
out:
    vix__stmt_release(&up);
    if (in_txn) {
        if (nested)
            sqlite3_exec(store->db, "ROLLBACK TO vix_import; RELEASE vix_import", NULL, NULL, NULL);
        else if (!sqlite3_get_autocommit(store->db))
            sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    }
    free(rd);
    return err;
}

int vix_store_upsert_json(vix_store *store, int64_t catalog_id, const char *json, size_t len,
                          uint64_t line, bool *ret_created, erd_diag *diag)
{
    if (!store || !json)
        return erd_fail(diag, ERD_EINVAL, "upsert: no store or record");
    if (store->readonly)
        return erd_fail(diag, ERD_EINVAL, "upsert: store %s is open read-only", store->path);
    if (len > VIX_IMPORT_MAX_RECORD)
        return erd_fail(diag, ERD_EPARSE, "line %" PRIu64 ": record longer than %u bytes", line,
                        VIX_IMPORT_MAX_RECORD);
    vix__stmt up = {0};
    int err = vix__stmt_acquire(store, VIX__ST_ENTITY_UPSERT, &up, diag);
    if (err)
        return err;
    import_ctx cx = {.store = store, .upsert = up.st, .catalog_id = catalog_id,
                     .now = (int64_t)time(NULL)};
    err = jsonl_record(&cx, json, len, line, diag);
    vix__stmt_release(&up);
    /* a single record has no line to name */
    if (err && line == 0 && diag && strncmp(diag->msg, "line 0: ", 8) == 0)
        memmove(diag->msg, diag->msg + 8, strlen(diag->msg + 8) + 1);
    if (!err && ret_created)
        *ret_created = cx.res.inserted > 0;
    return err;
}
