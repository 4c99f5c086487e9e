#include "tests/integration/oas.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define OAS_MAX_DEPTH 64

static bool oas__fail(char *err, size_t cap, const char *where, const char *fmt, const char *a,
                      const char *b)
{
    char what[256];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    snprintf(err, cap, "%s: %s", where[0] ? where : "(root)", what);
    return false;
}

/* "#/components/schemas/Result" -> that node of doc. */
static const json_t *oas__ref(const json_t *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    const json_t *node = doc;
    const char *p = ref + 2;
    while (node && *p) {
        char key[128];
        size_t n = strcspn(p, "/");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        node = json_object_get(node, key);
        p += n;
        if (*p == '/')
            p++;
    }
    return node;
}

static bool oas__type_is(const char *type, const json_t *v)
{
    if (!strcmp(type, "object"))
        return json_is_object(v);
    if (!strcmp(type, "array"))
        return json_is_array(v);
    if (!strcmp(type, "string"))
        return json_is_string(v);
    if (!strcmp(type, "boolean"))
        return json_is_boolean(v);
    if (!strcmp(type, "null"))
        return json_is_null(v);
    if (!strcmp(type, "number"))
        return json_is_number(v);
    if (!strcmp(type, "integer"))
        return json_is_integer(v) ||
               (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v));
    return false;
}

static size_t oas__utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Keywords that carry no constraint, and those this validator checks. */
static const char *const oas__known[] = {
    "type", "nullable", "required", "properties", "additionalProperties", "items", "enum",
    "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "$ref",
    "description", "title", "example", "examples", "default", "format", "readOnly", "writeOnly",
    "deprecated", NULL};

