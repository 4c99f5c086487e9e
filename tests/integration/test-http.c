/* End-to-end test of the HTTP API: imports and builds a small book catalog
 * with the real `erd` binary, runs `erd serve` on a free port and talks to it
 * over HTTP with libcurl, then stops it with SIGTERM.
 *
 * Environment: ERD_EXE (path of the erd binary), ERD_TEST_SRCDIR (source tree,
 * for the fixture). */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
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
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/oas.h"
#include "tests/unit/tap.h"

/* Limits written into the daemon's config, so the test knows them. */
#define MAX_BODY 16384
#define MAX_TEXT 200
#define MAX_HYPS 5
#define MAX_K 20

/* Tokens the reload phase configures; none may ever show in a log. */
#define RESOLVE_TOKEN "it-resolve-token-0123456789"
#define ADMIN_TOKEN "it-admin-token-0123456789abcdef"
#define METRICS_TOKEN "it-metrics-token-0123456789"

static const char *erd_exe;
static char tmpdir[256];
static char db_path[512], conf_path[512], log_path[512], token_path[512];
static const char *srcdir;
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

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static bool log_contains(const char *needle)
{
    return file_contains(log_path, needle);
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
    char www_auth[128];
    CURLcode curl;
} reply;

/* Every exchange made through http_ex, checked against proto/openapi.json
 * at the end. */
typedef struct capture {
    char method[16];
    char path[128];
    char content_type[128];
    long status;
    char *body;
    size_t len;
} capture;
static capture captures[2048];
static size_t n_captures;

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
    header_value(p, len, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
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
    if (r.curl == CURLE_OK && r.status > 0 && n_captures < sizeof captures / sizeof captures[0] &&
        strcmp(method, "HEAD") != 0) {
        capture *cp = &captures[n_captures++];
        snprintf(cp->method, sizeof cp->method, "%s", method);
        snprintf(cp->path, sizeof cp->path, "%s", path);
        snprintf(cp->content_type, sizeof cp->content_type, "%s", r.content_type);
        cp->status = r.status;
        cp->len = r.len;
        cp->body = malloc(r.len + 1);
        if (cp->body) {
            memcpy(cp->body, r.body ? r.body : "", r.len);
            cp->body[r.len] = '\0';
        }
    }
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

static reply post_auth(const char *body, const char *authorization)
{
    return http_ex(shared, "POST", "/v1/resolve", body, strlen(body), authorization, 0);
}

static reply get_auth(const char *path, const char *authorization)
{
    return http_ex(shared, "GET", path, NULL, 0, authorization, 0);
}

/* ---- daemon ---- */

static bool start_daemon_on(const char *db, const char *conf)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        port = free_port();
        if (port <= 0)
            continue;
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
        unlink(log_path);
        char *argv[] = {(char *)erd_exe, "serve", "--db", (char *)db, "--listen", listen,
                        "--config", (char *)conf, NULL};
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

static bool start_daemon(void)
{
    return start_daemon_on(db_path, conf_path);
}

static int count_in_log(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    char line[4096];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* SIGHUP, then waits for the log line that says how the reload went. */
static bool reload_daemon(const char *outcome)
{
    int before = count_in_log(outcome);
    if (daemon_pid <= 0 || kill(daemon_pid, SIGHUP) != 0)
        return false;
    for (int waited = 0; waited < 10000; waited += 20) {
        if (count_in_log(outcome) > before)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Reaps p within 20 s: p once it has exited, 0 while it still runs. */
static pid_t wait_exit(pid_t p, int *st)
{
    pid_t got = 0;
    for (int waited = 0; waited < 20000 && got == 0; waited += 50) {
        got = waitpid(p, st, WNOHANG);
        if (got == 0)
            sleep_ms(50);
    }
    return got;
}

static bool stop_daemon(const char *what)
{
    pid_t p = daemon_pid;
    if (p <= 0 || kill(p, SIGTERM) != 0)
        return false;
    int st = 0;
    pid_t got = wait_exit(p, &st);
    if (got != p)
        return false;
    daemon_pid = -1;
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit status 0 after SIGTERM (status %d)", what, st);
    return true;
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

static bool write_config_ex(const char *path, const char *extra);
static bool write_config(void);

/* The first hypothesis of the top result's explanation (NULL when absent). */
static json_t *top_explain_hyp(json_t *root)
{
    json_t *ex = json_object_get(json_array_get(json_object_get(root, "results"), 0), "explain");
    return json_array_get(json_object_get(ex, "hypotheses"), 0);
}

static bool match_of(const char *body, bool *ret_listed)
{
    reply r = post(body);
    json_t *root = parse_json(&r);
    bool m = json_is_true(json_object_get(root, "match"));
    *ret_listed = r.status == 200 && json_array_size(json_object_get(root, "results")) > 0 &&
                  json_is_boolean(json_object_get(root, "match"));
    json_decref(root);
    reply_free(&r);
    return m;
}

/* "match" under min_score and no_match_threshold, "explain": true, and
 * POST /v1/analyze; every reply is also checked against the OpenAPI
 * document with the others. */
static void test_match_explain(void)
{
    bool listed;
    ok(match_of("{\"catalog\":\"mini\",\"text\":\"the hunger games\"}", &listed) && listed,
       "exact title: \"match\": true");
    ok(!match_of("{\"catalog\":\"mini\",\"text\":\"the hunger games\",\"min_score\":1}", &listed) &&
           listed,
       "min_score 1: \"match\": false, candidates still listed");
    ok(match_of("{\"catalog\":\"mini\",\"text\":\"zebra crossing\",\"min_score\":0}", &listed) && listed,
       "min_score 0: anything matches");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\",\"min_score\":1.5}"), 400,
                 "invalid_argument", "min_score above 1");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\",\"min_score\":\"high\"}"), 400,
                 "invalid_argument", "min_score not a number");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\",\"explain\":\"yes\"}"), 400,
                 "invalid_argument", "explain not a boolean");

    /* a per-catalog threshold, applied on reload */
    ok(write_config_ex(conf_path, "no_match_threshold auto,mini=1\n"), "per-catalog threshold written");
    ok(reload_daemon("erd: configuration reloaded"), "and reloaded");
    ok(!match_of("{\"catalog\":\"mini\",\"text\":\"the hunger games\"}", &listed) && listed,
       "mini=1: \"match\": false");
    ok(match_of("{\"catalog\":\"mini\",\"text\":\"the hunger games\",\"min_score\":0.01}",
                &listed),
       "a request's min_score wins over the configuration");
    ok(write_config(), "configuration restored");
    ok(reload_daemon("erd: configuration reloaded"), "and reloaded");

    reply r = post("{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"nineteen eighty four\"},"
                   "{\"text\":\"nineteen eighty for\"}],\"explain\":true}");
    is_int(r.status, 200, "explain: 200");
    json_t *root = parse_json(&r);
    json_t *top = json_array_get(json_object_get(root, "results"), 0);
    json_t *ex = json_object_get(top, "explain"), *hyp = top_explain_hyp(root);
    is_str(json_string_value(json_object_get(json_object_get(ex, "matched"), "kind")), "alias",
           "explain names the alias that matched (%.300s)", r.body ? r.body : "");
    json_t *steps = json_object_get(hyp, "alignment");
    double sum = 0;
    size_t i;
    json_t *st;
    bool shaped = json_array_size(steps) > 0;
    json_array_foreach(steps, i, st)
    {
        const char *op = json_string_value(json_object_get(st, "op"));
        shaped &= op && (!strcmp(op, "match") || !strcmp(op, "sub") || !strcmp(op, "ins") ||
                         !strcmp(op, "del"));
        sum += json_number_value(json_object_get(st, "cost"));
    }
    double cost = json_number_value(json_object_get(hyp, "cost"));
    ok(shaped && fabs(sum - cost) <= 1e-3 * (1 + fabs(cost)),
       "alignment steps are match/sub/ins/del whose costs add up to the hypothesis's (%g vs %g)",
       sum, cost);
    ok(json_number_value(json_object_get(top, "score")) ==
           json_number_value(json_object_get(ex, "probability")),
       "the explained probability is the score answered");
    json_t *timing = json_object_get(json_object_get(root, "explain"), "timing");
    ok(json_is_number(json_object_get(timing, "rerank_ms")), "stage timings given");
    json_t *hyp_phones = json_deep_copy(json_object_get(hyp, "phones"));
    json_decref(root);
    reply_free(&r);

    r = http("POST", "/v1/analyze", "{\"text\":\"Nineteen Eighty-Four\",\"catalog\":\"mini\"}");
    is_int(r.status, 200, "analyze: 200");
    root = parse_json(&r);
    is_str(json_string_value(json_object_get(root, "text")), "nineteen eighty four",
           "analyze: normalised text");
    ok(json_string_length(json_object_get(root, "ipa")) > 0, "analyze: IPA");
    ok(json_equal(json_object_get(root, "phones"), hyp_phones),
       "analyze gives the phones the explanation aligned");
    json_decref(hyp_phones);
    json_decref(root);
    reply_free(&r);
    /* mini is built with the default voice (en-us+cmu): its names also go
     * by the CMU dictionary's pronunciation where that differs */
    r = http("POST", "/v1/analyze", "{\"text\":\"Les Miserables\",\"catalog\":\"mini\"}");
    root = parse_json(&r);
    json_t *second = json_object_get(root, "second");
    ok(json_array_size(json_object_get(second, "phones")) > 0 &&
           !json_equal(json_object_get(second, "phones"), json_object_get(root, "phones")),
       "analyze: the CMU pronunciation beside espeak-ng's (%.400s)", r.body ? r.body : "");
    json_decref(root);
    reply_free(&r);
    r = http("POST", "/v1/analyze", "{\"text\":\"the hunger games\",\"catalog\":\"mini\"}");
    root = parse_json(&r);
    ok(r.status == 200 && !json_object_get(root, "second"),
       "analyze: no second pronunciation where both agree");
    json_decref(root);
    reply_free(&r);
    expect_error(http("POST", "/v1/analyze", "{\"text\":\"\"}"), 400, "invalid_argument",
                 "analyze: empty text");
    expect_error(http("POST", "/v1/analyze", "{\"text\":\"dune\",\"catalog\":\"nope\"}"), 404,
                 "unknown_catalog", "analyze: unknown catalog");
    r = http("GET", "/v1/analyze", NULL);
    is_int(r.status, 405, "analyze: GET is 405");
    reply_free(&r);
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


