#include "server/http/srv_request.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void srv_limits_from_config(const cfg_config *cfg, srv_limits *ret)
{
    srv_limits l;
    l.max_hypotheses = cfg->max_hypotheses > 0 ? (size_t)cfg->max_hypotheses : 1;
    l.max_text_bytes = cfg->max_text_bytes > 0 ? cfg->max_text_bytes : 1;
    l.max_k = cfg->max_k > 0 ? (size_t)cfg->max_k : 1;
    l.default_k = cfg->default_k > 0 ? (size_t)cfg->default_k : 1;
    if (l.default_k > l.max_k)
        l.default_k = l.max_k;
    *ret = l;
}

/* ---- UTF-8 ---- */

/* Decodes one well-formed UTF-8 sequence at s[0..len) (no overlongs, no
 * surrogates, nothing past U+10FFFF).  Returns its length, 0 if malformed. */
static size_t srv__utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Unicode White_Space plus the zero-width characters ASR output and copy-paste
 * leave behind: a text made only of these says nothing to resolve. */
static bool srv__is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static bool srv__blank(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = srv__utf8_decode(p + i, len - i, &cp);
        if (n == 0 || !srv__is_space(cp))
            return false;
        i += n;
    }
    return true;
}

size_t srv_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    if (cap == 0)
        return 0;
    while (i < len) {
        char tmp[8];
        size_t tn = 0, adv = 1;
        unsigned char c = p[i];
        uint32_t cp;
        if (c == '"' || c == '\\') {
            tmp[tn++] = '\\';
            tmp[tn++] = (char)c;
        } else if (c < 0x20) {
            tmp[tn++] = '\\';
            switch (c) {
            case '\n': tmp[tn++] = 'n'; break;
            case '\r': tmp[tn++] = 'r'; break;
            case '\t': tmp[tn++] = 't'; break;
            case '\b': tmp[tn++] = 'b'; break;
            case '\f': tmp[tn++] = 'f'; break;
            default:
                tmp[tn++] = 'u';
                tmp[tn++] = '0';
                tmp[tn++] = '0';
                tmp[tn++] = hex[c >> 4];
                tmp[tn++] = hex[c & 15];
            }
        } else if (c < 0x80) {
            tmp[tn++] = (char)c;
        } else if ((adv = srv__utf8_decode(p + i, len - i, &cp)) != 0) {
            memcpy(tmp, p + i, adv);
            tn = adv;
        } else {
            adv = 1;
            memcpy(tmp, "\\ufffd", 6);
            tn = 6;
        }
        if (tn > cap - 1 - o)
            break;
        memcpy(out + o, tmp, tn);
        o += tn;
        i += adv;
    }
    out[o] = '\0';
    return o;
}

/* ---- parsing ---- */

static int srv__json_error(const json_error_t *e, erd_diag *diag)
{
    switch (json_error_code(e)) {
    case json_error_invalid_utf8:
        return erd_fail(diag, ERD_EUTF8, "request body is not valid UTF-8 (byte %d)", e->position);
    case json_error_null_character:
        return erd_fail(diag, ERD_EINVAL, "strings must not contain \\u0000 (line %d column %d)",
                        e->line, e->column);
    case json_error_duplicate_key:
        return erd_fail(diag, ERD_EINVAL, "duplicate key in object (line %d column %d)", e->line,
                        e->column);
    case json_error_numeric_overflow:
        return erd_fail(diag, ERD_EINVAL, "number out of range (line %d column %d)", e->line,
                        e->column);
    case json_error_out_of_memory:
        return erd_fail(diag, ERD_ENOMEM, "out of memory parsing the request");
    case json_error_stack_overflow:
        return erd_fail(diag, ERD_EJSON, "malformed JSON: nested too deeply");
    default:
        break;
    }
    /* jansson reports an escaped lone surrogate (\uD800) as a syntax error,
     * but to a client it is the same mistake as raw invalid UTF-8. */
    if (strncmp(e->text, "invalid Unicode", 15) == 0)
        return erd_fail(diag, ERD_EUTF8, "string holds an unpaired surrogate escape (line %d column %d)",
                        e->line, e->column);
    return erd_fail(diag, ERD_EJSON, "malformed JSON at line %d column %d: %s", e->line, e->column,
                    e->text);
}

/* Copies one hypothesis text into the pool after the checks every text gets;
 * `what` names the field for the message. */
