#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/srv_explain.h"
#include "server/http/srv_request.h"
#include "tap.h"

static const srv_limits limits = {
    .max_hypotheses = 4,
    .max_text_bytes = 32,
    .default_k = 5,
    .max_k = 50,
};

static srv_pool *pool;
static srv_resolve_req req;
static erd_diag diag;

/* Parses a NUL-terminated body with a fresh pool and fresh outputs. */
static int parse_n(const char *body, size_t len)
{
    srv_pool_destroy(pool);
    pool = NULL;
    srv_pool_create(0, 1 << 20, &pool);
    memset(&req, 0x5A, sizeof req); /* detects writes on failure */
    memset(&diag, 0, sizeof diag);
    return srv_parse_resolve(pool, body, len, &limits, &req, &diag);
}

static int parse(const char *body)
{
    return parse_n(body, strlen(body));
}

static int untouched(void)
{
    srv_resolve_req poison;
    memset(&poison, 0x5A, sizeof poison);
    return memcmp(&req, &poison, sizeof req) == 0;
}

static int mentions(const char *needle)
{
    return strstr(diag.msg, needle) != NULL;
}

/* Expects err, a message containing field, and an untouched ret. */
#define fails(body, err, field, name)                                                  \
    do {                                                                               \
        is_int(parse(body), err, "%s: code", name);                                    \
        ok(mentions(field), "%s: message names \"%s\" (got \"%s\")", name, field, diag.msg); \
        ok(untouched(), "%s: ret untouched", name);                                    \
    } while (0)

static void test_valid(void)
{
    is_int(parse("{\"catalog\":\"video\",\"hypotheses\":[{\"text\":\"the matrix\",\"score\":-123},"
                 "{\"text\":\"the mattress\",\"score\":-456.5}],\"k\":3}"),
           ERD_OK, "full request parses");
    is_str(req.catalog, "video", "catalog");
    is_int(req.n_hyps, 2, "two hypotheses");
    is_int(req.k, 3, "k");
    is_str(req.hyps[0].text, "the matrix", "first text");
    is_int(req.hyps[0].len, 10, "first len");
    ok(req.hyps[0].has_score && req.hyps[0].score == -123.0, "integer score read as number");
    ok(req.hyps[1].has_score && req.hyps[1].score == -456.5, "real score");
    is_str(req.hyps[1].text, "the mattress", "second text, order kept");

    is_int(parse("{\"catalog\":\"book\",\"hypotheses\":[{\"text\":\"dune\"}]}"), ERD_OK,
           "without score and k");
    ok(!req.hyps[0].has_score, "score absent");
    is_int(req.k, 5, "default k");

    is_int(parse("{\"catalog\":\"book\",\"hypotheses\":[{\"text\":\"dune\",\"score\":null}],\"k\":null}"),
           ERD_OK, "null score and k mean absent");
    ok(!req.hyps[0].has_score, "null score absent");
    is_int(req.k, 5, "null k is default");

    is_int(parse("{\"catalog\":\"book\",\"text\":\"the hobbit\"}"), ERD_OK, "bare text");
    is_int(req.n_hyps, 1, "bare text is one hypothesis");
    is_str(req.hyps[0].text, "the hobbit", "bare text copied");
    ok(!req.hyps[0].has_score, "bare text has no score");

    is_int(parse("{\"k\":50,\"text\":\"x\",\"catalog\":\"c\",\"extra\":{\"deep\":[1,2,{\"a\":null}]},"
                 "\"hypotheses\":null}"),
           ERD_OK, "unknown fields ignored, k at max, null hypotheses ignored");
    is_int(req.k, 50, "k = max_k accepted");

    is_int(parse("{\"catalog\":\"c\",\"k\":1,\"text\":\"Amélie \\u00e9t\\u00e9 \xe6\x97\xa5\xe6\x9c\xac"
                 " \\ud83d\\ude00\"}"),
           ERD_OK, "unicode text, escaped and raw, with a surrogate pair");
    is_str(req.hyps[0].text, "Amélie été 日本 \xf0\x9f\x98\x80", "unicode decoded to UTF-8");
    is_int(req.k, 1, "k = 1 accepted");

    is_int(parse(" \n{\"catalog\":\"c\",\"text\":\"  padded  \"}\n "), ERD_OK,
           "whitespace around the document and the text");
    is_str(req.hyps[0].text, "  padded  ", "text kept verbatim; normalising is the resolver's job");

    /* exactly max_text_bytes */
    is_int(parse("{\"catalog\":\"c\",\"text\":\"012345678901234567890123456789\\u00e9\"}"), ERD_OK,
           "text of exactly max_text_bytes bytes");
    is_int(req.hyps[0].len, 32, "length in bytes");

    is_int(parse("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},{\"text\":\"b\"},{\"text\":\"c\"},"
                 "{\"text\":\"d\"}]}"),
           ERD_OK, "max_hypotheses hypotheses");
    is_int(req.n_hyps, 4, "all four kept");

    /* strings survive the JSON tree being freed */
    char body[] = "{\"catalog\":\"shelf\",\"text\":\"persistent\"}";
    is_int(parse(body), ERD_OK, "parse from a mutable buffer");
    memset(body, 'X', sizeof body - 1);
    is_str(req.catalog, "shelf", "catalog lives in the pool");
    is_str(req.hyps[0].text, "persistent", "text lives in the pool");
}