static bool write_config_ex(const char *path, const char *extra);

/* ---- metrics ---- */

/* Every line a comment (# HELP / # TYPE) or `name{labels} value`. */
static bool metrics_well_formed(const char *text, char *bad, size_t cap)
{
    const char *p = text;
    if (!p || !*p) {
        snprintf(bad, cap, "empty");
        return false;
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        bool good;
        if (line[0] == '#') {
            good = strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0;
        } else {
            size_t i = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
            good = i > 0 && !isdigit((unsigned char)line[0]);
            if (good && line[i] == '{') {
                /* label="value" pairs, values escaped */
                i++;
                while (good && line[i] != '}') {
                    size_t n = strspn(line + i, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
                    good = n > 0 && line[i + n] == '=' && line[i + n + 1] == '"';
                    i += n + 2;
                    while (good && line[i] && line[i] != '"')
                        i += line[i] == '\\' && line[i + 1] ? 2 : 1;
                    good = good && line[i] == '"';
                    i++;
                    if (good && line[i] == ',')
                        i++;
                }
                i++;
            }
            if (good && line[i] == ' ') {
                const char *v = line + i + 1;
                char *end;
                strtod(v, &end);
                good = (end != v && *end == '\0') || !strcmp(v, "+Inf") || !strcmp(v, "NaN");
            } else {
                good = false;
            }
        }
        if (!good || !nl) {
            snprintf(bad, cap, "%s", nl ? line : "(no final newline)");
            return false;
        }
        p = nl + 1;
    }
    return true;
}

static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static char *scrape(const char *authorization)
{
    reply r = get_auth("/metrics", authorization);
    char *text = NULL;
    if (r.status == 200 && r.body)
        text = strdup(r.body);
    else
        printf("# /metrics answered %ld: %s\n", r.status, r.body ? r.body : "");
    reply_free(&r);
    return text;
}

static void test_metrics_forbidden(void)
{
    expect_error(http("GET", "/metrics", NULL), 403, "forbidden", "/metrics without any token configured");
    reply r = get_auth("/metrics", "Authorization: Bearer " ADMIN_TOKEN);
    is_int(r.status, 403, "/metrics: a token does not help while none is configured");
    reply_free(&r);
    reply q = http("GET", "/readyz", NULL);
    is_int(q.status, 200, "readyz 200 with a catalog loaded");
    json_t *root = parse_json(&q);
    is_str(json_string_value(json_object_get(root, "status")), "ready", "readyz status ready");
    json_decref(root);
    reply_free(&q);
    expect_error(http("POST", "/readyz", "{}"), 405, "method_not_allowed", "POST /readyz");
    expect_error(http("GET", "/v1/catalogs", NULL), 403, "forbidden",
                 "admin route while no admin_token is configured");
    expect_error(http_ex(shared, "POST", "/v1/catalogs/mini/entities", "{}", 2,
                         "Authorization: Bearer " ADMIN_TOKEN, 0),
                 403, "forbidden", "admin write: a token does not help while none is configured");
}

/* ---- reload and tokens ---- */

static void test_reload_tokens(void)
{
    FILE *f = fopen(token_path, "w");
    ok(f && fputs(ADMIN_TOKEN "\n", f) >= 0 && fclose(f) == 0, "admin token file written");
    char extra[1024];
    snprintf(extra, sizeof extra,
             "max_k 3\ndefault_k 2\nresolve_token %s\nadmin_token_file %s\nmetrics_token %s\n",
             RESOLVE_TOKEN, token_path, METRICS_TOKEN);
    ok(write_config_ex(conf_path, extra), "config with tokens and max_k 3 written");
    ok(reload_daemon("erd: configuration reloaded"), "SIGHUP reload logged");
    ok(log_contains("changed: default_k, max_k, resolve_token, admin_token, admin_token_file, metrics_token"),
       "reload names the changed keys, and only the keys");

    static const char body[] = "{\"catalog\":\"mini\",\"text\":\"the hobbit\"}";
    reply r = post(body);
    is_str(r.www_auth, "Bearer realm=\"erd\"", "401 without a token carries WWW-Authenticate: Bearer");
    expect_error(r, 401, "unauthorized", "resolve without a token");
    r = post_auth(body, "Authorization: Bearer wrong-token-0123456789");
    ok(strstr(r.www_auth, "error=\"invalid_token\"") != NULL, "wrong token: invalid_token (%s)", r.www_auth);
    expect_error(r, 401, "unauthorized", "resolve with a wrong token");
    expect_error(post_auth(body, "Authorization: Basic " RESOLVE_TOKEN), 401, "unauthorized",
                 "resolve with Basic instead of Bearer");
    expect_error(post_auth(body, "Authorization: Bearer " RESOLVE_TOKEN "x"), 401, "unauthorized",
                 "resolve with the token plus a byte");
    expect_error(post_auth(body, "Authorization: Bearer " METRICS_TOKEN), 401, "unauthorized",
                 "resolve with the metrics token");

    r = post_auth(body, "Authorization: Bearer " RESOLVE_TOKEN);
    is_int(r.status, 200, "resolve with the resolve token");
    json_t *root = parse_json(&r);
    is_str(first_id(root), "goodbooks:7", "and it resolves");
    is_int(json_array_size(json_object_get(root, "results")), 2, "default_k 2 applied live");
    json_decref(root);
    reply_free(&r);
    r = post_auth(body, "authorization: bearer   " ADMIN_TOKEN);
    is_int(r.status, 200, "resolve with the admin token (from admin_token_file), any case");
    reply_free(&r);

    /* max_k 3 now */
    expect_error(post_auth("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":4}", "Authorization: Bearer " RESOLVE_TOKEN),
                 400, "invalid_argument", "k 4 over the reloaded max_k 3");
    r = post_auth("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":3}", "Authorization: Bearer " RESOLVE_TOKEN);
    is_int(r.status, 200, "k 3 within the reloaded max_k");
    reply_free(&r);
    /* the limits still answer cleanly behind the token */
    char longtext[MAX_TEXT + 128];
    snprintf(longtext, sizeof longtext, "{\"catalog\":\"mini\",\"text\":\"%0*d\"}", MAX_TEXT + 1, 7);
    expect_error(post_auth(longtext, "Authorization: Bearer " RESOLVE_TOKEN), 400, "too_long",
                 "over-long text behind the token");
    /* Unauthenticated bodies are not read into memory, whatever their size. */
    size_t big = 2 * MAX_BODY;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    CURL *c = curl_easy_init();
    expect_error(http_ex(c, "POST", "/v1/resolve", huge, big, NULL, 0), 401, "unauthorized",
                 "over-size body without a token is refused for the token first");
    curl_easy_cleanup(c);
    free(huge);

    /* /metrics: metrics or admin token */
    r = get_auth("/metrics", NULL);
    is_str(r.www_auth, "Bearer realm=\"erd\"", "metrics 401 carries WWW-Authenticate");
    expect_error(r, 401, "unauthorized", "/metrics without a token");
    expect_error(get_auth("/metrics", "Authorization: Bearer wrong-token-0123456789"), 401, "unauthorized",
                 "/metrics with a wrong token");
    expect_error(get_auth("/metrics", "Authorization: Bearer " RESOLVE_TOKEN), 401, "unauthorized",
                 "/metrics with the resolve token");
    r = get_auth("/metrics", "Authorization: Bearer " METRICS_TOKEN);
    is_int(r.status, 200, "/metrics with the metrics token");
    ok(strncmp(r.content_type, "text/plain", 10) == 0, "metrics are text/plain (%s)", r.content_type);
    reply_free(&r);
    r = get_auth("/metrics", "Authorization: Bearer " ADMIN_TOKEN);
    is_int(r.status, 200, "/metrics with the admin token");
    reply_free(&r);
    expect_error(http_ex(shared, "POST", "/metrics", "{}", 2, "Authorization: Bearer " ADMIN_TOKEN, 0), 405,
                 "method_not_allowed", "POST /metrics with a token");
    r = http("GET", "/healthz", NULL);
    is_int(r.status, 200, "healthz needs no token");
    reply_free(&r);
    r = http("GET", "/readyz", NULL);
    is_int(r.status, 200, "readyz needs no token");
    reply_free(&r);
}

static void test_metrics(void)
{
    const char *auth = "Authorization: Bearer " METRICS_TOKEN;
    char *m1 = scrape(auth);
    char bad[1024] = "";
    ok(m1 && metrics_well_formed(m1, bad, sizeof bad), "every /metrics line is a comment or a sample (%s)", bad);
    const char *ok200 = "erd_http_requests_total{route=\"/v1/resolve\",status=\"200\"}";
    double before = m1 ? metric(m1, ok200) : -1;
    for (int i = 0; i < 3; i++) {
        reply r = post_auth("{\"catalog\":\"mini\",\"text\":\"wonder\"}", "Authorization: Bearer " RESOLVE_TOKEN);
        reply_free(&r);
    }
    char *m2 = scrape(auth);
    ok(m2 && metrics_well_formed(m2, bad, sizeof bad), "still well-formed (%s)", bad);
    double after = m2 ? metric(m2, ok200) : -1;
    ok(before >= 1 && after == before + 3, "three more resolve 200s counted (%.0f -> %.0f)", before, after);
    if (m2) {
        ok(metric(m2, "erd_http_requests_total{route=\"/v1/resolve\",status=\"401\"}") >= 5,
           "401s counted");
        ok(metric(m2, "erd_http_requests_total{route=\"/metrics\",status=\"403\"}") >= 1, "403s counted");
        ok(metric(m2, "erd_http_requests_total{route=\"other\",status=\"404\"}") >= 1,
           "unknown paths counted under route=\"other\"");
        double total = 0;
        static const char *const codes[] = {"200", "400", "401", "404", "405", "413"};
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
            char series[128];
            snprintf(series, sizeof series, "erd_http_requests_total{route=\"/v1/resolve\",status=\"%s\"}", codes[i]);
            double v = metric(m2, series);
            total += v > 0 ? v : 0;
        }
        is_int(metric(m2, "erd_http_request_duration_seconds_count{route=\"/v1/resolve\"}"), total,
               "histogram count equals the counters' total");
        is_int(metric(m2, "erd_http_request_duration_seconds_bucket{route=\"/v1/resolve\",le=\"+Inf\"}"), total,
               "+Inf bucket equals the count");
        ok(metric(m2, "erd_http_request_duration_seconds_sum{route=\"/v1/resolve\"}") > 0, "latency sum");
        ok(metric(m2, "erd_http_requests_in_flight") >= 1, "in-flight gauge counts the scrape itself");
        ok(metric(m2, "erd_resolve_stage_seconds_total{stage=\"search\"}") > 0, "search stage time");
        ok(metric(m2, "erd_resolve_stage_seconds_total{stage=\"g2p\"}") > 0, "g2p stage time");
        ok(metric(m2, "erd_resolve_stage_seconds_total{stage=\"encode\"}") >= 0 &&
               metric(m2, "erd_resolve_stage_seconds_total{stage=\"aggregate\"}") >= 0,
           "encode and aggregate stages present");
        double lookups = metric(m2, "erd_g2p_cache_lookups_total"), hits = metric(m2, "erd_g2p_cache_hits_total");
        ok(lookups > 0 && hits > 0 && hits <= lookups, "g2p cache hits %.0f of %.0f lookups", hits, lookups);
        is_int(metric(m2, "erd_catalogs"), 1, "one catalog");
        /* the same number erd build reported */
        char cli_log[600], needle[64];
        snprintf(cli_log, sizeof cli_log, "%s/cli.log", tmpdir);
        snprintf(needle, sizeof needle, "entities, %.0f vectors", metric(m2, "erd_index_vectors{catalog=\"mini\"}"));
        ok(metric(m2, "erd_index_vectors{catalog=\"mini\"}") > 0 && file_contains(cli_log, needle),
           "index vectors of mini as erd build reported (%s)", needle);
        ok(metric(m2, "erd_config_reloads_total{result=\"ok\"}") >= 1, "reloads counted");
        /* erd_build_info must name the version erd --version prints */
        char vlog[600], version[64] = "";
        snprintf(vlog, sizeof vlog, "%s/version.txt", tmpdir);
        char *argv[] = {(char *)erd_exe, "--version", NULL};
        run(argv, vlog);
        FILE *vf = fopen(vlog, "r");
        if (vf) {
            if (fscanf(vf, "erd %63s", version) != 1)
                version[0] = '\0';
            fclose(vf);
        }
        char series[128];
        snprintf(series, sizeof series, "erd_build_info{version=\"%s\"}", version);
        ok(version[0] && metric(m2, series) == 1, "erd_build_info carries erd --version (%s)", version);
    }
    free(m1);
    free(m2);
}

