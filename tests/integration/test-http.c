/* End-to-end test of the HTTP API: imports and builds a small book catalog
 * with the real `erd` binary, runs `erd serve` on a free port and talks to it
 * over HTTP with libcurl, then stops it with SIGTERM.
 *
 * Environment: ERD_EXE (path of the erd binary), ERD_TEST_SRCDIR (source tree,
 * for the fixture). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/tap.h"

/* Limits written into the daemon's config, so the test knows them. */
#define MAX_BODY 16384
#define MAX_TEXT 200
#define MAX_HYPS 5
#define MAX_K 20

static const char *erd_exe;
static char tmpdir[256];
static char db_path[512], conf_path[512], log_path[512];
static volatile pid_t daemon_pid = -1;
static int port;
static char base_url[64];
static CURL *shared; /* one handle, so keep-alive is reused across requests */

/* ---- cleanup: the daemon must never outlive the test ---- */

static void kill_daemon(void)
{
    pid_t p = daemon_pid;
    if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        daemon_pid = -1;
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void cleanup(void)
{
    kill_daemon();
    if (tmpdir[0] && !getenv("ERD_TEST_KEEP"))
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_fatal(int sig)
{
    /* async-signal-safe subset: kill, and let the default action finish */
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- processes ---- */

/* Child side of every spawn: output to log, no inherited ERD_* settings that
 * could change the limits under test, and death with the parent. */
static void child_setup(const char *log)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    extern char **environ;
    char names[64][128];
    int n = 0;
    for (char **e = environ; *e && n < 64; e++) {
        if (strncmp(*e, "ERD_", 4) == 0) {
            const char *eq = strchr(*e, '=');
            size_t l = eq ? (size_t)(eq - *e) : strlen(*e);
            if (l < sizeof names[0]) {
                memcpy(names[n], *e, l);
                names[n][l] = '\0';
                n++;
            }
        }
    }
    for (int i = 0; i < n; i++)
        unsetenv(names[i]);
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t p = fork();
    if (p == 0) {
        child_setup(log);
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

static int run(char *const argv[], const char *log)
{
    pid_t p = spawn(argv, log);
    if (p < 0)
        return -1;
    int st;
    if (waitpid(p, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void show_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        printf("#   | %s", line);
    fclose(f);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static bool log_contains(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    char line[4096];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---- HTTP ---- */

typedef struct reply {
    long status;
    char *body;
    size_t len;
    char content_type[128];
    char allow[64];
    char request_id[128];
    CURLcode curl;
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    reply *r = user;
    size_t add = size * n;
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    reply *r = user;
    size_t len = size * n;
    header_value(p, len, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(p, len, "Allow", r->allow, sizeof r->allow);
    header_value(p, len, "X-Request-Id", r->request_id, sizeof r->request_id);
    return len;
}

typedef struct streamer {
    size_t left;
} streamer;

static size_t on_read(char *buf, size_t size, size_t n, void *user)
{
    streamer *s = user;
    size_t cap = size * n;
    size_t give = s->left < cap ? s->left : cap;
    memset(buf, ' ', give);
    s->left -= give;
    return give;
}

static void reply_free(reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* body NULL: no body; stream > 0: send that many bytes chunked instead. */
static reply http_ex(CURL *c, const char *method, const char *path, const char *body, size_t len,
                     const char *extra_header, size_t stream)
{
    reply r = {0};
    char url[256];
    struct curl_slist *hdrs = NULL;
    streamer st = {stream};
    snprintf(url, sizeof url, "%s%s", base_url, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (extra_header)
        hdrs = curl_slist_append(hdrs, extra_header);
    if (stream) {
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &st);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    else if (strcmp(method, "GET") == 0 && body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    r.curl = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdrs);
    return r;
}

static reply http(const char *method, const char *path, const char *body)
{
    return http_ex(shared, method, path, body, body ? strlen(body) : 0, NULL, 0);
}

static reply post(const char *body)
{
    return http("POST", "/v1/resolve", body);
}

/* ---- daemon ---- */

static bool start_daemon(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        port = free_port();
        if (port <= 0)
            continue;
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
        unlink(log_path);
        char *argv[] = {(char *)erd_exe, "serve", "--db", db_path, "--listen", listen,
                        "--config", conf_path, NULL};
        daemon_pid = spawn(argv, log_path);
        if (daemon_pid < 0)
            return false;
        for (int waited = 0; waited < 60000; waited += 50) {
            int st;
            if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
                daemon_pid = -1;
                printf("# erd serve exited early (attempt %d):\n", attempt + 1);
                show_log(log_path);
                break; /* maybe the port was taken in between: try another */
            }
            if (log_contains("erd: listening on http://")) {
                reply r = http("GET", "/healthz", NULL);
                long s = r.status;
                reply_free(&r);
                if (s == 200)
                    return true;
            }
            sleep_ms(50);
        }
        kill_daemon();
    }
    return false;
}

/* ---- checks ---- */

static json_t *parse_json(const reply *r)
{
    json_error_t e;
    return r->body ? json_loadb(r->body, r->len, 0, &e) : NULL;
}

static const char *first_id(json_t *root)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(root, "results"), 0), "id"));
}

/* Checks a reply is an error of the given status and wire code, as JSON
 * {"error":{"code","message"}} with the JSON content type. */
static void expect_error(reply r, long status, const char *code, const char *what)
{
    is_int(r.status, status, "%s: HTTP %ld", what, status);
    ok(strncmp(r.content_type, "application/json", 16) == 0, "%s: JSON content type (%s)", what,
       r.content_type);
    json_t *root = parse_json(&r);
    json_t *err = json_object_get(root, "error");
    ok(root && json_is_object(err), "%s: body is {\"error\":{...}} (%s)", what, r.body ? r.body : "");
    is_str(json_string_value(json_object_get(err, "code")), code, "%s: error.code", what);
    const char *msg = json_string_value(json_object_get(err, "message"));
    ok(msg && msg[0], "%s: error.message present (%s)", what, msg ? msg : "(null)");
    json_decref(root);
    reply_free(&r);
}

static void expect_top(const char *body, const char *want_id, const char *what)
{
    reply r = post(body);
    is_int(r.status, 200, "%s: 200", what);
    json_t *root = parse_json(&r);
    is_str(first_id(root), want_id, "%s: top result (%s)", what, r.body ? r.body : "");
    json_decref(root);
    reply_free(&r);
}

static bool good_request_works(void)
{
    reply r = post("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"the great gatsby\"}]}");
    json_t *root = parse_json(&r);
    const char *id = first_id(root);
    bool good = r.status == 200 && id && strcmp(id, "goodbooks:5") == 0;
    json_decref(root);
    reply_free(&r);
    return good;
}

static void test_health(void)
{
    reply r = http("GET", "/healthz", NULL);
    is_int(r.status, 200, "healthz 200");
    ok(strncmp(r.content_type, "application/json", 16) == 0, "healthz is JSON");
    json_t *root = parse_json(&r);
    is_str(json_string_value(json_object_get(root, "status")), "ok", "healthz status ok");
    json_t *cats = json_object_get(root, "catalogs");
    const char *first = json_string_value(json_array_get(cats, 0));
    ok(json_array_size(cats) == 1 && first && !strcmp(first, "mini"),
       "healthz lists the mini catalog (%s)", r.body ? r.body : "");
    ok(r.request_id[0] != '\0', "a request id is generated (%s)", r.request_id);
    json_decref(root);
    reply_free(&r);
    expect_error(http("POST", "/healthz", "{}"), 405, "method_not_allowed", "POST /healthz");
}

static void test_resolve(void)
{
    expect_top("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"the hunger games\",\"score\":-6632}]}",
               "goodbooks:1", "exact title");
    expect_top("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"to kill a mocking bird\",\"score\":-100},"
               "{\"text\":\"to kill a mocking burt\",\"score\":-900}]}",
               "goodbooks:4", "misheard n-best");
    expect_top("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"harry potter and the prisoner of as"
               " come band\"}]}",
               "goodbooks:18", "misheard variant");
    expect_top("{\"catalog\":\"mini\",\"text\":\"slaughter house five\"}", "goodbooks:65",
               "bare text, split compound");
    expect_top("{\"catalog\":\"mini\",\"text\":\"nineteen eighty four\"}", "goodbooks:13",
               "alias match");

    /* k honoured, scores descending */
    reply r = post("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"harry potter\"}],\"k\":3}");
    is_int(r.status, 200, "k=3: 200");
    json_t *root = parse_json(&r);
    json_t *res = json_object_get(root, "results");
    is_int(json_array_size(res), 3, "k=3 gives three results");
    bool shaped = true, descending = true;
    double prev = 1e300;
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *e = json_array_get(res, i);
        json_t *score = json_object_get(e, "score");
        if (!json_is_string(json_object_get(e, "id")) || !json_is_string(json_object_get(e, "name")) ||
            !json_is_number(score))
            shaped = false;
        if (json_number_value(score) > prev)
            descending = false;
        prev = json_number_value(score);
    }
    ok(shaped, "every result has id, name and score");
    ok(descending, "scores descending (%s)", r.body ? r.body : "");
    json_decref(root);
    reply_free(&r);

    r = post("{\"catalog\":\"mini\",\"text\":\"the hobbit\",\"k\":1}");
    root = parse_json(&r);
    is_int(json_array_size(json_object_get(root, "results")), 1, "k=1 gives one result");
    is_str(first_id(root), "goodbooks:7", "k=1 is the best one");
    json_decref(root);
    reply_free(&r);

    r = post("{\"catalog\":\"mini\",\"text\":\"the hobbit\"}");
    root = parse_json(&r);
    is_int(json_array_size(json_object_get(root, "results")), 5, "default k is 5");
    json_decref(root);
    reply_free(&r);

    static const char dracula[] = "{\"catalog\":\"mini\",\"text\":\"dracula\"}";
    r = http_ex(shared, "POST", "/v1/resolve", dracula, sizeof dracula - 1, "X-Request-Id: it-test-42", 0);
    is_int(r.status, 200, "request with X-Request-Id");
    is_str(r.request_id, "it-test-42", "X-Request-Id echoed");
    root = parse_json(&r);
    is_str(first_id(root), "goodbooks:97", "dracula resolved");
    json_decref(root);
    reply_free(&r);
    r = http_ex(shared, "POST", "/v1/resolve", dracula, sizeof dracula - 1,
                "X-Request-Id: bad id with spaces", 0);
    ok(r.request_id[0] && strcmp(r.request_id, "bad id with spaces") != 0,
       "insane X-Request-Id replaced (%s)", r.request_id);
    reply_free(&r);

    expect_top("{\"catalog\":\"mini\",\"text\":\"Wuthering Heights\",\"k\":2,\"client\":\"ignored\"}",
               "goodbooks:63", "unknown top-level field ignored");
}

static void test_errors(void)
{
    expect_error(post("{\"catalog\":\"mini\",\"text\":"), 400, "malformed_json", "truncated JSON");
    expect_error(post("not json at all"), 400, "malformed_json", "garbage body");
    expect_error(post(""), 400, "malformed_json", "empty body");
    expect_error(post("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":7}]}"), 400, "invalid_argument",
                 "numeric text");
    expect_error(post("{\"catalog\":5,\"text\":\"x\"}"), 400, "invalid_argument", "numeric catalog");
    expect_error(post("{\"text\":\"dune\"}"), 400, "invalid_argument", "missing catalog");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"a\",\"hypotheses\":[{\"text\":\"b\"}]}"), 400,
                 "invalid_argument", "text and hypotheses");
    expect_error(post("[1,2,3]"), 400, "invalid_argument", "array body");
    expect_error(post("{\"catalog\":\"mini\",\"hypotheses\":[]}"), 400, "empty", "empty hypotheses");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"   \"}"), 400, "empty", "blank text");

    char longtext[MAX_TEXT + 128];
    snprintf(longtext, sizeof longtext, "{\"catalog\":\"mini\",\"text\":\"%0*d\"}", MAX_TEXT + 1, 7);
    expect_error(post(longtext), 400, "too_long", "over-long text");

    char many[1024] = "{\"catalog\":\"mini\",\"hypotheses\":[";
    for (int i = 0; i <= MAX_HYPS; i++)
        strcat(many, i ? ",{\"text\":\"dune\"}" : "{\"text\":\"dune\"}");
    strcat(many, "]}");
    expect_error(post(many), 400, "too_long", "too many hypotheses");

    expect_error(post("{\"catalog\":\"mini\",\"text\":\"caf\xe9 \xff\"}"), 400, "invalid_utf8",
                 "invalid UTF-8 bytes");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":0}"), 400, "invalid_argument", "k=0");
    char bigk[128];
    snprintf(bigk, sizeof bigk, "{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":%d}", MAX_K + 1);
    expect_error(post(bigk), 400, "invalid_argument", "k > max_k");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":\"3\"}"), 400, "invalid_argument",
                 "k as string");
    expect_error(post("{\"catalog\":\"nonesuch\",\"text\":\"dune\"}"), 404, "unknown_catalog",
                 "unknown catalog");
    expect_error(http("GET", "/nope", NULL), 404, "not_found", "unknown path");
    expect_error(http("POST", "/v1/resolve/extra", "{}"), 404, "not_found", "path below resolve");

    reply r = http("GET", "/v1/resolve", NULL);
    is_str(r.allow, "POST", "405 carries Allow: POST");
    expect_error(r, 405, "method_not_allowed", "GET /v1/resolve");
    expect_error(http("DELETE", "/v1/resolve", NULL), 405, "method_not_allowed", "DELETE /v1/resolve");

    /* over the body limit, announced by Content-Length */
    size_t big = 2 * MAX_BODY;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "{\"catalog\":\"mini\",\"text\":\"", 26);
    huge[big - 2] = '"';
    huge[big - 1] = '}';
    huge[big] = '\0';
    CURL *c = curl_easy_init();
    expect_error(http_ex(c, "POST", "/v1/resolve", huge, big, "Expect: 100-continue", 0), 413,
                 "body_too_large", "body over the limit (Content-Length)");
    curl_easy_cleanup(c);
    free(huge);

    /* over the limit without Content-Length: counted as it streams */
    c = curl_easy_init();
    expect_error(http_ex(c, "POST", "/v1/resolve", NULL, 0, NULL, 3 * MAX_BODY), 413, "body_too_large",
                 "body over the limit (chunked)");
    curl_easy_cleanup(c);

    /* exactly at the limit is fine (and then fails only as JSON content) */
    char *edge = malloc(MAX_BODY + 1);
    int hdr = snprintf(edge, MAX_BODY, "{\"catalog\":\"mini\",\"text\":\"dune\",\"pad\":\"");
    memset(edge + hdr, 'x', MAX_BODY - (size_t)hdr - 2);
    edge[MAX_BODY - 2] = '"';
    edge[MAX_BODY - 1] = '}';
    edge[MAX_BODY] = '\0';
    r = post(edge);
    is_int(r.status, 200, "body of exactly max_body_bytes accepted (%s)", r.body ? r.body : "");
    reply_free(&r);
    free(edge);

    ok(good_request_works(), "a good request still works after all the bad ones");
}