static void test_json_errors(void)
{
    is_int(parse("{\"catalog\":\"c\",\"text\":\"x\""), ERD_EJSON, "truncated object");
    ok(mentions("malformed JSON"), "message says malformed (%s)", diag.msg);
    ok(untouched(), "ret untouched");
    is_int(parse(""), ERD_EJSON, "empty body");
    is_int(parse_n(NULL, 0), ERD_EJSON, "NULL body of length 0");
    is_int(parse("{catalog:1}"), ERD_EJSON, "unquoted key");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"x\"} trailing"), ERD_EJSON, "trailing garbage");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"x\",}"), ERD_EJSON, "trailing comma");
    is_int(parse("{\"catalog\":\"c\",\"text\":'x'}"), ERD_EJSON, "single quotes");
    static const char rawnul[] = "{\"catalog\":\"c\",\"text\":\"a\0b\"}";
    is_int(parse_n(rawnul, sizeof rawnul - 1), ERD_EJSON, "raw NUL byte in string");

    /* deeply nested junk must fail cleanly, not overflow the stack */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t o = (size_t)sprintf(deep, "{\"catalog\":\"c\",\"text\":\"x\",\"junk\":");
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    is_int(parse_n(deep, o), ERD_EJSON, "100000-deep nesting rejected");
    free(deep);

    is_int(parse("[{\"catalog\":\"c\",\"text\":\"x\"}]"), ERD_EINVAL, "top-level array");
    ok(mentions("JSON object"), "message says object (%s)", diag.msg);
    is_int(parse("\"just a string\""), ERD_EINVAL, "top-level string");
    is_int(parse("null"), ERD_EINVAL, "top-level null");
    is_int(parse("42"), ERD_EINVAL, "top-level number");

    is_int(parse("{\"catalog\":\"c\",\"catalog\":\"d\",\"text\":\"x\"}"), ERD_EINVAL, "duplicate key");
    ok(mentions("duplicate"), "message says duplicate (%s)", diag.msg);
}

static void test_utf8(void)
{
    is_int(parse("{\"catalog\":\"c\",\"text\":\"caf\xe9\"}"), ERD_EUTF8, "latin-1 byte in text");
    ok(untouched(), "ret untouched");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"\xff\xfe\"}"), ERD_EUTF8, "0xff 0xfe");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"\xc0\xaf\"}"), ERD_EUTF8, "overlong encoding");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"\xed\xa0\x80\"}"), ERD_EUTF8, "encoded surrogate");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"\xe6\x97\"}"), ERD_EUTF8, "truncated sequence");
    is_int(parse("{\"catalog\":\"\x80\",\"text\":\"x\"}"), ERD_EUTF8, "invalid byte in catalog");
    is_int(parse("{\"\xfa\":1,\"catalog\":\"c\",\"text\":\"x\"}"), ERD_EUTF8, "invalid byte in a key");
    is_int(parse("{\"catalog\":\"c\",\"text\":\"\\ud800\"}"), ERD_EUTF8, "lone surrogate escape");
    ok(mentions("surrogate"), "message says surrogate (%s)", diag.msg);
    is_int(parse("{\"catalog\":\"c\",\"text\":\"a\\u0000b\"}"), ERD_EINVAL, "escaped NUL refused");
    ok(mentions("\\u0000"), "message names \\u0000 (%s)", diag.msg);
}