static void test_bad_reload(void)
{
    ok(write_config_ex(conf_path, "max_k banana\n"), "invalid config written");
    ok(reload_daemon("erd: reload failed"), "bad reload logged as failed");
    ok(log_contains(":11: max_k: expected an integer"), "failure names the line and key");
    static const char *const tok = "Authorization: Bearer " RESOLVE_TOKEN;
    reply r = post_auth("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":3}", tok);
    is_int(r.status, 200, "old config kept: k 3 still fine");
    reply_free(&r);
    expect_error(post_auth("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":4}", tok), 400, "invalid_argument",
                 "old config kept: max_k still 3");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\"}"), 401, "unauthorized",
                 "old config kept: token still required");

    /* A missing token file fails the reload the same way. */
    char extra[1024];
    snprintf(extra, sizeof extra, "resolve_token %s\nadmin_token_file %s.missing\n", RESOLVE_TOKEN, token_path);
    ok(write_config_ex(conf_path, extra), "config naming a missing token file written");
    ok(reload_daemon("erd: reload failed"), "reload with a missing token file fails");
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\"}"), 401, "unauthorized",
                 "and the token is still required");

    /* Keys bound at start are reported, not applied; --listen given on the
     * command line still wins over the file. */
    snprintf(extra, sizeof extra,
             "threads 2\nlisten 127.0.0.1:1\nmax_k 4\ndefault_k 2\nresolve_token %s\nadmin_token_file %s\n"
             "metrics_token %s\n",
             RESOLVE_TOKEN, token_path, METRICS_TOKEN);
    ok(write_config_ex(conf_path, extra), "config changing threads, listen and max_k written");
    ok(reload_daemon("erd: configuration reloaded"), "reload accepted");
    ok(log_contains("erd: reload: threads cannot change while serving"), "threads reported as needing a restart");
    ok(!log_contains("reload: listen") && !log_contains("listen, threads"),
       "listen is pinned by --listen, so not reported");
    r = post_auth("{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":4}", tok);
    is_int(r.status, 200, "same port still serving, max_k now 4");
    reply_free(&r);
    char *m = scrape("Authorization: Bearer " METRICS_TOKEN);
    ok(m && metric(m, "erd_config_reloads_total{result=\"error\"}") == 2, "failed reloads counted");
    free(m);
}

