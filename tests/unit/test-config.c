#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "tap.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/erd-test-config.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        return NULL;
    }
    close(fd);
    return path;
}

int main(void)
{
    cfg_config cfg;
    erd_diag d = {0};
    cfg_defaults(&cfg);
    is_str(cfg.listen, "127.0.0.1:8080", "listens on loopback by default");
    is_int(cfg.default_k, 5, "default k is 5");
    ok(cfg.max_body_bytes == 65536, "default body limit");
    ok(cfg.log_requests, "request log on by default");

    /* The dump must parse back into the same configuration. */
    char dump[32768];
    FILE *mem = fmemopen(dump, sizeof dump, "w");
    cfg_dump(&cfg, mem);
    fclose(mem);
    char *path = write_tmp(dump);
    cfg_config back;
    cfg_defaults(&back);
    cfg_set(&back, "max_k", "7", NULL);
    is_int(cfg_load_file(&back, path, &d), ERD_OK, "dump parses back: %s", d.msg);
    is_int(back.max_k, 100, "dump restores values");
    unlink(path);

    is_int(cfg_set(&cfg, "max_k", "50", &d), ERD_OK, "set max_k");
    is_int(cfg.max_k, 50, "max_k set");
    is_int(cfg_set(&cfg, "max_k", "0", &d), ERD_ECONFIG, "max_k below range refused");
    ok(strstr(d.msg, "max_k") != NULL, "message names the key: %s", d.msg);
    is_int(cfg.max_k, 50, "refused value changes nothing");
    is_int(cfg_set(&cfg, "max_k", "12abc", &d), ERD_ECONFIG, "junk integer refused");
    is_int(cfg_set(&cfg, "nope", "1", &d), ERD_ENOTFOUND, "unknown key refused");
    is_int(cfg_set(&cfg, "log_requests", "maybe", &d), ERD_ECONFIG, "bad bool refused");
    is_int(cfg_set(&cfg, "default_k", "60", &d), ERD_ECONFIG, "default_k above max_k refused");
    is_int(cfg_set(&cfg, "listen", "nowhere", &d), ERD_ECONFIG, "listen without port refused");
    is_int(cfg_set(&cfg, "ivf_search", "nprobe=256,gprobe=32", &d), ERD_OK, "ivf_search set");
    is_int(cfg_set(&cfg, "ivf_search", "", &d), ERD_OK, "ivf_search empty: the file's");
    static const char *const bad_search[] = {"nprobe", "nprobe=0", "nprobe=-1", "nprobe=4,",
                                             "nprobe=4,,gprobe=2", "efSearch=64", "nprobe=4x"};
    for (size_t i = 0; i < sizeof bad_search / sizeof *bad_search; i++)
        is_int(cfg_set(&cfg, "ivf_search", bad_search[i], &d), ERD_ECONFIG, "ivf_search \"%s\" refused",
               bad_search[i]);

    path = write_tmp("# comment\n\nthreads 3\nmax_hypotheses = 4\nbogus 1\n");
    cfg_config before = cfg;
    is_int(cfg_load_file(&cfg, path, &d), ERD_ECONFIG, "unknown key in file refused");
    ok(strstr(d.msg, ":5:") && strstr(d.msg, "bogus"), "message names line and key: %s", d.msg);
    ok(memcmp(&before, &cfg, sizeof cfg) == 0, "a bad file changes nothing");
    unlink(path);

    path = write_tmp("threads 3 # trailing comment\nmax_hypotheses = 4\nfaiss_factory \"HNSW32\"\n");
    is_int(cfg_load_file(&cfg, path, &d), ERD_OK, "valid file loads");
    is_int(cfg.threads, 3, "threads from file");
    is_int(cfg.max_hypotheses, 4, "key = value form");
    is_str(cfg.faiss_factory, "HNSW32", "quoted value");
    unlink(path);

    is_int(cfg_load_file(&cfg, "/nonexistent/erd.conf", &d), ERD_EIO, "missing file is EIO");

    setenv("ERD_MAX_TEXT_BYTES", "100", 1);
    is_int(cfg_load_env(&cfg, &d), ERD_OK, "env override");
    ok(cfg.max_text_bytes == 100, "env sets max_text_bytes");
    setenv("ERD_MAX_TEXT_BYTES", "-1", 1);
    is_int(cfg_load_env(&cfg, &d), ERD_ECONFIG, "bad env refused");
    ok(strstr(d.msg, "ERD_MAX_TEXT_BYTES") != NULL, "message names the variable: %s", d.msg);
    unsetenv("ERD_MAX_TEXT_BYTES");

    /* Secrets: empty by default, validated, never printed. */
    cfg_defaults(&cfg);
    ok(cfg.admin_token[0] == '\0' && cfg.resolve_token[0] == '\0', "no tokens by default");
    is_int(cfg.max_connections_per_ip, 64, "a per-address limit by default");
    is_int(cfg.max_half_open_per_ip, 32, "a per-address half-open limit by default");
    is_int(cfg.header_timeout_s, 10, "header deadline 10 s by default");
    is_int(cfg_set(&cfg, "admin_token", "short", &d), ERD_ECONFIG, "short token refused");
    ok(strstr(d.msg, "short") == NULL, "message does not quote the token: %s", d.msg);
    is_int(cfg_set(&cfg, "admin_token", "has space in it 0123456789", &d), ERD_ECONFIG,
           "token with a space refused");
    is_int(cfg_set(&cfg, "admin_token", CFG_SECRET_PLACEHOLDER, &d), ERD_ECONFIG,
           "the dump's placeholder is refused as a token");
    is_int(cfg_set(&cfg, "admin_token", "s3cr3t-admin-token-0123456789", &d), ERD_OK, "admin token set");
    is_int(cfg_set(&cfg, "resolve_token", "s3cr3t-resolve-token-0123456789", &d), ERD_OK,
           "resolve token set");
    mem = fmemopen(dump, sizeof dump, "w");
    cfg_dump(&cfg, mem);
    fclose(mem);
    ok(strstr(dump, "s3cr3t") == NULL, "dump never shows a token");
    ok(strstr(dump, "\nadmin_token <set>\n") != NULL, "dump says the admin token is set");
    ok(strstr(dump, "\nmetrics_token \"\"\n") != NULL, "dump shows an unset token as empty");
    ok(strstr(dump, "SIGHUP reloads it") != NULL, "dump marks reloadable keys");
    path = write_tmp(dump);
    cfg_defaults(&back);
    is_int(cfg_load_file(&back, path, &d), ERD_ECONFIG, "a dump with a set token does not load as is");
    ok(strstr(d.msg, "resolve_token: \"<set>\"") != NULL, "and says which key: %s", d.msg);
    unlink(path);

    ok(cfg_reloadable("max_k") && cfg_reloadable("admin_token") && cfg_reloadable("log_requests"),
       "limits, tokens and logging are reloadable");
    ok(!cfg_reloadable("listen") && !cfg_reloadable("threads") && !cfg_reloadable("db") &&
       !cfg_reloadable("max_connections") && !cfg_reloadable("nope"),
       "listen, threads, db, connection limit are not");

    cfg_config a, b;
    char names[256];
    cfg_defaults(&a);
    b = a;
    cfg_set(&b, "max_k", "9", NULL);
    cfg_set(&b, "listen", "0.0.0.0:1", NULL);
    cfg_set(&b, "admin_token", "another-token-0123456789", NULL);
    is_int(cfg_diff(&a, &b, true, names, sizeof names), 2, "two reloadable keys differ");
    ok(strstr(names, "max_k") && strstr(names, "admin_token") && !strstr(names, "another"),
       "named, values left out: %s", names);
    is_int(cfg_diff(&a, &b, false, names, sizeof names), 1, "one fixed key differs");
    is_str(names, "listen", "fixed key named");
    cfg_copy_reloadable(&a, &b);
    is_int(a.max_k, 9, "reloadable key copied");
    is_str(a.listen, "127.0.0.1:8080", "fixed key untouched");
    is_int(cfg_diff(&a, &b, true, names, sizeof names), 0, "nothing reloadable differs after the copy");

    /* admin_token_file: first line, trimmed; exclusive with admin_token. */
    char *tpath = write_tmp("file-token-0123456789abcdef\nsecond line ignored\n");
    char tp[64];
    snprintf(tp, sizeof tp, "%s", tpath);
    char conf[256];
    snprintf(conf, sizeof conf, "admin_token_file %s\nmax_k 42\n", tp);
    path = write_tmp(conf);
    char cp[64];
    snprintf(cp, sizeof cp, "%s", path);
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_OK, "cfg_load with a token file: %s", d.msg);
    is_str(cfg.admin_token, "file-token-0123456789abcdef", "token read from its file");
    is_int(cfg.max_k, 42, "file values applied");
    setenv("ERD_ADMIN_TOKEN", "env-token-0123456789abcdef", 1);
    cfg_config keep = cfg;
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_ECONFIG, "token and token file both set refused");
    ok(memcmp(&keep, &cfg, sizeof cfg) == 0, "a failed cfg_load changes nothing");
    unsetenv("ERD_ADMIN_TOKEN");
    setenv("ERD_RESOLVE_TOKEN", "env-resolve-0123456789abcdef", 1);
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_OK, "resolve token from the environment");
    is_str(cfg.resolve_token, "env-resolve-0123456789abcdef", "ERD_RESOLVE_TOKEN applied");
    unsetenv("ERD_RESOLVE_TOKEN");
    unlink(tp);
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_ECONFIG, "missing token file refused");
    ok(strstr(d.msg, "admin_token_file") != NULL, "message names the key: %s", d.msg);
    tpath = write_tmp("\n\n");
    snprintf(tp, sizeof tp, "%s", tpath);
    snprintf(conf, sizeof conf, "admin_token_file %s\n", tp);
    unlink(cp);
    path = write_tmp(conf);
    snprintf(cp, sizeof cp, "%s", path);
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_ECONFIG, "empty token file refused");
    unlink(tp);
    static const char *const flags[] = {"threads", "3", "listen", "[::1]:9", NULL};
    is_int(cfg_load(&cfg, cp, NULL, &d), ERD_ECONFIG, "still refused");
    unlink(cp);
    is_int(cfg_load(&cfg, NULL, flags, &d), ERD_OK, "overrides applied: %s", d.msg);
    ok(cfg.threads == 3 && strcmp(cfg.listen, "[::1]:9") == 0, "threads and listen from overrides");
    static const char *const badflag[] = {"threads", "9999", NULL};
    is_int(cfg_load(&cfg, NULL, badflag, &d), ERD_EINVAL, "bad override is a usage error");
    ok(strstr(d.msg, "--threads") != NULL, "names the flag: %s", d.msg);
    /* no_match_threshold: a global value, per-catalog ones, auto */
    double t = -1;
    is_int(cfg_no_match_threshold("auto", "video", &t), 0, "auto: the calibration's own");
    ok(cfg_no_match_threshold("0.3", "video", &t) == 1 && t == 0.3, "a number applies to all");
    ok(cfg_no_match_threshold("auto,video=0.4", "video", &t) == 1 && t == 0.4,
       "a catalog's own entry wins");
    is_int(cfg_no_match_threshold("auto,video=0.4", "book", &t), 0, "others keep the global");
    is_int(cfg_no_match_threshold("0.2,video=auto", "video", &t), 0, "a catalog may ask for auto");
    ok(cfg_no_match_threshold("video=0.5,0.1", "videos", &t) == 1 && t == 0.1,
       "catalog names match whole");
    const char *bad[] = {"1.5", "-0.1", "video=", "=0.3", "auto,", "often", "video=0.2x"};
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refused += cfg_no_match_threshold(bad[i], NULL, &t) == ERD_ECONFIG;
    is_int(refused, 7, "malformed thresholds refused");
    is_int(cfg_set(&cfg, "no_match_threshold", "auto,video=2", &d), ERD_ECONFIG,
           "a bad threshold is a configuration error");
    ok(strstr(d.msg, "no_match_threshold") != NULL, "naming the key: %s", d.msg);
    ok(cfg_reloadable("no_match_threshold"), "the threshold reloads");

    return tap_done();
}