static int srv__take_text(srv_pool *pool, const json_t *v, const char *what, const srv_limits *limits,
                          vix_hypothesis *h, erd_diag *diag)
{
    if (!json_is_string(v))
        return erd_fail(diag, ERD_EINVAL, "%s must be a string", what);
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > limits->max_text_bytes)
        return erd_fail(diag, ERD_ETOOLONG, "%s is %zu bytes; at most %zu are allowed", what, len,
                        limits->max_text_bytes);
    if (len == 0 || srv__blank(s, len))
        return erd_fail(diag, ERD_EEMPTY, "%s is empty", what);
    char *copy = srv_pool_strndup(pool, s, len);
    if (!copy)
        return erd_fail(diag, ERD_ENOMEM, "request exceeds its memory budget");
    h->text = copy;
    h->len = len;
    return ERD_OK;
}

static int srv__take_hypotheses(srv_pool *pool, const json_t *arr, const srv_limits *limits,
                                srv_resolve_req *req, erd_diag *diag)
{
    if (!json_is_array(arr))
        return erd_fail(diag, ERD_EINVAL, "hypotheses must be an array");
    size_t n = json_array_size(arr);
    if (n == 0)
        return erd_fail(diag, ERD_EEMPTY, "hypotheses must not be empty");
    if (n > limits->max_hypotheses)
        return erd_fail(diag, ERD_ETOOLONG, "hypotheses has %zu entries; at most %zu are allowed", n,
                        limits->max_hypotheses);
    if (n > SIZE_MAX / sizeof(vix_hypothesis))
        return erd_fail(diag, ERD_ENOMEM, "request exceeds its memory budget");
    vix_hypothesis *hyps = srv_pool_alloc(pool, n * sizeof *hyps);
    if (!hyps)
        return erd_fail(diag, ERD_ENOMEM, "request exceeds its memory budget");
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i);
        char what[48];
        if (!json_is_object(o))
            return erd_fail(diag, ERD_EINVAL, "hypotheses[%zu] must be an object", i);
        const json_t *text = json_object_get(o, "text");
        if (!text)
            return erd_fail(diag, ERD_EINVAL, "hypotheses[%zu].text is required", i);
        snprintf(what, sizeof what, "hypotheses[%zu].text", i);
        vix_hypothesis *h = &hyps[i];
        int rc = srv__take_text(pool, text, what, limits, h, diag);
        if (rc < 0)
            return rc;
        const json_t *score = json_object_get(o, "score");
        h->score = 0.0;
        h->has_score = false;
        if (score && !json_is_null(score)) {
            if (!json_is_number(score))
                return erd_fail(diag, ERD_EINVAL, "hypotheses[%zu].score must be a number", i);
            h->score = json_number_value(score);
            h->has_score = true;
        }
    }
    req->hyps = hyps;
    req->n_hyps = n;
    return ERD_OK;
}

/* "catalog": a non-empty string within SRV_MAX_CATALOG_BYTES. */
static int srv__take_catalog(srv_pool *pool, const json_t *root, srv_resolve_req *req,
                             erd_diag *diag)
{
    const json_t *catalog = json_object_get(root, "catalog");
    if (!catalog || json_is_null(catalog))
        return erd_fail(diag, ERD_EINVAL, "catalog is required");
    if (!json_is_string(catalog))
        return erd_fail(diag, ERD_EINVAL, "catalog must be a string");
    size_t clen = json_string_length(catalog);
    if (clen == 0)
        return erd_fail(diag, ERD_EINVAL, "catalog must not be empty");
    if (clen > SRV_MAX_CATALOG_BYTES)
        return erd_fail(diag, ERD_ETOOLONG, "catalog is %zu bytes; at most %d are allowed", clen,
                        SRV_MAX_CATALOG_BYTES);
    req->catalog = srv_pool_strndup(pool, json_string_value(catalog), clen);
    if (!req->catalog)
        return erd_fail(diag, ERD_ENOMEM, "request exceeds its memory budget");
    return ERD_OK;
}

/* "k", "min_score" and "explain", each optional. */
static int srv__take_options(const json_t *root, const srv_limits *limits, srv_resolve_req *req,
                             erd_diag *diag)
{
    const json_t *k = json_object_get(root, "k");
    req->k = limits->default_k;
    if (k && !json_is_null(k)) {
        json_int_t kv = json_is_integer(k) ? json_integer_value(k) : 0;
        if (!json_is_integer(k) || kv < 1 || (uint64_t)kv > (uint64_t)limits->max_k)
            return erd_fail(diag, ERD_EINVAL, "k must be an integer between 1 and %zu",
                            limits->max_k);
        req->k = (size_t)kv;
    }
    const json_t *min_score = json_object_get(root, "min_score");
    req->min_score = -1;
    if (min_score && !json_is_null(min_score)) {
        double v = json_is_number(min_score) ? json_number_value(min_score) : -1;
        if (!(v >= 0 && v <= 1))
            return erd_fail(diag, ERD_EINVAL, "min_score must be a number between 0 and 1");
        req->min_score = v;
    }
    const json_t *explain = json_object_get(root, "explain");
    if (explain && !json_is_null(explain) && !json_is_boolean(explain))
        return erd_fail(diag, ERD_EINVAL, "explain must be true or false");
    req->explain = json_is_true(explain);
    return ERD_OK;
}

