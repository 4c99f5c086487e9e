/* A small JSON Schema validator for the subset proto/openapi.json uses
 * (OpenAPI 3.0 schema objects): type (one name or a list; "integer" means a
 * number without a fraction), nullable, required, properties,
 * additionalProperties (boolean or schema), items, enum (strings, numbers,
 * booleans, null), minimum/maximum, minItems/maxItems, minLength/maxLength
 * (in UTF-8 characters) and $ref to "#/..." within the document.  Any other
 * keyword that would constrain an instance (oneOf, pattern, ...) is an
 * error rather than silently ignored, so the document cannot claim more
 * than is checked. */
#ifndef OAS_H
#define OAS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Validates instance against schema, a node of doc.  On failure writes
 * "PATH: reason" into err[0..cap) and returns false. */
bool oas_validate(const json_t *doc, const json_t *schema, const json_t *instance, char *err, size_t cap);

/* Checks one HTTP exchange against the OpenAPI document: the path and
 * method must be documented (else the status must be 404 for an unknown
 * path, 405 for an unknown method, with an Error body), the status must be
 * listed for the operation, the Content-Type must be one it declares, and a
 * JSON body must validate against the declared schema. */
bool oas_check_response(const json_t *doc, const char *method, const char *path, long status,
                        const char *content_type, const char *body, size_t body_len, char *err,
                        size_t cap);

/* Validates a request body against the operation's requestBody schema. */
bool oas_check_request(const json_t *doc, const char *method, const char *path, const char *body,
                       char *err, size_t cap);

#endif
