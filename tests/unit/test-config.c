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
    char dump[8192];
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
    return tap_done();
}