/* "text" (one hypothesis without a score) or "hypotheses", not both. */
static int srv__take_input(srv_pool *pool, const json_t *root, const srv_limits *limits,
                           srv_resolve_req *req, erd_diag *diag)
{
    const json_t *text = json_object_get(root, "text");
    const json_t *hyps = json_object_get(root, "hypotheses");
    if (text && json_is_null(text))
        text = NULL;
    if (hyps && json_is_null(hyps))
        hyps = NULL;
    if (text && hyps)
        return erd_fail(diag, ERD_EINVAL, "give either text or hypotheses, not both");
    if (!text && !hyps)
        return erd_fail(diag, ERD_EINVAL, "hypotheses (or text) is required");
    if (hyps)
        return srv__take_hypotheses(pool, hyps, limits, req, diag);
    vix_hypothesis *h = srv_pool_alloc(pool, sizeof *h);
    if (!h)
        return erd_fail(diag, ERD_ENOMEM, "request exceeds its memory budget");
    h->score = 0.0;
    h->has_score = false;
    int rc = srv__take_text(pool, text, "text", limits, h, diag);
    if (rc < 0)
        return rc;
    req->hyps = h;
    req->n_hyps = 1;
    return ERD_OK;
}

int srv_parse_resolve(srv_pool *pool, const char *body, size_t len, const srv_limits *limits,
                      srv_resolve_req *ret, erd_diag *diag)
{
    json_error_t jerr;
    json_t *root = NULL;
    srv_resolve_req req = {0};
    int rc;

    if (!pool || !limits || !ret || (!body && len))
        return erd_fail(diag, ERD_EINVAL, "srv_parse_resolve: missing argument");
    /* DECODE_ANY so that valid JSON of the wrong shape ("[1]", "7") is told
     * apart from broken JSON; duplicates are refused because two parsers
     * picking different values for one key is how requests get smuggled. */
    root = json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return srv__json_error(&jerr, diag);
    if (!json_is_object(root))
        rc = erd_fail(diag, ERD_EINVAL, "request body must be a JSON object");
    else if ((rc = srv__take_catalog(pool, root, &req, diag)) == ERD_OK &&
             (rc = srv__take_options(root, limits, &req, diag)) == ERD_OK &&
             (rc = srv__take_input(pool, root, limits, &req, diag)) == ERD_OK)
        *ret = req;
    json_decref(root);
    return rc;
}

/* ---- serialisation ---- */

/* Bounded append into a buffer sized up front by the caller. */
typedef struct srv__buf {
    char *p;
    size_t len, cap;
} srv__buf;