static bool oas__run(const json_t *doc, const json_t *schema, const json_t *v, const char *where,
                     int depth, char *err, size_t cap)
{
    if (depth > OAS_MAX_DEPTH)
        return oas__fail(err, cap, where, "schema nested too deeply (a $ref cycle?)", NULL, NULL);
    if (!json_is_object(schema))
        return oas__fail(err, cap, where, "schema is not an object", NULL, NULL);
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)schema, key, val) {
        bool known = false;
        for (size_t i = 0; oas__known[i]; i++)
            known = known || !strcmp(key, oas__known[i]);
        if (!known && strncmp(key, "x-", 2) != 0)
            return oas__fail(err, cap, where, "unsupported schema keyword \"%s\"", key, NULL);
    }
    const json_t *ref = json_object_get(schema, "$ref");
    if (ref) {
        const json_t *target = json_is_string(ref) ? oas__ref(doc, json_string_value(ref)) : NULL;
        if (!target)
            return oas__fail(err, cap, where, "unresolvable $ref %s", json_string_value(ref), NULL);
        return oas__run(doc, target, v, where, depth + 1, err, cap);
    }
    if (json_is_null(v) && json_is_true(json_object_get(schema, "nullable")))
        return true;

    const json_t *type = json_object_get(schema, "type");
    if (type) {
        bool match = false;
        if (json_is_string(type)) {
            match = oas__type_is(json_string_value(type), v);
        } else if (json_is_array(type)) {
            size_t i;
            json_t *t;
            json_array_foreach(type, i, t) match = match || (json_is_string(t) && oas__type_is(json_string_value(t), v));
        }
        if (!match) {
            char *want = json_dumps(type, JSON_ENCODE_ANY | JSON_COMPACT);
            char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            char gs[64];
            snprintf(gs, sizeof gs, "%s", got ? got : "?");
            bool r = oas__fail(err, cap, where, "expected type %s, got %s", want, gs);
            free(want);
            free(got);
            return r;
        }
    }

    const json_t *en = json_object_get(schema, "enum");
    if (en) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e) found = found || json_equal(e, (json_t *)v);
        if (!found) {
            char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            bool r = oas__fail(err, cap, where, "%s is not one of the enum values", got, NULL);
            free(got);
            return r;
        }
    }

    if (json_is_number(v)) {
        double x = json_number_value(v);
        const json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
        char num[64];
        snprintf(num, sizeof num, "%.17g", x);
        if (mn && x < json_number_value(mn))
            return oas__fail(err, cap, where, "%s is below the minimum", num, NULL);
        if (mx && x > json_number_value(mx))
            return oas__fail(err, cap, where, "%s is above the maximum", num, NULL);
    }

    if (json_is_string(v)) {
        size_t n = oas__utf8_chars(json_string_value(v));
        const json_t *mn = json_object_get(schema, "minLength"), *mx = json_object_get(schema, "maxLength");
        if (mn && (json_int_t)n < json_integer_value(mn))
            return oas__fail(err, cap, where, "string shorter than minLength", NULL, NULL);
        if (mx && (json_int_t)n > json_integer_value(mx))
            return oas__fail(err, cap, where, "string longer than maxLength", NULL, NULL);
    }

    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        const json_t *mn = json_object_get(schema, "minItems"), *mx = json_object_get(schema, "maxItems");
        if (mn && (json_int_t)n < json_integer_value(mn))
            return oas__fail(err, cap, where, "fewer items than minItems", NULL, NULL);
        if (mx && (json_int_t)n > json_integer_value(mx))
            return oas__fail(err, cap, where, "more items than maxItems", NULL, NULL);
        const json_t *items = json_object_get(schema, "items");
        if (items) {
            size_t i;
            json_t *e;
            json_array_foreach((json_t *)v, i, e) {
                char sub[512];
                snprintf(sub, sizeof sub, "%s[%zu]", where, i);
                if (!oas__run(doc, items, e, sub, depth + 1, err, cap))
                    return false;
            }
        }
    }

    if (json_is_object(v)) {
        const json_t *req = json_object_get(schema, "required");
        size_t i;
        json_t *r;
        json_array_foreach((json_t *)req, i, r) {
            if (json_is_string(r) && !json_object_get(v, json_string_value(r)))
                return oas__fail(err, cap, where, "required property \"%s\" missing", json_string_value(r), NULL);
        }
        const json_t *props = json_object_get(schema, "properties");
        const json_t *addl = json_object_get(schema, "additionalProperties");
        const char *k;
        json_t *pv;
        json_object_foreach((json_t *)v, k, pv) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s.%s", where, k);
            const json_t *ps = json_object_get(props, k);
            if (ps) {
                if (!oas__run(doc, ps, pv, sub, depth + 1, err, cap))
                    return false;
            } else if (json_is_false(addl)) {
                return oas__fail(err, cap, where, "property \"%s\" is not allowed", k, NULL);
            } else if (json_is_object(addl)) {
                if (!oas__run(doc, addl, pv, sub, depth + 1, err, cap))
                    return false;
            }
        }
    }
    return true;
}

bool oas_validate(const json_t *doc, const json_t *schema, const json_t *instance, char *err, size_t cap)
{
    if (cap)
        err[0] = '\0';
    return oas__run(doc, schema, instance, "", 0, err, cap);
}