static void test_secrets_stay_secret(void)
{
    static const char *const tokens[] = {RESOLVE_TOKEN, ADMIN_TOKEN, METRICS_TOKEN};
    for (size_t i = 0; i < 3; i++)
        ok(!log_contains(tokens[i]), "daemon log never shows token %zu", i);
    char dump_log[600];
    snprintf(dump_log, sizeof dump_log, "%s/dump.txt", tmpdir);
    char *argv[] = {(char *)erd_exe, "config", "--config", conf_path, "--dump", NULL};
    is_int(run(argv, dump_log), 0, "erd config --dump with tokens configured");
    ok(file_contains(dump_log, "resolve_token <set>") && file_contains(dump_log, "metrics_token <set>"),
       "dump prints <set> for tokens");
    bool leaked = false;
    for (size_t i = 0; i < 3; i++)
        leaked = leaked || file_contains(dump_log, tokens[i]);
    ok(!leaked, "dump never shows a token");
}

/* ---- start-up refusals ---- */

static void test_startup_errors(void)
{
    char bad_conf[600], out[600];
    snprintf(bad_conf, sizeof bad_conf, "%s/bad.conf", tmpdir);
    snprintf(out, sizeof out, "%s/bad.log", tmpdir);
    FILE *f = fopen(bad_conf, "w");
    ok(f && fputs("threads 2\n# comment\nmax_hypotheses 1000\n", f) >= 0 && fclose(f) == 0, "bad config written");
    char *argv[] = {(char *)erd_exe, "serve", "--db", db_path, "--listen", "127.0.0.1:0", "--config", bad_conf, NULL};
    is_int(run(argv, out), 78, "erd serve with an invalid setting exits 78");
    ok(file_contains(out, "bad.conf:3: max_hypotheses"), "message names the file, line and key");
    f = fopen(bad_conf, "w");
    ok(f && fprintf(f, "admin_token_file %s/none\n", tmpdir) > 0 && fclose(f) == 0, "config with a missing token file");
    unlink(out);
    is_int(run(argv, out), 78, "erd serve with an unreadable admin_token_file exits 78");
    ok(file_contains(out, "admin_token_file"), "message names the key");
    f = fopen(bad_conf, "w");
    ok(f && fputs("admin_token short\n", f) >= 0 && fclose(f) == 0, "config with a short token");
    unlink(out);
    is_int(run(argv, out), 78, "erd serve with a too-short token exits 78");
    ok(file_contains(out, "bad.conf:1: admin_token") && !file_contains(out, "short\n"),
       "message names line and key, not the value");
    char *flag[] = {(char *)erd_exe, "serve", "--db", db_path, "--threads", "9999", NULL};
    unlink(out);
    is_int(run(flag, out), 2, "a bad --threads flag is a usage error (2)");
}

/* ---- a server with nothing to serve, and connection limits ---- */

/* Opens a TCP connection to the daemon from source address src. */
static int raw_connect(const char *src)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0}, b = {0};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    b.sin_family = AF_INET;
    b.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || connect(s, (struct sockaddr *)&b, sizeof b) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    return s;
}

/* Connections the daemon has closed on us (refused after accept). */
static int count_closed(const int *fds, int n)
{
    int closed = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        char c;
        if (fds[i] < 0 || (poll(&p, 1, 0) == 1 && recv(fds[i], &c, 1, MSG_DONTWAIT) <= 0))
            closed++;
    }
    return closed;
}

static reply get_from(const char *src, const char *path, long timeout_s)
{
    CURL *c = curl_easy_init();
    reply r = {0};
    char url[256];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_INTERFACE, src);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r.curl = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    return r;
}

static void test_bare_daemon(void)
{
    char bare_db[600], bare_conf[600], cli_log[600], fixture[1024];
    snprintf(bare_db, sizeof bare_db, "%s/bare.db", tmpdir);
    snprintf(bare_conf, sizeof bare_conf, "%s/bare.conf", tmpdir);
    snprintf(cli_log, sizeof cli_log, "%s/bare-cli.log", tmpdir);
    snprintf(fixture, sizeof fixture, "%s/tests/integration/fixtures/mini.jsonl", srcdir);
    /* imported, never built: nothing to serve */
    char *import[] = {(char *)erd_exe, "import", "--db", bare_db, "--catalog", "mini", fixture, NULL};
    is_int(run(import, cli_log), 0, "bare: import without build");
    FILE *f = fopen(bare_conf, "w");
    /* the pool keeps connections past the limit waiting in the backlog (a
     * thread per connection, the default, refuses them at once) */
    ok(f && fputs("http_threading pool\nthreads 2\nmax_connections 8\nmax_connections_per_ip 2\n"
                  "request_timeout_s 2\n",
                  f) >= 0 &&
           fclose(f) == 0,
       "bare: config with small connection limits");
    snprintf(log_path, sizeof log_path, "%s/serve-bare.log", tmpdir);
    curl_easy_cleanup(shared); /* its keep-alive connection was to the first daemon */
    shared = curl_easy_init();
    if (!start_daemon_on(bare_db, bare_conf)) {
        ok(0, "bare: erd serve is up");
        show_log(log_path);
        return;
    }
    reply r = http("GET", "/readyz", NULL);
    is_int(r.status, 503, "bare: readyz 503 without a loaded index");
    json_t *root = parse_json(&r);
    is_str(json_string_value(json_object_get(root, "status")), "not_ready", "bare: status not_ready");
    json_decref(root);
    reply_free(&r);
    r = http("GET", "/healthz", NULL);
    is_int(r.status, 200, "bare: healthz still 200 (alive, only not ready)");
    root = parse_json(&r);
    is_int(json_array_size(json_object_get(root, "catalogs")), 0, "bare: no catalogs served");
    json_decref(root);
    reply_free(&r);
    expect_error(post("{\"catalog\":\"mini\",\"text\":\"dune\"}"), 409, "index_not_built",
                 "bare: an imported, unbuilt catalog says to build it");
    expect_error(post("{\"catalog\":\"nosuch\",\"text\":\"dune\"}"), 404, "unknown_catalog",
                 "bare: a catalog the database lacks is unknown");
    curl_easy_cleanup(shared);
    shared = curl_easy_init();

    /* Per address: beyond max_connections_per_ip the daemon closes at once. */
    int fds[32];
    int n = 0;
    for (int i = 0; i < 4; i++)
        fds[n++] = raw_connect("127.0.0.5");
    sleep_ms(400);
    is_int(count_closed(fds, n), 2, "per-IP limit 2: two of four connections from one address closed");
    r = get_from("127.0.0.6", "/healthz", 10);
    is_int(r.status, 200, "another address is still served");
    reply_free(&r);

    /* Overall: at max_connections MHD stops accepting; the rest wait in the
     * kernel's backlog until idle connections time out.  No crash, and a
     * waiting client is served within about request_timeout_s. */
    for (int ip = 10; ip < 20 && n < 32; ip++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%d", ip);
        for (int j = 0; j < 2 && n < 32; j++)
            fds[n++] = raw_connect(src);
    }
    sleep_ms(300);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = get_from("127.0.0.30", "/healthz", 20);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    is_int(r.status, 200, "at the connection limit a new client is served once idle ones time out");
    ok(waited < 12, "within the idle timeout plus slack (%.1f s)", waited);
    reply_free(&r);
    ok(log_contains("connections at accept (max_connections_per_ip"), "the refusals are logged");
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    int st;
    ok(waitpid(daemon_pid, &st, WNOHANG) == 0, "bare: daemon survived the connection flood");
    r = http("GET", "/healthz", NULL);
    is_int(r.status, 200, "bare: serving normally afterwards");
    reply_free(&r);
    ok(stop_daemon("bare"), "bare: stopped by SIGTERM");
}

