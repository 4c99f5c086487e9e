/* The OpenAPI subset validator on small documents: each keyword accepts
 * what it should and refuses what it should, and keywords it does not
 * implement are errors, not silently ignored. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/oas.h"
#include "tests/unit/tap.h"

static json_t *doc;

static bool valid(const char *schema, const char *instance, char *err, size_t cap)
{
    json_error_t je;
    json_t *s = json_loads(schema, 0, &je);
    json_t *v = json_loads(instance, JSON_DECODE_ANY, &je);
    if (!s || !v) {
        snprintf(err, cap, "test input does not parse: %s", je.text);
        json_decref(s);
        json_decref(v);
        return false;
    }
    bool r = oas_validate(doc, s, v, err, cap);
    json_decref(s);
    json_decref(v);
    return r;
}

#define PASS(schema, inst) do { char e[512] = ""; ok(valid(schema, inst, e, sizeof e), "accepts %s against %s (%s)", inst, schema, e); } while (0)
#define FAIL(schema, inst) do { char e[512] = ""; ok(!valid(schema, inst, e, sizeof e) && e[0], "refuses %s against %s: %s", inst, schema, e); } while (0)

int main(void)
{
    json_error_t je;
    doc = json_loads("{\"components\":{\"schemas\":{"
                     "\"N\":{\"type\":\"integer\",\"minimum\":1},"
                     "\"Loop\":{\"$ref\":\"#/components/schemas/Loop\"},"
                     "\"Obj\":{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"$ref\":\"#/components/schemas/N\"}}}}},"
                     "\"paths\":{\"/x\":{\"get\":{\"responses\":{"
                     "\"200\":{\"content\":{\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/Obj\"}}}},"
                     "\"204\":{\"description\":\"no body\"}}}}}}",
                     0, &je);
    ok(doc != NULL, "test document parses");

    PASS("{\"type\":\"string\"}", "\"x\"");
    FAIL("{\"type\":\"string\"}", "1");
    PASS("{\"type\":\"integer\"}", "3");
    PASS("{\"type\":\"integer\"}", "3.0");
    FAIL("{\"type\":\"integer\"}", "3.5");
    PASS("{\"type\":\"number\"}", "3.5");
    FAIL("{\"type\":\"number\"}", "\"3\"");
    PASS("{\"type\":\"boolean\"}", "false");
    FAIL("{\"type\":\"object\"}", "[]");
    FAIL("{\"type\":\"array\"}", "{}");
    PASS("{\"type\":[\"string\",\"null\"]}", "null");
    FAIL("{\"type\":\"string\"}", "null");
    PASS("{\"type\":\"string\",\"nullable\":true}", "null");
    PASS("{\"enum\":[\"a\",\"b\"]}", "\"b\"");
    FAIL("{\"enum\":[\"a\",\"b\"]}", "\"c\"");
    PASS("{\"minimum\":0,\"maximum\":1}", "1");
    FAIL("{\"minimum\":0,\"maximum\":1}", "1.0000001");
    FAIL("{\"minimum\":0,\"maximum\":1}", "-0.1");
    PASS("{\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
    FAIL("{\"minLength\":2}", "\"\xc3\xa9\"");
    FAIL("{\"maxLength\":3}", "\"abcd\"");
    PASS("{\"type\":\"array\",\"minItems\":1,\"maxItems\":2,\"items\":{\"type\":\"integer\"}}", "[1,2]");
    FAIL("{\"type\":\"array\",\"minItems\":1}", "[]");
    FAIL("{\"type\":\"array\",\"maxItems\":2}", "[1,2,3]");
    FAIL("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1,\"2\"]");
    PASS("{\"type\":\"object\",\"required\":[\"a\"]}", "{\"a\":1}");
    FAIL("{\"type\":\"object\",\"required\":[\"a\"]}", "{\"b\":1}");
    PASS("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":\"x\",\"z\":1}");
    FAIL("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":1}");
    FAIL("{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{\"a\":1,\"z\":1}");
    FAIL("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}", "{\"z\":1}");
    PASS("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}", "{\"z\":\"1\"}");
    PASS("{\"$ref\":\"#/components/schemas/Obj\"}", "{\"a\":2}");
    FAIL("{\"$ref\":\"#/components/schemas/Obj\"}", "{\"a\":0}");
    FAIL("{\"$ref\":\"#/components/schemas/Nope\"}", "1");
    FAIL("{\"$ref\":\"#/components/schemas/Loop\"}", "1");
    FAIL("{\"oneOf\":[{\"type\":\"string\"}]}", "\"x\"");
    FAIL("{\"type\":\"string\",\"pattern\":\"^a\"}", "\"a\"");
    PASS("{\"type\":\"string\",\"description\":\"d\",\"x-note\":1,\"example\":\"e\"}", "\"a\"");

    char err[512];
    ok(oas_check_response(doc, "GET", "/x", 200, "application/json; charset=utf-8", "{\"a\":1}", 7, err, sizeof err),
       "response with a parameterised content type (%s)", err);
    ok(!oas_check_response(doc, "GET", "/x", 200, "application/json", "{\"a\":0}", 7, err, sizeof err),
       "response body out of schema: %s", err);
    ok(!oas_check_response(doc, "GET", "/x", 200, "text/html", "{\"a\":1}", 7, err, sizeof err),
       "undocumented content type: %s", err);
    ok(!oas_check_response(doc, "GET", "/x", 500, "application/json", "{}", 2, err, sizeof err),
       "undocumented status: %s", err);
    ok(!oas_check_response(doc, "GET", "/x", 200, "application/json", "{\"a\":", 5, err, sizeof err),
       "body that is not JSON: %s", err);
    ok(oas_check_response(doc, "GET", "/x", 204, NULL, "", 0, err, sizeof err), "documented without a body");
    ok(!oas_check_response(doc, "GET", "/y", 200, "application/json", "{}", 2, err, sizeof err),
       "undocumented path answering 200: %s", err);
    ok(!oas_check_response(doc, "PUT", "/x", 200, "application/json", "{}", 2, err, sizeof err),
       "undocumented method answering 200: %s", err);
    json_decref(doc);

    /* Templated paths: a {param} takes exactly one segment. */
    doc = json_loads("{\"paths\":{\"/t/{id}\":{\"get\":{\"responses\":{\"200\":{\"description\":\"d\"}}}},"
                     "\"/t/{id}/x\":{\"get\":{\"responses\":{\"204\":{\"description\":\"d\"}}}}}}",
                     0, &je);
    ok(doc && oas_check_response(doc, "GET", "/t/abc", 200, NULL, "", 0, err, sizeof err),
       "a template matches one segment (%s)", err);
    ok(oas_check_response(doc, "GET", "/t/abc/x", 204, NULL, "", 0, err, sizeof err),
       "a template with a tail (%s)", err);
    ok(!oas_check_response(doc, "GET", "/t/abc/x", 200, NULL, "", 0, err, sizeof err),
       "the tail's own statuses apply: %s", err);
    ok(!oas_check_response(doc, "GET", "/t/a/b", 200, NULL, "", 0, err, sizeof err),
       "a parameter never spans two segments: %s", err);
    ok(!oas_check_response(doc, "GET", "/t/", 200, NULL, "", 0, err, sizeof err),
       "nor an empty one: %s", err);
    json_decref(doc);

    /* The real document only uses keywords the validator implements. */
    char path[1024];
    const char *src = getenv("ERD_TEST_SRCDIR");
    snprintf(path, sizeof path, "%s/proto/openapi.json", src ? src : ".");
    doc = json_load_file(path, 0, &je);
    ok(doc != NULL, "proto/openapi.json parses");
    const char *name;
    json_t *schema;
    json_object_foreach(json_object_get(json_object_get(doc, "components"), "schemas"), name, schema) {
        /* Validating null walks every keyword of the schema's top level;
         * an unsupported one is reported whatever the instance. */
        char e[512] = "";
        json_t *v = json_null();
        oas_validate(doc, schema, v, e, sizeof e);
        ok(strstr(e, "unsupported") == NULL, "schema %s uses supported keywords only (%s)", name, e);
    }
    json_decref(doc);
    return tap_done();
}
