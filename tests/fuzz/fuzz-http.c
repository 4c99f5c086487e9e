/* Fuzz target: erd's HTTP front end as a client meets it (libmicrohttpd's
 * request line, header and chunked parsing, then erd's guards: path
 * decoding, framing checks, routing, credentials, deadlines).  Each input
 * is sent as raw bytes to a real server on 127.0.0.1 (an empty database,
 * an admin token, one-second deadlines), the write side is closed, and the
 * reply is read to the end.  Every reply erd writes (it carries
 * X-Request-Id) must be a well-framed HTTP/1.1 response, one after the
 * other; the server must answer or close within the deadlines, and never
 * crash or leak (sanitizer builds).  libmicrohttpd's own error pages are
 * not erd's to frame: checking stops at one (the connection ends there),
 * as it does at the body a reply to HEAD leaves out. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "server/srv_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ__TOKEN "fuzz-admin-token-0123456789"
#define FUZZ__MAX_REPLY (1u << 20)

static srv_http *fuzz__http;
static vix_resolver *fuzz__resolver;
static char fuzz__dir[64];

static void fuzz__teardown(void)
{
    srv_http_stop(fuzz__http);
    vix_resolver_close(fuzz__resolver);
    char path[128];
    snprintf(path, sizeof path, "%s/fuzz.db", fuzz__dir);
    unlink(path);
    rmdir(fuzz__dir);
}

static void fuzz__setup(void)
{
    char db[128];
    vix_store *store = NULL;
    snprintf(fuzz__dir, sizeof fuzz__dir, "/tmp/erd-fuzz-http-XXXXXX");
    if (!mkdtemp(fuzz__dir))
        abort();
    snprintf(db, sizeof db, "%s/fuzz.db", fuzz__dir);
    if (vix_store_open(db, 0, &store, NULL) < 0)
        abort();
    vix_store_close(store);
    vix_resolver_opts ro = {.db_path = db, .rerank = "off", .calibration = "off"};
    cfg_config cfg;
    cfg_defaults(&cfg);
    if (vix_resolver_open(&ro, &fuzz__resolver, NULL) < 0 ||
        cfg_set(&cfg, "listen", "127.0.0.1:0", NULL) < 0 || cfg_set(&cfg, "db", db, NULL) < 0 ||
        cfg_set(&cfg, "admin_token", FUZZ__TOKEN, NULL) < 0 ||
        cfg_set(&cfg, "log_requests", "false", NULL) < 0 ||
        cfg_set(&cfg, "request_timeout_s", "1", NULL) < 0 ||
        cfg_set(&cfg, "header_timeout_s", "1", NULL) < 0 ||
        cfg_set(&cfg, "body_timeout_s", "1", NULL) < 0 ||
        srv_http_start(&cfg, NULL, fuzz__resolver, &fuzz__http, NULL) < 0)
        abort();
    atexit(fuzz__teardown);
}

/* Length of the header line at p (up to CRLF), or -1 when none ends
 * before end. */
static long fuzz__line(const char *p, const char *end)
{
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n')
            return q - p;
    return -1;
}

/* Shows what the server sent before failing the input. */
static void fuzz__fail(const char *why, const char *buf, size_t len)
{
    fprintf(stderr, "fuzz-http: %s; reply (%zu bytes):\n%.*s\n", why, len, (int)(len > 4096 ? 4096 : len),
            buf);
    abort();
}

/* Checks the replies in buf[0..len): a status line, headers, a body of
 * exactly Content-Length bytes, again, up to the end.  Aborts on a reply
 * erd wrote that is not so framed. */
static void fuzz__check_replies(const char *buf, size_t len, int head)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        long n = fuzz__line(p, end);
        if (n < 12 || strncmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5')
            fuzz__fail("no status line where a reply must start", buf, len);
        if (strncmp(p + 9, "100 ", 4) == 0) {
            p += n + 2;
            if (fuzz__line(p, end) != 0)
                fuzz__fail("100 Continue with headers", buf, len);
            p += 2;
            continue;
        }
        p += n + 2;
        long clen = -1;
        int ours = 0;
        while ((n = fuzz__line(p, end)) > 0) {
            if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
                clen = strtol(p + 15, NULL, 10);
            if (n > 13 && strncasecmp(p, "X-Request-Id:", 13) == 0)
                ours = 1;
            p += n + 2;
        }
        if (!ours)
            return; /* libmicrohttpd's own error page: the connection ends */
        /* a reply to HEAD states the length of a body it does not send */
        if (head && n == 0 && clen > 0 && p + 2 == end)
            return;
        if (n < 0 || clen < 0 || (size_t)(end - (p + 2)) < (size_t)clen)
            fuzz__fail("headers unterminated, no Content-Length, or a short body", buf, len);
        p += 2 + clen;
    }
}

static void fuzz__send_all(int fd, const uint8_t *data, size_t size)
{
    while (size) {
        struct pollfd pw = {fd, POLLOUT, 0};
        if (poll(&pw, 1, 3000) <= 0)
            return; /* the server stopped reading (it answered, or closed) */
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            return;
        data += n;
        size -= (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz__http)
        fuzz__setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(srv_http_port(fuzz__http))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        abort();
    fuzz__send_all(fd, data, size);
    shutdown(fd, SHUT_WR);
    char *buf = malloc(FUZZ__MAX_REPLY);
    size_t len = 0;
    if (!buf)
        abort();
    /* The deadlines are one second; an answer or a close comes well before
     * this. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pr = {fd, POLLIN, 0};
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long left = 8000 - (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            fuzz__fail("the server neither answered nor closed in 8 s", buf, len);
        if (poll(&pr, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, FUZZ__MAX_REPLY - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == FUZZ__MAX_REPLY)
            break;
    }
    close(fd);
    fuzz__check_replies(buf, len, memmem(data, size, "HEAD", 4) != NULL);
    free(buf);
    return 0;
}