/* ---- OpenAPI ---- */

static bool capture_valid(const json_t *doc, const capture *c, char *err, size_t cap)
{
    return oas_check_response(doc, c->method, c->path, c->status, c->content_type, c->body, c->len, err, cap);
}

/* Index of the first capture matching method, path and status, or -1. */
static int find_capture(const char *method, const char *path, long status)
{
    for (size_t i = 0; i < n_captures; i++)
        if (!strcmp(captures[i].method, method) && !strcmp(captures[i].path, path) && captures[i].status == status)
            return (int)i;
    return -1;
}

/* Applies a deliberate mistake to a copy of the document and checks the
 * real response it concerns no longer validates. */
static void expect_drift(const json_t *doc, const char *what, int cap_idx,
                         void (*mutate)(json_t *doc))
{
    json_t *wrong = json_deep_copy(doc);
    mutate(wrong);
    char err[1024] = "";
    ok(cap_idx >= 0 && !capture_valid(wrong, &captures[cap_idx], err, sizeof err),
       "drift caught: %s (%s)", what, err);
    json_decref(wrong);
}

static json_t *schema_at(json_t *doc, const char *name)
{
    return json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), name);
}

static void m_score_string(json_t *doc)
{
    json_object_set_new(json_object_get(json_object_get(schema_at(doc, "Result"), "properties"), "score"), "type",
                        json_string("string"));
}

static void m_no_401(json_t *doc)
{
    json_object_del(json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"), "/v1/resolve"), "post"),
                                    "responses"),
                    "401");
}

static void m_code_enum(json_t *doc)
{
    json_t *code = json_object_get(
        json_object_get(json_object_get(json_object_get(schema_at(doc, "Error"), "properties"), "error"), "properties"),
        "code");
    json_object_set_new(code, "enum", json_pack("[s]", "invalid_argument"));
}

static void m_health_field(json_t *doc)
{
    json_object_del(json_object_get(schema_at(doc, "Health"), "properties"), "catalogs");
    json_array_clear(json_object_get(schema_at(doc, "Health"), "required"));
}

static void m_bulk_field(json_t *doc)
{
    json_object_del(json_object_get(schema_at(doc, "BulkResult"), "properties"), "errors");
    json_array_clear(json_object_get(schema_at(doc, "BulkResult"), "required"));
}

static void m_rebuild_state(json_t *doc)
{
    json_t *st = json_object_get(json_object_get(schema_at(doc, "RebuildStatus"), "properties"), "state");
    json_object_set_new(st, "enum", json_pack("[s]", "none"));
}

static void m_no_admin_401(json_t *doc)
{
    json_object_del(json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"),
                                                                    "/v1/catalogs/{catalog}/entities"),
                                                    "post"),
                                    "responses"),
                    "401");
}

static void m_ready_min(json_t *doc)
{
    json_object_set_new(json_object_get(json_object_get(schema_at(doc, "Ready"), "properties"), "catalogs"),
                        "minimum", json_integer(2));
}

static void m_notready_required(json_t *doc)
{
    json_array_append_new(json_object_get(schema_at(doc, "NotReady"), "required"), json_string("catalogs"));
}

static void m_metrics_json(json_t *doc)
{
    json_t *ok200 = json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"), "/metrics"), "get"), "responses"),
        "200");
    json_object_set_new(ok200, "content",
                        json_pack("{s:{s:{s:s}}}", "application/json", "schema", "type", "object"));
}

static void m_no_match_op(json_t *doc)
{
    json_t *op = json_object_get(json_object_get(schema_at(doc, "AlignmentStep"), "properties"), "op");
    json_object_set_new(op, "enum", json_pack("[s,s,s]", "sub", "ins", "del"));
}

static void m_analysis_field(json_t *doc)
{
    json_object_del(json_object_get(schema_at(doc, "Analysis"), "properties"), "ipa");
    json_array_clear(json_object_get(schema_at(doc, "Analysis"), "required"));
}

/* The capture of the explained resolve: the 200 whose body has "explain". */
static int find_explain_capture(void)
{
    for (size_t i = 0; i < n_captures; i++)
        if (!strcmp(captures[i].path, "/v1/resolve") && captures[i].status == 200 &&
            captures[i].body && strstr(captures[i].body, "\"alignment\""))
            return (int)i;
    return -1;
}

static void test_openapi(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/proto/openapi.json", srcdir);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    ok(doc != NULL, "proto/openapi.json parses (%s)", doc ? "ok" : je.text);
    if (!doc)
        return;
    is_str(json_string_value(json_object_get(doc, "openapi")), "3.0.3", "OpenAPI 3.0 document");
    size_t bad = 0;
    for (size_t i = 0; i < n_captures; i++) {
        char err[1024];
        if (!capture_valid(doc, &captures[i], err, sizeof err)) {
            bad++;
            printf("# %s\n#   body: %.300s\n", err, captures[i].body ? captures[i].body : "");
        }
    }
    ok(n_captures > 50 && bad == 0, "all %zu captured responses match proto/openapi.json (%zu do not)",
       n_captures, bad);

    /* Every documented class of answer was actually seen. */
    static const struct {
        const char *method, *path;
        long status;
    } want[] = {
        {"POST", "/v1/resolve", 200}, {"POST", "/v1/resolve", 400}, {"POST", "/v1/resolve", 401},
        {"POST", "/v1/resolve", 404}, {"GET", "/v1/resolve", 405},  {"POST", "/v1/resolve", 413},
        {"GET", "/healthz", 200},     {"POST", "/healthz", 405},    {"GET", "/readyz", 200},
        {"GET", "/readyz", 503},      {"POST", "/readyz", 405},     {"GET", "/metrics", 200},
        {"GET", "/metrics", 401},     {"GET", "/metrics", 403},     {"POST", "/metrics", 405},
        {"GET", "/nope", 404},        {"DELETE", "/v1/resolve", 405},
        {"GET", "/v1/catalogs", 200}, {"POST", "/v1/catalogs", 201}, {"POST", "/v1/catalogs", 409},
        {"POST", "/v1/catalogs", 400}, {"GET", "/v1/catalogs", 401}, {"GET", "/v1/catalogs", 403},
        {"PUT", "/v1/catalogs", 405}, {"GET", "/v1/catalogs/mini", 200},
        {"GET", "/v1/catalogs/nope", 404}, {"DELETE", "/v1/catalogs/scratch", 200},
        {"POST", "/v1/catalogs/mini/entities", 200}, {"POST", "/v1/catalogs/mini/entities", 400},
        {"POST", "/v1/catalogs/mini/entities", 401}, {"POST", "/v1/catalogs/mini/entities", 413},
        {"GET", "/v1/catalogs/scratch/entities/s1", 200},
        {"DELETE", "/v1/catalogs/mini/entities/nope", 404},
        {"POST", "/v1/catalogs/scratch/bulk", 200}, {"POST", "/v1/catalogs/scratch/bulk", 413},
        {"POST", "/v1/catalogs/mini/rebuild", 202}, {"GET", "/v1/catalogs/mini/rebuild", 200},
        {"POST", "/v1/catalogs/empty/rebuild", 400}, {"GET", "/v1/catalogs/empty", 200},
        {"POST", "/v1/analyze", 200}, {"POST", "/v1/analyze", 400}, {"POST", "/v1/analyze", 404},
        {"GET", "/v1/analyze", 405},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ok(find_capture(want[i].method, want[i].path, want[i].status) >= 0, "captured and checked: %s %s %ld",
           want[i].method, want[i].path, want[i].status);

    /* Requests the suite sends are what the document says clients send. */
    char err[1024];
    ok(oas_check_request(doc, "POST", "/v1/resolve",
                         "{\"catalog\":\"mini\",\"hypotheses\":[{\"text\":\"a\",\"score\":-5},{\"text\":\"b\"}],\"k\":3}",
                         err, sizeof err),
       "n-best request matches the request schema (%s)", err);
    ok(oas_check_request(doc, "POST", "/v1/resolve", "{\"catalog\":\"mini\",\"text\":\"dune\"}", err, sizeof err),
       "1-best request matches (%s)", err);
    ok(!oas_check_request(doc, "POST", "/v1/resolve", "{\"catalog\":\"mini\",\"text\":\"dune\",\"k\":0}", err, sizeof err),
       "k 0 does not (%s)", err);
    ok(!oas_check_request(doc, "POST", "/v1/resolve", "{\"text\":\"dune\"}", err, sizeof err),
       "a request without catalog does not (%s)", err);

    /* The check must fail when document and server disagree. */
    expect_drift(doc, "result score typed as string", find_capture("POST", "/v1/resolve", 200), m_score_string);
    expect_drift(doc, "401 not documented for resolve", find_capture("POST", "/v1/resolve", 401), m_no_401);
    expect_drift(doc, "error code missing from the enum", find_capture("POST", "/v1/resolve", 401), m_code_enum);
    expect_drift(doc, "healthz field not documented", find_capture("GET", "/healthz", 200), m_health_field);
    expect_drift(doc, "readyz catalogs minimum 2", find_capture("GET", "/readyz", 200), m_ready_min);
    expect_drift(doc, "not_ready lacks a required field", find_capture("GET", "/readyz", 503), m_notready_required);
    expect_drift(doc, "metrics documented as JSON", find_capture("GET", "/metrics", 200), m_metrics_json);
    expect_drift(doc, "bulk result field not documented", find_capture("POST", "/v1/catalogs/scratch/bulk", 200),
                 m_bulk_field);
    expect_drift(doc, "rebuild state running not in the enum", find_capture("POST", "/v1/catalogs/mini/rebuild", 202),
                 m_rebuild_state);
    expect_drift(doc, "alignment op match missing from the enum", find_explain_capture(),
                 m_no_match_op);
    expect_drift(doc, "analyze ipa not documented", find_capture("POST", "/v1/analyze", 200),
                 m_analysis_field);
    expect_drift(doc, "401 not documented for entity upsert",
                 find_capture("POST", "/v1/catalogs/mini/entities", 401), m_no_admin_401);
    json_decref(doc);
}

static void test_shutdown(void)
{
    ok(log_contains("\"id\":\"it-test-42\""), "request log line carries the client's request id");
    ok(!log_contains("bad id with spaces"), "an insane request id is not logged either");
    ok(log_contains("\"path\":\"/v1/resolve\",\"status\":413"), "request log records the 413");
    pid_t p = daemon_pid;
    ok(kill(p, SIGTERM) == 0, "SIGTERM sent");
    int st = 0;
    pid_t got = wait_exit(p, &st);
    ok(got == p, "daemon exits after SIGTERM");
    if (got == p) {
        daemon_pid = -1;
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status 0 (status %d)", st);
    } else {
        ok(0, "daemon exit status 0 (still running)");
    }
}

/* The daemon's configuration; extra lines (later ones win) are how the
 * reload tests change it. */
static bool write_config_ex(const char *path, const char *extra)
{
    FILE *f = fopen(path, "w");
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
            "log_requests true\n"
            "%s",
            MAX_BODY, MAX_TEXT, MAX_HYPS, MAX_K, extra ? extra : "");
    return fclose(f) == 0;
}