static void test_field_errors(void)
{
    fails("{\"text\":\"x\"}", ERD_EINVAL, "catalog", "missing catalog");
    fails("{\"catalog\":null,\"text\":\"x\"}", ERD_EINVAL, "catalog", "null catalog");
    fails("{\"catalog\":7,\"text\":\"x\"}", ERD_EINVAL, "catalog must be a string", "numeric catalog");
    fails("{\"catalog\":[\"c\"],\"text\":\"x\"}", ERD_EINVAL, "catalog", "array catalog");
    fails("{\"catalog\":\"\",\"text\":\"x\"}", ERD_EINVAL, "catalog", "empty catalog");
    char longcat[SRV_MAX_CATALOG_BYTES + 64];
    memset(longcat, 0, sizeof longcat);
    strcpy(longcat, "{\"catalog\":\"");
    memset(longcat + strlen(longcat), 'c', SRV_MAX_CATALOG_BYTES + 1);
    strcat(longcat, "\",\"text\":\"x\"}");
    fails(longcat, ERD_ETOOLONG, "catalog", "over-long catalog");

    fails("{\"catalog\":\"c\"}", ERD_EINVAL, "hypotheses", "neither text nor hypotheses");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"hypotheses\":[{\"text\":\"y\"}]}", ERD_EINVAL, "text",
          "both text and hypotheses");
    fails("{\"catalog\":\"c\",\"hypotheses\":{\"text\":\"y\"}}", ERD_EINVAL, "hypotheses must be an array",
          "hypotheses object");
    fails("{\"catalog\":\"c\",\"hypotheses\":\"y\"}", ERD_EINVAL, "hypotheses must be an array",
          "hypotheses string");
    fails("{\"catalog\":\"c\",\"hypotheses\":[]}", ERD_EEMPTY, "hypotheses", "empty hypotheses");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},{\"text\":\"b\"},{\"text\":\"c\"},"
          "{\"text\":\"d\"},{\"text\":\"e\"}]}",
          ERD_ETOOLONG, "hypotheses", "too many hypotheses");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},\"b\"]}", ERD_EINVAL,
          "hypotheses[1] must be an object", "string hypothesis");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},{\"score\":1}]}", ERD_EINVAL,
          "hypotheses[1].text", "hypothesis without text");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},{\"text\":\"b\"},{\"text\":3}]}",
          ERD_EINVAL, "hypotheses[2].text must be a string", "numeric text");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":null}]}", ERD_EINVAL,
          "hypotheses[0].text must be a string", "null text");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\",\"score\":\"-12\"}]}", ERD_EINVAL,
          "hypotheses[0].score must be a number", "string score");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\",\"score\":true}]}", ERD_EINVAL,
          "hypotheses[0].score", "boolean score");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"\"}]}", ERD_EEMPTY, "hypotheses[0].text",
          "empty text");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"a\"},{\"text\":\" \\t\\n \"}]}", ERD_EEMPTY,
          "hypotheses[1].text", "whitespace-only text");
    fails("{\"catalog\":\"c\",\"text\":\"\xc2\xa0\xe3\x80\x80\xe2\x80\x8b\"}", ERD_EEMPTY, "text",
          "unicode-whitespace-only bare text");
    fails("{\"catalog\":\"c\",\"text\":\"\"}", ERD_EEMPTY, "text", "empty bare text");
    fails("{\"catalog\":\"c\",\"text\":5}", ERD_EINVAL, "text must be a string", "numeric bare text");
    fails("{\"catalog\":\"c\",\"text\":\"012345678901234567890123456789012\"}", ERD_ETOOLONG, "text",
          "bare text one byte over the limit");
    fails("{\"catalog\":\"c\",\"hypotheses\":[{\"text\":\"ok\"},"
          "{\"text\":\"0123456789012345678901234567890\\u00e9\\u00e9\"}]}",
          ERD_ETOOLONG, "hypotheses[1].text", "multibyte text over the byte limit");
}

static void test_k(void)
{
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":0}", ERD_EINVAL, "k must be", "k = 0");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":-3}", ERD_EINVAL, "k must be", "negative k");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":51}", ERD_EINVAL, "k must be", "k = max_k + 1");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":2.5}", ERD_EINVAL, "k must be", "fractional k");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":5.0}", ERD_EINVAL, "k must be", "k written as a real");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":\"5\"}", ERD_EINVAL, "k must be", "k as a string");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":true}", ERD_EINVAL, "k must be", "k as a boolean");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":[5]}", ERD_EINVAL, "k must be", "k as an array");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":9223372036854775807}", ERD_EINVAL, "k must be",
          "k = INT64_MAX");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":-9223372036854775808}", ERD_EINVAL, "k must be",
          "k = INT64_MIN");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":4294967301}", ERD_EINVAL, "k must be",
          "k that wraps to 5 in 32 bits");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":1e300}", ERD_EINVAL, "k must be", "k = 1e300");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":99999999999999999999999999}", ERD_EINVAL, "number",
          "k beyond int64");
    fails("{\"catalog\":\"c\",\"text\":\"x\",\"k\":1e999}", ERD_EINVAL, "number", "k beyond double");
}

