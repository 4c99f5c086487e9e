/* Fuzz target: the resolve request parser and the JSON writers behind it.
 * Any input must give either a request within the limits or an error code
 * from the table, never a crash, leak or over-read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "server/http/srv_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg_config cfg;
    srv_limits limits;
    srv_pool *pool = NULL;
    srv_resolve_req req;
    erd_diag diag = {0};

    cfg_defaults(&cfg);
    srv_limits_from_config(&cfg, &limits);
    if (srv_pool_create(4096, 1u << 20, &pool) < 0)
        abort();
    int rc = srv_parse_resolve(pool, (const char *)data, size, &limits, &req, &diag);
    if (rc == ERD_OK) {
        if (!req.catalog || req.n_hyps == 0 || req.n_hyps > limits.max_hypotheses ||
            req.k == 0 || req.k > limits.max_k)
            abort();
        for (size_t i = 0; i < req.n_hyps; i++)
            if (strlen(req.hyps[i].text) > limits.max_text_bytes)
                abort();
    } else if (erd_http_status(rc) != 400) {
        abort(); /* a request can only be the client's fault */
    }
    char *json = NULL;
    size_t len = 0;
    if (srv_write_error(rc, rc ? erd_diag_message(&diag, rc) : "ok", &json, &len) < 0)
        abort();
    free(json);
    srv_pool_destroy(pool);
    return 0;
}