/* ---- admin API ---- */

#define ADMIN_AUTH "Authorization: Bearer " ADMIN_TOKEN
#define MAX_BULK 65536

static reply admin(const char *method, const char *path, const char *body)
{
    /* http_ex sends a POST without a body as a GET */
    if (!body && !strcmp(method, "POST"))
        body = "";
    return http_ex(shared, method, path, body, body ? strlen(body) : 0, ADMIN_AUTH, 0);
}

static json_t *admin_json(const char *method, const char *path, const char *body, long want,
                          const char *what)
{
    reply r = admin(method, path, body);
    is_int(r.status, want, "%s: HTTP %ld (%s)", what, want, r.body ? r.body : "");
    json_t *root = parse_json(&r);
    ok(root != NULL, "%s: JSON body", what);
    reply_free(&r);
    return root;
}

static const char *rebuild_state(json_t *root)
{
    return json_string_value(json_object_get(json_object_get(root, "rebuild"), "state"));
}

/* Polls the rebuild status until it is no longer running (30 s at most). */
static bool rebuild_done(const char *catalog)
{
    char path[128], state[32] = "running";
    snprintf(path, sizeof path, "/v1/catalogs/%s/rebuild", catalog);
    for (int i = 0; i < 600 && !strcmp(state, "running"); i++) {
        reply r = admin("GET", path, NULL);
        json_t *root = parse_json(&r);
        snprintf(state, sizeof state, "%s", rebuild_state(root) ? rebuild_state(root) : "?");
        json_decref(root);
        reply_free(&r);
        if (!strcmp(state, "running"))
            sleep_ms(50);
    }
    if (strcmp(state, "done") != 0)
        printf("# rebuild of %s: %s\n", catalog, state);
    return strcmp(state, "done") == 0;
}

static const char *top_of(const char *catalog, const char *text, char *buf, size_t cap)
{
    char body[256];
    snprintf(body, sizeof body, "{\"catalog\":\"%s\",\"text\":\"%s\"}", catalog, text);
    reply r = post_auth(body, "Authorization: Bearer " RESOLVE_TOKEN);
    json_t *root = parse_json(&r);
    snprintf(buf, cap, "%s", first_id(root) ? first_id(root) : "(none)");
    json_decref(root);
    reply_free(&r);
    return buf;
}

/* Every admin route and method refuses a request without the admin token:
 * none, a wrong one, the other classes' tokens, the wrong scheme. */
static void test_admin_auth(void)
{
    static const struct {
        const char *method, *path, *body;
    } routes[] = {
        {"GET", "/v1/catalogs", NULL},
        {"POST", "/v1/catalogs", "{\"name\":\"sneaky\"}"},
        {"GET", "/v1/catalogs/mini", NULL},
        {"DELETE", "/v1/catalogs/mini", NULL},
        {"POST", "/v1/catalogs/mini/entities", "{\"id\":\"s\",\"name\":\"Sneaky\"}"},
        {"GET", "/v1/catalogs/mini/entities/goodbooks:1", NULL},
        {"DELETE", "/v1/catalogs/mini/entities/goodbooks:1", NULL},
        {"POST", "/v1/catalogs/mini/bulk", "{\"id\":\"s\",\"name\":\"Sneaky\"}\n"},
        {"POST", "/v1/catalogs/mini/rebuild", ""},
        {"GET", "/v1/catalogs/mini/rebuild", NULL},
    };
    static const char *const bad[] = {
        NULL,
        "Authorization: Bearer wrong-token-0123456789abcdef",
        "Authorization: Bearer " RESOLVE_TOKEN,
        "Authorization: Bearer " METRICS_TOKEN,
        "Authorization: Basic " ADMIN_TOKEN,
        "Authorization: Bearer " ADMIN_TOKEN "x",
    };
    int refused = 0, total = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            reply r = http_ex(shared, routes[i].method, routes[i].path, routes[i].body,
                              routes[i].body ? strlen(routes[i].body) : 0, bad[j], 0);
            json_t *root = parse_json(&r);
            const char *code = json_string_value(json_object_get(json_object_get(root, "error"), "code"));
            bool good = r.status == 401 && code && !strcmp(code, "unauthorized") && r.www_auth[0];
            if (!good)
                printf("# %s %s with %s: %ld %s\n", routes[i].method, routes[i].path,
                       bad[j] ? bad[j] : "no token", r.status, r.body ? r.body : "");
            refused += good;
            total++;
            json_decref(root);
            reply_free(&r);
        }
    }
    is_int(refused, total, "%d admin requests without the admin token: all 401 unauthorized", total);
    /* and none of them changed anything */
    json_t *root = admin_json("GET", "/v1/catalogs/mini/entities/goodbooks:1", NULL, 200,
                              "entity untouched by refused requests");
    is_str(json_string_value(json_object_get(root, "name")), "The Hunger Games", "still there");
    json_decref(root);
    expect_error(admin("GET", "/v1/catalogs/sneaky", NULL), 404, "unknown_catalog",
                 "refused create created nothing");
}