static void test_pool_budget(void)
{
    /* a pool too small for the copies must fail with ENOMEM, not crash */
    srv_pool *tiny = NULL;
    srv_pool_create(256, 400, &tiny);
    char body[2048];
    strcpy(body, "{\"catalog\":\"c\",\"hypotheses\":[");
    for (int i = 0; i < 4; i++) {
        strcat(body, i ? ",{\"text\":\"" : "{\"text\":\"");
        strcat(body, "abcdefghijklmnopqrstuvwxyz01234");
        strcat(body, "\"}");
    }
    strcat(body, "]}");
    srv_resolve_req r;
    erd_diag d = {0};
    is_int(srv_parse_resolve(tiny, body, strlen(body), &limits, &r, &d), ERD_ENOMEM,
           "exhausted pool reported as ENOMEM");
    ok(srv_pool_footprint(tiny) <= 400, "pool cap held during parse");
    srv_pool_destroy(tiny);
}

/* ---- serialisers ---- */

static json_t *load(const char *s, size_t len)
{
    json_error_t e;
    return json_loadb(s, len, 0, &e);
}

static void test_write_results(void)
{
    vix_result res[3] = {
        {.rowid = 1, .ext_id = "goodbooks:1", .name = "The \"Hunger\" Games\\", .score = 0.9375},
        {.rowid = 2, .ext_id = "x\ny\t\x01", .name = "Amélie 日本 \xf0\x9f\x98\x80", .score = 0.5},
        {.rowid = 3, .ext_id = "bad\xff", .name = "</script>", .score = 1e-7},
    };
    char *json = NULL;
    size_t len = 0;
    erd_diag d = {0};
    is_int(srv_write_results(res, 3, &json, &len, &d), ERD_OK, "results serialise");
    is_int(len, strlen(json), "length matches");
    json_t *root = load(json, len);
    ok(root != NULL, "results output is valid JSON: %s", json);
    json_t *arr = json_object_get(root, "results");
    is_int(json_array_size(arr), 3, "three results");
    is_str(json_string_value(json_object_get(json_array_get(arr, 0), "id")), "goodbooks:1", "id");
    is_str(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "The \"Hunger\" Games\\",
           "quotes and backslash round-trip");
    ok(json_real_value(json_object_get(json_array_get(arr, 0), "score")) == 0.9375, "score");
    is_str(json_string_value(json_object_get(json_array_get(arr, 1), "id")), "x\ny\t\x01",
           "control characters round-trip");
    is_str(json_string_value(json_object_get(json_array_get(arr, 1), "name")),
           "Amélie 日本 \xf0\x9f\x98\x80", "unicode round-trips");
    is_str(json_string_value(json_object_get(json_array_get(arr, 2), "id")), "bad\xef\xbf\xbd",
           "invalid UTF-8 replaced by U+FFFD");
    ok(json_number_value(json_object_get(json_array_get(arr, 2), "score")) > 0.9e-7,
       "tiny score keeps its value");
    json_decref(root);
    free(json);

    is_int(srv_write_results(NULL, 0, &json, &len, &d), ERD_OK, "no results");
    is_str(json, "{\"results\":[]}", "empty results array");
    free(json);
}

/* min_score and explain in a request, "match" in the answer, and which
 * threshold decides it. */