/* Several clients at once, each must get its own right answer. */
static void test_concurrent(void)
{
    enum { N = 24 };
    static const char *texts[] = {"the hunger games", "twilight", "the great gatsby", "wonder"};
    static const char *ids[] = {"goodbooks:1", "goodbooks:3", "goodbooks:5", "goodbooks:250"};
    CURLM *m = curl_multi_init();
    CURL *hs[N];
    reply rs[N];
    char bodies[N][128];
    char url[128];
    snprintf(url, sizeof url, "%s/v1/resolve", base_url);
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        snprintf(bodies[i], sizeof bodies[i], "{\"catalog\":\"mini\",\"text\":\"%s\",\"k\":2}",
                 texts[i % 4]);
        hs[i] = curl_easy_init();
        curl_easy_setopt(hs[i], CURLOPT_URL, url);
        curl_easy_setopt(hs[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_easy_setopt(hs[i], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(hs[i], CURLOPT_WRITEDATA, &rs[i]);
        curl_easy_setopt(hs[i], CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(hs[i], CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, hs[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    int right = 0;
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(hs[i], CURLINFO_RESPONSE_CODE, &status);
        json_t *root = parse_json(&rs[i]);
        const char *id = first_id(root);
        if (status == 200 && id && strcmp(id, ids[i % 4]) == 0)
            right++;
        json_decref(root);
        reply_free(&rs[i]);
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
    }
    curl_multi_cleanup(m);
    is_int(right, N, "%d concurrent requests all answered correctly", N);
}

static void test_shutdown(void)
{
    ok(log_contains("\"id\":\"it-test-42\""), "request log line carries the client's request id");
    ok(log_contains("\"path\":\"/v1/resolve\",\"status\":413"), "request log records the 413");
    pid_t p = daemon_pid;
    ok(kill(p, SIGTERM) == 0, "SIGTERM sent");
    int st = 0;
    pid_t got = 0;
    for (int waited = 0; waited < 20000 && got == 0; waited += 50) {
        got = waitpid(p, &st, WNOHANG);
        if (got == 0)
            sleep_ms(50);
    }
    ok(got == p, "daemon exits after SIGTERM");
    if (got == p) {
        daemon_pid = -1;
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status 0 (status %d)", st);
    } else {
        ok(0, "daemon exit status 0 (still running)");
    }
}

static bool write_config(void)
{
    FILE *f = fopen(conf_path, "w");
    if (!f)
        return false;
    fprintf(f,
            "# written by test-http\n"
            "threads 4\n"
            "max_connections 64\n"
            "request_timeout_s 10\n"
            "max_body_bytes %d\n"
            "max_text_bytes %d\n"
            "max_hypotheses %d\n"
            "default_k 5\n"
            "max_k %d\n"
            "log_requests true\n",
            MAX_BODY, MAX_TEXT, MAX_HYPS, MAX_K);
    return fclose(f) == 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    erd_exe = getenv("ERD_EXE");
    const char *srcdir = getenv("ERD_TEST_SRCDIR");
    if (!erd_exe || !srcdir) {
        ok(0, "ERD_EXE and ERD_TEST_SRCDIR are set");
        return tap_done();
    }
    char fixture[1024];
    snprintf(fixture, sizeof fixture, "%s/tests/integration/fixtures/mini.jsonl", srcdir);

    snprintf(tmpdir, sizeof tmpdir, "%s/erd-it-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = '\0';
        ok(0, "temporary directory: %s", strerror(errno));
        return tap_done();
    }
    atexit(cleanup);
    signal(SIGTERM, on_fatal);
    signal(SIGINT, on_fatal);
    signal(SIGSEGV, on_fatal);
    signal(SIGABRT, on_fatal);
    signal(SIGALRM, on_fatal);
    alarm(280); /* below meson's timeout, so the daemon is reaped by us */

    snprintf(db_path, sizeof db_path, "%s/erd.db", tmpdir);
    snprintf(conf_path, sizeof conf_path, "%s/erd.conf", tmpdir);
    snprintf(log_path, sizeof log_path, "%s/serve.log", tmpdir);
    char cli_log[512];
    snprintf(cli_log, sizeof cli_log, "%s/cli.log", tmpdir);
    ok(write_config(), "config written");

    char *import[] = {(char *)erd_exe, "import", "--db", db_path, "--catalog", "mini", fixture, NULL};
    int rc = run(import, cli_log);
    is_int(rc, 0, "erd import");
    char *build[] = {(char *)erd_exe, "build", "--db", db_path, "--catalog", "mini", NULL};
    if (rc == 0) {
        rc = run(build, cli_log);
        is_int(rc, 0, "erd build");
    }
    if (rc != 0) {
        show_log(cli_log);
        return tap_done();
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    shared = curl_easy_init();
    bool up = start_daemon();
    ok(up, "erd serve is up on port %d", port);
    if (up) {
        test_health();
        test_resolve();
        test_errors();
        test_concurrent();
        test_shutdown();
    }
    if (tap__failed) {
        printf("# daemon log:\n");
        show_log(log_path);
    }
    curl_easy_cleanup(shared);
    curl_global_cleanup();
    return tap_done();
}