static void test_admin_crud(void)
{
    char top[128];
    json_t *root = admin_json("GET", "/v1/catalogs", NULL, 200, "list catalogs");
    json_t *first = json_array_get(json_object_get(root, "catalogs"), 0);
    is_str(json_string_value(json_object_get(first, "name")), "mini", "mini listed");
    ok(json_is_true(json_object_get(first, "served")), "and served");
    json_decref(root);

    root = admin_json("GET", "/v1/catalogs/mini", NULL, 200, "describe mini");
    is_int(json_integer_value(json_object_get(root, "entities")), 46, "46 entities");
    json_t *index = json_object_get(root, "index");
    ok(json_is_object(index) && json_string_value(json_object_get(index, "encoder")),
       "index described with its encoder");
    is_int(json_integer_value(json_object_get(root, "pending_changes")), 0, "nothing pending");
    json_decref(root);

    json_decref(admin_json("POST", "/v1/catalogs", "{\"name\":\"scratch\"}", 201, "create scratch"));
    expect_error(admin("POST", "/v1/catalogs", "{\"name\":\"scratch\"}"), 409, "exists", "create twice");
    expect_error(admin("POST", "/v1/catalogs", "{\"name\":\"Bad Name!\"}"), 400, "invalid_argument",
                 "invalid catalog name");
    expect_error(admin("POST", "/v1/catalogs", "{\"name\":\"x\",\"color\":\"red\"}"), 400,
                 "invalid_argument", "unknown field in create");
    expect_error(admin("POST", "/v1/catalogs", "{\"name\":"), 400, "malformed_json", "create: bad JSON");
    expect_error(admin("PUT", "/v1/catalogs", "{}"), 405, "method_not_allowed", "PUT /v1/catalogs");
    expect_error(admin("POST", "/v1/catalogs/mini", "{}"), 405, "method_not_allowed",
                 "POST /v1/catalogs/mini");
    expect_error(admin("GET", "/v1/catalogs/mini/bulk", NULL), 405, "method_not_allowed",
                 "GET /v1/catalogs/mini/bulk");
    expect_error(admin("GET", "/v1/catalogs/nope", NULL), 404, "unknown_catalog", "describe unknown");
    expect_error(admin("GET", "/v1/catalogs/mini/entities/nope", NULL), 404, "not_found",
                 "unknown entity");
    expect_error(admin("POST", "/v1/catalogs/nope/entities", "{\"id\":\"1\",\"name\":\"x\"}"), 404,
                 "unknown_catalog", "upsert into an unknown catalog");
    expect_error(admin("POST", "/v1/catalogs/mini/entities", "{\"id\":\"1\"}"), 400, "parse_error",
                 "upsert without a name");
    expect_error(admin("POST", "/v1/catalogs/mini/entities", "{\"id\":\"1\",\"name\":\"x\",\"alias\":[]}"),
                 400, "parse_error", "upsert with a misspelt field");
    expect_error(admin("DELETE", "/v1/catalogs/mini/entities/nope", NULL), 404, "not_found",
                 "delete a missing entity");
    char over[MAX_BODY + 64];
    snprintf(over, sizeof over, "{\"id\":\"1\",\"name\":\"%0*d\"}", MAX_BODY, 7);
    expect_error(admin("POST", "/v1/catalogs/mini/entities", over), 413, "body_too_large",
                 "upsert over max_body_bytes");

    /* an unbuilt catalog is served once rebuilt */
    root = admin_json("POST", "/v1/catalogs/scratch/entities",
                      "{\"id\":\"s1\",\"name\":\"Walrus Cathedral\",\"aliases\":[\"The Walrus\"]}", 200,
                      "upsert into scratch");
    ok(json_is_true(json_object_get(root, "created")), "created");
    json_decref(root);
    expect_error(post_auth("{\"catalog\":\"scratch\",\"text\":\"walrus\"}", "Authorization: Bearer " RESOLVE_TOKEN),
                 409, "index_not_built", "not served before a first build");
    root = admin_json("POST", "/v1/catalogs/scratch/rebuild", NULL, 202, "rebuild scratch");
    is_str(rebuild_state(root), "running", "rebuild running");
    json_decref(root);
    ok(rebuild_done("scratch"), "scratch rebuilt");
    is_str(top_of("scratch", "walrus cathedral", top, sizeof top), "s1", "scratch served after its rebuild");
    /* the index gauge follows what is served, not what was loaded at start */
    root = admin_json("GET", "/v1/catalogs/scratch", NULL, 200, "describe scratch");
    double described = json_number_value(json_object_get(json_object_get(root, "index"), "vectors"));
    json_decref(root);
    char *mtext = scrape("Authorization: Bearer " METRICS_TOKEN);
    ok(mtext && described > 0 && metric(mtext, "erd_index_vectors{catalog=\"scratch\"}") == described,
       "erd_index_vectors of a catalog built after start (%.0f)", described);
    free(mtext);

    /* bulk: good lines land, bad ones are reported by number */
    static const char bulk[] =
        "{\"id\":\"s2\",\"name\":\"Papaya Orchestra\"}\n"
        "\n"
        "{\"id\":\"s3\"}\n"
        "not json at all\n"
        "{\"id\":\"s4\",\"name\":\"Saffron Submarine\"}\r\n"
        "{\"id\":\"s1\",\"name\":\"Walrus Cathedral\",\"aliases\":[\"Walrus Church\"]}";
    root = admin_json("POST", "/v1/catalogs/scratch/bulk", bulk, 200, "bulk upload");
    is_int(json_integer_value(json_object_get(root, "lines")), 5, "5 non-blank lines");
    is_int(json_integer_value(json_object_get(root, "upserted")), 3, "3 upserted (the last without a newline)");
    is_int(json_integer_value(json_object_get(root, "created")), 2, "2 of them new");
    is_int(json_integer_value(json_object_get(root, "failed")), 2, "2 failed");
    json_t *errs = json_object_get(root, "errors");
    is_int(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 3, "first error on line 3");
    is_int(json_integer_value(json_object_get(json_array_get(errs, 1), "line")), 4, "second on line 4");
    json_decref(root);
    is_str(top_of("scratch", "saffron submarine", top, sizeof top), "s4", "bulk entity served at once");
    expect_error(admin("POST", "/v1/catalogs/nope/bulk", "{\"id\":\"1\",\"name\":\"x\"}\n"), 404,
                 "unknown_catalog", "bulk into an unknown catalog");
    /* over max_bulk_bytes: refused up front when the length is known, cut
     * off when it is streamed */
    char *big = malloc(MAX_BULK + 2);
    memset(big, ' ', MAX_BULK + 1);
    big[MAX_BULK + 1] = '\0';
    expect_error(admin("POST", "/v1/catalogs/scratch/bulk", big), 413, "body_too_large",
                 "bulk over max_bulk_bytes");
    free(big);
    CURL *c = curl_easy_init();
    expect_error(http_ex(c, "POST", "/v1/catalogs/scratch/bulk", NULL, 0, ADMIN_AUTH, 2 * MAX_BULK),
                 413, "body_too_large", "streamed bulk over max_bulk_bytes");
    curl_easy_cleanup(c);
    root = admin_json("GET", "/v1/catalogs/scratch/entities/s1", NULL, 200, "get entity");
    is_str(json_string_value(json_array_get(json_object_get(root, "aliases"), 0)), "Walrus Church",
           "replaced by the bulk line");
    json_decref(root);
    /* an id with a '/' (URLs, ISBN paths) is addressed with %2F */
    json_decref(admin_json("POST", "/v1/catalogs/scratch/entities",
                           "{\"id\":\"isbn/978-0/x\",\"name\":\"Slash Title\"}", 200,
                           "upsert an id holding slashes"));
    root = admin_json("GET", "/v1/catalogs/scratch/entities/isbn%2F978-0%2Fx", NULL, 200,
                      "get it with %2F");
    is_str(json_string_value(json_object_get(root, "id")), "isbn/978-0/x", "the whole id");
    json_decref(root);
    json_decref(admin_json("DELETE", "/v1/catalogs/scratch/entities/isbn%2F978-0%2Fx", NULL, 200,
                           "delete it with %2F"));
    expect_error(admin("GET", "/v1/catalogs/scratch/entities/isbn%2F978-0%2Fx", NULL), 404,
                 "not_found", "gone");

    json_decref(admin_json("DELETE", "/v1/catalogs/scratch", NULL, 200, "delete scratch"));
    expect_error(post_auth("{\"catalog\":\"scratch\",\"text\":\"walrus\"}", "Authorization: Bearer " RESOLVE_TOKEN),
                 404, "unknown_catalog", "deleted catalog no longer served");
    json_decref(admin_json("POST", "/v1/catalogs", "{\"name\":\"empty\"}", 201, "create empty"));
    root = admin_json("GET", "/v1/catalogs/empty", NULL, 200, "describe a catalog never built");
    ok(json_is_null(json_object_get(root, "index")), "its index is null");
    ok(json_is_false(json_object_get(json_object_get(root, "serving"), "served")), "and it is not served");
    json_decref(root);
    expect_error(admin("POST", "/v1/catalogs/empty/rebuild", NULL), 400, "empty",
                 "rebuild of a catalog without entities");
    json_decref(admin_json("DELETE", "/v1/catalogs/empty", NULL, 200, "delete empty"));
}