static void test_match(void)
{
    is_int(parse("{\"catalog\":\"v\",\"text\":\"a\"}"), ERD_OK, "plain request");
    ok(req.min_score == -1 && !req.explain, "no min_score, no explain by default");
    is_int(parse("{\"catalog\":\"v\",\"text\":\"a\",\"min_score\":0.25,\"explain\":true}"),
           ERD_OK, "min_score and explain");
    ok(req.min_score == 0.25 && req.explain, "both taken");
    is_int(parse("{\"catalog\":\"v\",\"text\":\"a\",\"min_score\":null,\"explain\":null}"),
           ERD_OK, "nulls mean absent");
    ok(req.min_score == -1 && !req.explain, "as if not given");
    fails("{\"catalog\":\"v\",\"text\":\"a\",\"min_score\":1.01}", ERD_EINVAL, "min_score",
          "min_score above 1");
    fails("{\"catalog\":\"v\",\"text\":\"a\",\"min_score\":-0.5}", ERD_EINVAL, "min_score",
          "negative min_score");
    fails("{\"catalog\":\"v\",\"text\":\"a\",\"min_score\":\"0.5\"}", ERD_EINVAL, "min_score",
          "min_score as a string");
    fails("{\"catalog\":\"v\",\"text\":\"a\",\"explain\":1}", ERD_EINVAL, "explain",
          "explain as a number");

    vix_result res[1] = {{.rowid = 1, .ext_id = "a", .name = "A", .score = 0.5}};
    char *json = NULL;
    size_t len = 0;
    is_int(srv_write_answer_plain(res, 1, 0, &json, &len, &diag), ERD_OK, "answer serialises");
    json_t *root = load(json, len);
    ok(json_is_false(json_object_get(root, "match")) &&
           json_array_size(json_object_get(root, "results")) == 1,
       "\"match\": false with the candidates still listed (%s)", json);
    json_decref(root);
    free(json);
    is_int(srv_write_answer_plain(NULL, 0, 1, &json, &len, &diag), ERD_OK, "empty answer");
    is_str(json, "{\"results\":[],\"match\":true}", "match after the list");
    free(json);

    /* min_score beats the configuration, a configured number beats the
     * calibration's own (which needs a resolver: test-calib) */
    ok(srv_no_match_threshold("auto,v=0.4", 0.1, NULL, NULL, "v") == 0.1, "min_score first");
    ok(srv_no_match_threshold("auto,v=0.4", -1, NULL, NULL, "v") == 0.4, "then the catalog's");
    ok(srv_no_match_threshold("0.3,v=0.4", -1, NULL, NULL, "w") == 0.3, "then the global");
}