static void oas__lower(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

static bool oas__error_body(const json_t *doc, const char *body, size_t len, char *err, size_t cap)
{
    json_error_t je;
    json_t *v = json_loadb(body ? body : "", len, 0, &je);
    if (!v) {
        snprintf(err, cap, "body is not JSON: %s", je.text);
        return false;
    }
    bool r = oas_validate(doc, oas__ref(doc, "#/components/schemas/Error"), v, err, cap);
    json_decref(v);
    return r;
}

/* Whether a concrete path matches a templated one ("/v1/catalogs/{name}"),
 * a {param} taking one non-empty segment.  The query string is ignored. */
static bool oas__path_matches(const char *tpl, const char *path)
{
    while (*tpl) {
        if (*tpl == '{') {
            const char *close = strchr(tpl, '}');
            size_t seg = strcspn(path, "/?");
            if (!close || seg == 0)
                return false;
            tpl = close + 1;
            path += seg;
            continue;
        }
        if (*tpl++ != *path++)
            return false;
    }
    return *path == '\0' || *path == '?';
}

/* The path item a request path falls under: an exact entry first, else
 * the first template it matches. */
static const json_t *oas__path_item(const json_t *doc, const char *path)
{
    const json_t *paths = json_object_get(doc, "paths");
    const json_t *item = json_object_get(paths, path);
    if (item)
        return item;
    const char *tpl;
    const json_t *v;
    json_object_foreach((json_t *)paths, tpl, v) {
        if (strchr(tpl, '{') && oas__path_matches(tpl, path))
            return v;
    }
    return NULL;
}

bool oas_check_response(const json_t *doc, const char *method, const char *path, long status,
                        const char *content_type, const char *body, size_t body_len, char *err,
                        size_t cap)
{
    char m[16];
    oas__lower(m, sizeof m, method);
    const json_t *item = oas__path_item(doc, path);
    if (!item) {
        if (status != 404) {
            snprintf(err, cap, "%s %s is not documented, yet answered %ld (not 404)", method, path, status);
            return false;
        }
        return oas__error_body(doc, body, body_len, err, cap);
    }
    const json_t *op = json_object_get(item, m);
    if (!op) {
        if (status != 405) {
            snprintf(err, cap, "%s %s is not documented, yet answered %ld (not 405)", method, path, status);
            return false;
        }
        return oas__error_body(doc, body, body_len, err, cap);
    }
    char code[8];
    snprintf(code, sizeof code, "%ld", status);
    const json_t *resp = json_object_get(json_object_get(op, "responses"), code);
    if (!resp) {
        snprintf(err, cap, "%s %s: status %ld is not documented", method, path, status);
        return false;
    }
    const json_t *content = json_object_get(resp, "content");
    if (!content)
        return true; /* documented without a body */
    const char *mt;
    const json_t *media;
    json_object_foreach((json_t *)content, mt, media) {
        size_t n = strlen(mt);
        if (!content_type || strncasecmp(content_type, mt, n) != 0 ||
            (content_type[n] != '\0' && content_type[n] != ';'))
            continue;
        const json_t *schema = json_object_get(media, "schema");
        if (strcmp(mt, "application/json") != 0) {
            /* A text body is checked as the string it is. */
            if (!schema)
                return true;
            json_t *text = json_stringn_nocheck(body ? body : "", body ? body_len : 0);
            bool r = text && oas_validate(doc, schema, text, err, cap);
            json_decref(text);
            return r;
        }
        json_error_t je;
        json_t *v = json_loadb(body ? body : "", body_len, 0, &je);
        if (!v) {
            snprintf(err, cap, "%s %s %ld: body is not JSON: %s", method, path, status, je.text);
            return false;
        }
        char inner[768];
        bool r = oas_validate(doc, schema, v, inner, sizeof inner);
        json_decref(v);
        if (!r)
            snprintf(err, cap, "%s %s %ld: %s", method, path, status, inner);
        return r;
    }
    snprintf(err, cap, "%s %s %ld: Content-Type %s is not documented", method, path, status,
             content_type ? content_type : "(none)");
    return false;
}

bool oas_check_request(const json_t *doc, const char *method, const char *path, const char *body,
                       char *err, size_t cap)
{
    char m[16];
    oas__lower(m, sizeof m, method);
    const json_t *op = json_object_get(oas__path_item(doc, path), m);
    const json_t *schema = json_object_get(
        json_object_get(json_object_get(json_object_get(op, "requestBody"), "content"), "application/json"),
        "schema");
    if (!schema) {
        snprintf(err, cap, "%s %s has no JSON request body documented", method, path);
        return false;
    }
    json_error_t je;
    json_t *v = json_loads(body, 0, &je);
    if (!v) {
        snprintf(err, cap, "request is not JSON: %s", je.text);
        return false;
    }
    bool r = oas_validate(doc, schema, v, err, cap);
    json_decref(v);
    return r;
}