/* The freshness test: a client resolves without pause while entities are
 * upserted, deleted and the catalog rebuilt under it. */
typedef struct hammer {
    atomic_int stop;
    long requests, failed;
    char last_fail[256];
} hammer;

static void *hammer_main(void *arg)
{
    hammer *hm = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s/v1/resolve", base_url);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Authorization: Bearer " RESOLVE_TOKEN);
    static const char *texts[] = {"the hunger games", "twilight", "the great gatsby"};
    static const char *ids[] = {"goodbooks:1", "goodbooks:3", "goodbooks:5"};
    while (!atomic_load(&hm->stop)) {
        int i = (int)(hm->requests % 3);
        char body[128];
        reply r = {0};
        snprintf(body, sizeof body, "{\"catalog\":\"mini\",\"text\":\"%s\",\"k\":3}", texts[i]);
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        CURLcode cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        json_t *root = parse_json(&r);
        const char *id = first_id(root);
        hm->requests++;
        if (cc != CURLE_OK || r.status != 200 || !id || strcmp(id, ids[i]) != 0) {
            hm->failed++;
            snprintf(hm->last_fail, sizeof hm->last_fail, "curl %d, HTTP %ld: %.200s", (int)cc,
                     r.status, r.body ? r.body : "");
        }
        json_decref(root);
        reply_free(&r);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Polls resolves of text until id is the top result (present) or absent
 * from the results (!present); false when that does not happen in 5 s. */
static bool await_resolve(const char *text, const char *id, bool present)
{
    char body[256];
    snprintf(body, sizeof body, "{\"catalog\":\"mini\",\"text\":\"%s\",\"k\":5}", text);
    double t0 = now_s();
    while (now_s() - t0 < 5) {
        reply r = post_auth(body, "Authorization: Bearer " RESOLVE_TOKEN);
        bool found = false, top = false;
        json_t *root = parse_json(&r);
        json_t *res = json_object_get(root, "results");
        for (size_t i = 0; i < json_array_size(res); i++) {
            const char *got = json_string_value(json_object_get(json_array_get(res, i), "id"));
            if (got && !strcmp(got, id)) {
                found = true;
                top = i == 0;
            }
        }
        json_decref(root);
        reply_free(&r);
        if (present ? top : !found)
            return true;
        sleep_ms(5);
    }
    return false;
}

static void test_admin_freshness(void)
{
    static const char *names[] = {"marmalade skyscraper", "velvet thunderstorm", "cobalt lighthouse keeper",
                                  "granite butterfly", "lemonade volcano", "obsidian carousel",
                                  "tangerine glacier", "quokka parliament"};
    enum { N = sizeof names / sizeof names[0] };
    hammer hm = {0};
    pthread_t th;
    ok(pthread_create(&th, NULL, hammer_main, &hm) == 0, "resolve client started");
    double worst = 0;
    int visible = 0, gone = 0, deleted = 0;
    bool rebuilding = false;
    for (int i = 0; i < N; i++) {
        char body[256], id[32];
        snprintf(id, sizeof id, "fresh:%d", i);
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"name\":\"%s\"}", id, names[i]);
        double t0 = now_s();
        reply r = admin("POST", "/v1/catalogs/mini/entities", body);
        long st = r.status;
        reply_free(&r);
        bool seen = await_resolve(names[i], id, true);
        double t = now_s() - t0;
        if (st == 200 && seen) {
            visible++;
            worst = t > worst ? t : worst;
        } else {
            printf("# %s: upsert %ld, visible: %d after %.3f s\n", names[i], st, seen, t);
        }
        if (i == 2) {
            r = admin("POST", "/v1/catalogs/mini/rebuild", NULL);
            rebuilding = r.status == 202;
            reply_free(&r);
        }
        if (i % 3 == 1) { /* some go again */
            char path[96];
            snprintf(path, sizeof path, "/v1/catalogs/mini/entities/%s", id);
            r = admin("DELETE", path, NULL);
            st = r.status;
            reply_free(&r);
            deleted++;
            gone += st == 200 && await_resolve(names[i], id, false);
        }
    }
    ok(rebuilding, "a rebuild was started mid-way");
    ok(rebuild_done("mini"), "rebuild finished");
    /* after the swap, every surviving upsert is still found, deleted ones not */
    int after = 0;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "fresh:%d", i);
        after += await_resolve(names[i], id, i % 3 != 1);
    }
    atomic_store(&hm.stop, 1);
    pthread_join(th, NULL);
    printf("# %ld resolves during the writes and the rebuild, %ld failed%s%s\n", hm.requests,
           hm.failed, hm.failed ? "; last: " : "", hm.last_fail);
    printf("# worst upsert-to-visible: %.3f s\n", worst);
    is_int(visible, N, "%d upserted entities found by /v1/resolve", N);
    ok(worst < 1.0, "each within 1 s of the upsert (worst %.3f s)", worst);
    is_int(gone, deleted, "deleted entities no longer returned");
    is_int(after, N, "after the rebuild swap: upserts found, deletions gone");
    ok(hm.requests > 50, "the client kept resolving (%ld requests)", hm.requests);
    is_int(hm.failed, 0, "no resolve failed or answered wrong during writes and the rebuild");
    json_t *root = admin_json("GET", "/v1/catalogs/mini", NULL, 200, "describe after");
    is_int(json_integer_value(json_object_get(json_object_get(root, "serving"), "served_generation")),
           json_integer_value(json_object_get(root, "generation")), "served generation is the database's");
    char *m = scrape("Authorization: Bearer " METRICS_TOKEN);
    ok(m && metric(m, "erd_catalog_generation{catalog=\"mini\"}") ==
                (double)json_integer_value(json_object_get(root, "generation")),
       "erd_catalog_generation in /metrics agrees");
    ok(m && metric(m, "erd_rebuild_last_seconds{catalog=\"mini\"}") > 0, "last rebuild's duration exported");
    free(m);
    json_decref(root);
}

static void test_admin(void)
{
    char extra[1024];
    snprintf(extra, sizeof extra,
             "resolve_token %s\nadmin_token_file %s\nmetrics_token %s\nmax_bulk_bytes %d\n",
             RESOLVE_TOKEN, token_path, METRICS_TOKEN, MAX_BULK);
    ok(write_config_ex(conf_path, extra), "config with tokens and max_bulk_bytes written");
    ok(reload_daemon("erd: configuration reloaded"), "reloaded");
    test_admin_auth();
    test_admin_crud();
    test_admin_freshness();
}

static bool write_config(void)
{
    return write_config_ex(conf_path, NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    erd_exe = getenv("ERD_EXE");
    srcdir = getenv("ERD_TEST_SRCDIR");
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
    snprintf(token_path, sizeof token_path, "%s/admin.token", tmpdir);
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
        test_match_explain();
        test_errors();
        test_concurrent();
        test_metrics_forbidden();
        test_reload_tokens();
        test_metrics();
        test_bad_reload();
        test_admin();
        test_secrets_stay_secret();
        test_shutdown();
        test_startup_errors();
        test_bare_daemon();
        test_openapi();
    }
    if (tap__failed) {
        printf("# daemon log:\n");
        show_log(log_path);
    }
    curl_easy_cleanup(shared);
    curl_global_cleanup();
    for (size_t i = 0; i < n_captures; i++)
        free(captures[i].body);
    return tap_done();
}