static void test_write_error(void)
{
    char *json = NULL;
    size_t len = 0;
    is_int(srv_write_error(ERD_ENOCATALOG, "unknown catalog \"vi\\deo\"\n", &json, &len), ERD_OK,
           "error serialises");
    json_t *root = load(json, len);
    ok(root != NULL, "error output is valid JSON: %s", json);
    json_t *err = json_object_get(root, "error");
    is_str(json_string_value(json_object_get(err, "code")), "unknown_catalog", "wire code");
    is_str(json_string_value(json_object_get(err, "message")), "unknown catalog \"vi\\deo\"\n",
           "message escaped and round-trips");
    json_decref(root);
    free(json);

    is_int(srv_write_error(ERD_ETOOLARGE, NULL, &json, &len), ERD_OK, "NULL message");
    root = load(json, len);
    err = json_object_get(root, "error");
    is_str(json_string_value(json_object_get(err, "code")), "body_too_large", "413 wire code");
    is_str(json_string_value(json_object_get(err, "message")), erd_strerror(ERD_ETOOLARGE),
           "default message");
    json_decref(root);
    free(json);

    is_int(srv_write_error(ERD_EINVAL, "bad \xc3 byte", &json, &len), ERD_OK, "invalid UTF-8 message");
    root = load(json, len);
    ok(root != NULL, "still valid JSON: %s", json);
    json_decref(root);
    free(json);

    char longmsg[5000];
    memset(longmsg, '"', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    is_int(srv_write_error(ERD_EINVAL, longmsg, &json, &len), ERD_OK, "very long message");
    root = load(json, len);
    ok(root != NULL, "long message cut but valid JSON");
    ok(len < 4000, "long message bounded (%zu bytes)", len);
    json_decref(root);
    free(json);
}

static void test_escape(void)
{
    char out[16];
    size_t n = srv_json_escape(out, sizeof out, "ab\"c", 4);
    is_str(out, "ab\\\"c", "quote escaped");
    is_int(n, 5, "length returned");
    n = srv_json_escape(out, 8, "\x01\x01", 2);
    is_str(out, "\\u0001", "cut at an escape boundary, never mid-escape");
    n = srv_json_escape(out, 5, "ab\xe6\x97\xa5", 5);
    is_str(out, "ab", "cut before a multibyte character that does not fit");
    n = srv_json_escape(out, 1, "abc", 3);
    is_str(out, "", "cap of one gives the empty string");
    is_int(n, 0, "nothing written");
}

static void test_unescape(void)
{
    char s[64];
    bool ctl = true;
    strcpy(s, "/v1/catalogs/a%2Fb/x%41");
    is_int((int)srv_http_unescape(s, &ctl), 19, "decoded length");
    is_str(s, "/v1/catalogs/a/b/xA", "escapes decoded as libmicrohttpd does");
    ok(!ctl, "no control byte");
    strcpy(s, "/healthz%00x");
    srv_http_unescape(s, &ctl);
    ok(ctl, "%%00 is flagged");
    ok(memcmp(s, "/healthz\0x", 10) == 0, "and decoded in place, not cut");
    const char *bad[] = {"/a%0a", "/a%0D", "/a%7f", "/a%1B", "/a\x01b", "/a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(s, bad[i]);
        ctl = false;
        srv_http_unescape(s, &ctl);
        ok(ctl, "control byte flagged in %s", bad[i]);
    }
    strcpy(s, "/a%zz%4%");
    ctl = true;
    is_int((int)srv_http_unescape(s, &ctl), 8, "malformed escapes kept as they are");
    ok(!ctl && strcmp(s, "/a%zz%4%") == 0, "unchanged: %s", s);
    strcpy(s, "/caf%C3%A9");
    srv_http_unescape(s, &ctl);
    ok(!ctl && strcmp(s, "/caf\xc3\xa9") == 0, "UTF-8 bytes are not control bytes");
}

static void test_framing(void)
{
    erd_diag d;
    const char *cl1[] = {"42"}, *cl2[] = {"42", "42"}, *cl_list[] = {"42, 42"}, *cl_neg[] = {"-1"},
               *cl_big[] = {"99999999999999999999"}, *cl_empty[] = {""};
    const char *te_chunked[] = {"chunked"}, *te_gzip[] = {"gzip, chunked"},
               *te_id[] = {"identity"}, *te_twice[] = {"chunked", "chunked"},
               *te_upper[] = {" Chunked "}, *te_comma[] = {","};
    is_int(srv_check_framing(NULL, 0, NULL, 0, &d), ERD_OK, "no body");
    is_int(srv_check_framing(cl1, 1, NULL, 0, &d), ERD_OK, "one Content-Length");
    is_int(srv_check_framing(cl2, 2, NULL, 0, &d), ERD_EBADREQUEST, "two Content-Lengths, even equal");
    is_int(srv_check_framing(cl_list, 1, NULL, 0, &d), ERD_EBADREQUEST, "a Content-Length list");
    is_int(srv_check_framing(cl_neg, 1, NULL, 0, &d), ERD_EBADREQUEST, "negative Content-Length");
    is_int(srv_check_framing(cl_big, 1, NULL, 0, &d), ERD_EBADREQUEST, "20-digit Content-Length");
    is_int(srv_check_framing(cl_empty, 1, NULL, 0, &d), ERD_EBADREQUEST, "empty Content-Length");
    is_int(srv_check_framing(NULL, 0, te_chunked, 1, &d), ERD_OK, "chunked");
    is_int(srv_check_framing(NULL, 0, te_upper, 1, &d), ERD_OK, "chunked in any case");
    is_int(srv_check_framing(cl1, 1, te_chunked, 1, &d), ERD_EBADREQUEST, "Content-Length and chunked");
    is_int(srv_check_framing(NULL, 0, te_gzip, 1, &d), ERD_EUNSUPPORTED, "gzip: 501");
    ok(strstr(d.msg, "gzip") != NULL, "the message names the coding: %s", d.msg);
    is_int(srv_check_framing(NULL, 0, te_id, 1, &d), ERD_EUNSUPPORTED, "identity: 501");
    is_int(srv_check_framing(NULL, 0, te_twice, 2, &d), ERD_EBADREQUEST, "chunked twice");
    is_int(srv_check_framing(NULL, 0, te_comma, 1, &d), ERD_EBADREQUEST, "an empty coding list");
    is_int(erd_http_status(ERD_EUNSUPPORTED), 501, "not implemented is 501");
    is_int(erd_http_status(ERD_EBADREQUEST), 400, "bad request is 400");
}

int main(void)
{
    test_valid();
    test_json_errors();
    test_utf8();
    test_field_errors();
    test_k();
    test_pool_budget();
    test_write_results();
    test_match();
    test_write_error();
    test_escape();
    test_unescape();
    test_framing();
    srv_pool_destroy(pool);
    return tap_done();
}