static void srv__put(srv__buf *b, const char *s, size_t n)
{
    if (n > b->cap - 1 - b->len)
        n = b->cap - 1 - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void srv__puts(srv__buf *b, const char *s)
{
    srv__put(b, s, strlen(s));
}

static void srv__put_string(srv__buf *b, const char *s)
{
    srv__put(b, "\"", 1);
    b->len += srv_json_escape(b->p + b->len, b->cap - b->len, s, strlen(s));
    srv__put(b, "\"", 1);
}

/* Worst case of srv_json_escape: every input byte becomes six. */
static bool srv__grow_bound(size_t *total, const char *s)
{
    size_t n = strlen(s);
    if (n > (SIZE_MAX - *total) / 6 - 8)
        return false;
    *total += 6 * n + 8;
    return true;
}

int srv_write_results(const vix_result *results, size_t n, char **ret_json, size_t *ret_len,
                      erd_diag *diag)
{
    return srv_write_answer_plain(results, n, -1, ret_json, ret_len, diag);
}

int srv_write_answer_plain(const vix_result *results, size_t n, int match, char **ret_json,
                           size_t *ret_len, erd_diag *diag)
{
    size_t bound = 48; /* the list's brackets and "match" */
    for (size_t i = 0; i < n; i++) {
        const char *id = results[i].ext_id ? results[i].ext_id : "";
        const char *name = results[i].name ? results[i].name : "";
        if (!srv__grow_bound(&bound, id) || !srv__grow_bound(&bound, name) ||
            bound > SIZE_MAX - 96)
            return erd_fail(diag, ERD_ENOMEM, "results too large to serialise");
        bound += 96;
    }
    srv__buf b = {malloc(bound), 0, bound};
    if (!b.p)
        return erd_fail(diag, ERD_ENOMEM, "out of memory serialising results");
    b.p[0] = '\0';
    srv__puts(&b, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        char num[40];
        double s = results[i].score;
        /* JSON has no NaN or infinity; a broken score must not break the
         * document, and ranking is already decided. */
        if (!isfinite(s))
            s = 0.0;
        snprintf(num, sizeof num, "%.9g", s);
        if (i)
            srv__put(&b, ",", 1);
        srv__puts(&b, "{\"id\":");
        srv__put_string(&b, results[i].ext_id ? results[i].ext_id : "");
        srv__puts(&b, ",\"name\":");
        srv__put_string(&b, results[i].name ? results[i].name : "");
        srv__puts(&b, ",\"score\":");
        srv__puts(&b, num);
        srv__put(&b, "}", 1);
    }
    srv__puts(&b, match < 0 ? "]}" : match ? "],\"match\":true}" : "],\"match\":false}");
    *ret_json = b.p;
    *ret_len = b.len;
    return ERD_OK;
}

int srv_write_error(int err, const char *message, char **ret_json, size_t *ret_len)
{
    /* Messages come from erd_diag (256 bytes); anything longer is a bug
     * upstream and is cut rather than allowed to grow the reply. */
    enum { MAX_MSG = 1024 };
    const char *code = erd_errcode(err);
    if (!message)
        message = erd_strerror(err);
    size_t mlen = strnlen(message, MAX_MSG);
    size_t cap = 64 + 6 * strlen(code) + 6 * mlen;
    srv__buf b = {malloc(cap), 0, cap};
    if (!b.p)
        return ERD_ENOMEM;
    b.p[0] = '\0';
    srv__puts(&b, "{\"error\":{\"code\":");
    srv__put_string(&b, code);
    srv__puts(&b, ",\"message\":\"");
    b.len += srv_json_escape(b.p + b.len, b.cap - b.len, message, mlen);
    srv__puts(&b, "\"}}");
    *ret_json = b.p;
    *ret_len = b.len;
    return ERD_OK;
}

/* ---- HTTP framing ---- */

static int srv__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t srv_http_unescape(char *s, bool *ret_control)
{
    bool control = false;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi = r[0] == '%' ? srv__hexval(r[1]) : -1;
        int lo = hi >= 0 ? srv__hexval(r[2]) : -1;
        unsigned char c;
        if (lo >= 0) {
            c = (unsigned char)(hi * 16 + lo);
            r += 3;
        } else {
            c = (unsigned char)*r++;
        }
        if (c < 0x20 || c == 0x7f)
            control = true;
        *w++ = (char)c;
    }
    *w = '\0';
    if (ret_control)
        *ret_control = control;
    return (size_t)(w - s);
}

/* The next comma-separated element of a header value, blanks trimmed;
 * *p moves past it.  Returns its length (0 for an empty element). */
static size_t srv__list_next(const char **p, const char **ret_start)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *end = s + strcspn(s, ",");
    *p = *end ? end + 1 : end;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *ret_start = s;
    return (size_t)(end - s);
}

static int srv__check_codings(const char *const *te, size_t n_te, erd_diag *diag)
{
    size_t chunked = 0, codings = 0;
    for (size_t i = 0; i < n_te; i++) {
        for (const char *p = te[i]; *p;) {
            const char *tok;
            size_t len = srv__list_next(&p, &tok);
            if (len == 0)
                continue;
            codings++;
            if (len == 7 && strncasecmp(tok, "chunked", 7) == 0) {
                chunked++;
                continue;
            }
            return erd_fail(diag, ERD_EUNSUPPORTED,
                            "transfer coding \"%.*s\" is not supported (send the body as is, or "
                            "chunked)",
                            (int)(len > 40 ? 40 : len), tok);
        }
    }
    if (codings == 0)
        return erd_fail(diag, ERD_EBADREQUEST, "empty Transfer-Encoding");
    if (chunked != 1)
        return erd_fail(diag, ERD_EBADREQUEST, "chunked may be applied only once");
    return ERD_OK;
}

int srv_check_framing(const char *const *content_length, size_t n_cl,
                      const char *const *transfer_encoding, size_t n_te, erd_diag *diag)
{
    if (n_te > 0 && n_cl > 0)
        return erd_fail(diag, ERD_EBADREQUEST,
                        "both Content-Length and Transfer-Encoding: the body's length is "
                        "ambiguous");
    if (n_te > 0)
        return srv__check_codings(transfer_encoding, n_te, diag);
    if (n_cl > 1)
        return erd_fail(diag, ERD_EBADREQUEST, "more than one Content-Length header");
    if (n_cl == 1) {
        const char *v = content_length[0];
        size_t len = strlen(v);
        if (len == 0 || len > 19 || strspn(v, "0123456789") != len)
            return erd_fail(diag, ERD_EBADREQUEST,
                            "Content-Length must be one decimal number of at most 19 digits");
    }
    return ERD_OK;
}
