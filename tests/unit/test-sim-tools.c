/* Simulator, end to end: a real flite + sox + pocketsphinx run hears what
 * was said, resumes, and refuses an output file made from other phrases.
 * Without those tools the whole test is a skip, not a pass. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phonetics/sim/pho_phrasegen.h"
#include "phonetics/sim/pho_sim.h"
#include "tap.h"
#include "tmpdir.h"

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        if (snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, prog) < (int)sizeof buf &&
            access(buf, X_OK) == 0)
            return 1;
        p += len;
        p += *p == ':';
    }
    return 0;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_end_to_end(void)
{
    static const char *const phrases[] = {"good morning", "The Silent Harbor", "lighthouse"};
    char dir[200], in[256], out[256], other[256];
    pho_sim_opts o;
    pho_sim_batch b = {0};
    pho_sim_progress prog;
    erd_diag diag = {0};
    FILE *f;
    int rc;

    if (!tmpdir_make(dir, sizeof dir, "sim")) {
        ok(0, "mkdtemp");
        return;
    }
    snprintf(in, sizeof in, "%s/phrases.txt", dir);
    snprintf(out, sizeof out, "%s/pairs.jsonl", dir);
    snprintf(other, sizeof other, "%s/other.txt", dir);
    f = fopen(in, "w");
    for (size_t i = 0; f && i < 3; i++)
        fprintf(f, "%s\n%s", phrases[i], i == 0 ? "\n" : ""); /* a blank line is skipped */
    if (f)
        fclose(f);

    /* A clear voice at normal speed: "good morning" must come through. */
    pho_sim_opts_init(&o);
    pho_sim_opts_set_voices(&o, "slt", NULL);
    o.speed_min = o.speed_max = 1.0;
    o.noise_prob = 0.0;
    b.in_path = in;
    b.out_path = out;
    b.jobs = 2;
    rc = pho_sim_run_batch(&o, &b, &prog, &diag);
    is_int(rc, ERD_OK, "batch runs (%s)", rc ? diag.msg : "ok");
    is_int(prog.done, 3, "three records written");
    is_int(prog.failed, 0, "none failed");
    is_int(count_lines(out), 3, "three lines");

    int seen[3] = {0}, heard_morning = 0;
    char line[8192];
    f = fopen(out, "r");
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "id"));
        json_t *nb = json_object_get(j, "nbest");
        size_t n = json_array_size(nb), distinct = 1;
        ok(j && id && !strncmp(id, "sim-", 4), "line parses: %.60s", line);
        int idx = id ? atoi(id + 4) : -1;
        ok(idx >= 0 && idx < 3, "id in range");
        if (idx < 0 || idx > 2) {
            json_decref(j);
            continue;
        }
        seen[idx]++;
        is_str(json_string_value(json_object_get(j, "spoken")), phrases[idx], "spoken text");
        ok(n >= 1 && n <= 5, "%s: %zu hypotheses", phrases[idx], n);
        for (size_t a = 1; a < n; a++) {
            int dup = 0;
            for (size_t c = 0; c < a; c++)
                dup |= !strcmp(json_string_value(json_object_get(json_array_get(nb, a), "text")),
                               json_string_value(json_object_get(json_array_get(nb, c), "text")));
            distinct += !dup;
        }
        is_int(distinct, n, "%s: hypotheses are distinct", phrases[idx]);
        for (size_t a = 0; a < n; a++) {
            const char *t = json_string_value(json_object_get(json_array_get(nb, a), "text"));
            ok(t && *t && json_is_integer(json_object_get(json_array_get(nb, a), "score")),
               "%s: hypothesis %zu \"%s\"", phrases[idx], a, t ? t : "");
            if (idx == 0 && t && strstr(t, "morning"))
                heard_morning = 1;
        }
        json_decref(j);
    }
    if (f)
        fclose(f);
    ok(seen[0] == 1 && seen[1] == 1 && seen[2] == 1, "each phrase once");
    ok(heard_morning, "\"good morning\" is heard as something with \"morning\"");

    /* A killed run leaves a torn last line; a rerun drops it, skips the rest. */
    f = fopen(out, "a");
    if (f) {
        fputs("{\"id\": \"sim-", f);
        fclose(f);
    }
    rc = pho_sim_run_batch(&o, &b, &prog, &diag);
    is_int(rc, ERD_OK, "rerun (%s)", rc ? diag.msg : "ok");
    is_int(prog.skipped, 3, "rerun skips what is done");
    is_int(prog.done, 0, "and does nothing more");
    is_int(count_lines(out), 3, "torn line dropped");

    /* The same output against another phrase list is refused. */
    f = fopen(other, "w");
    if (f) {
        fputs("bad weather\nsomething else\n", f);
        fclose(f);
    }
    b.in_path = other;
    ok(pho_sim_run_batch(&o, &b, &prog, &diag) == ERD_EMISMATCH, "foreign output refused");

    /* The same phrase and index decode the same way in another worker. */
    pho_sim_worker *w = NULL;
    pho_sim_result *r1 = calloc(1, sizeof *r1), *r2 = calloc(1, sizeof *r2);
    rc = pho_sim_worker_create(&o, dir, 9, &w, &diag);
    is_int(rc, ERD_OK, "worker (%s)", rc ? diag.msg : "ok");
    if (rc == ERD_OK && r1 && r2) {
        o.noise_prob = 1.0; /* noise is seeded too */
        is_int(pho_sim_worker_run(w, 0, "good morning", r1, &diag), ERD_OK, "run once");
        is_int(pho_sim_worker_run(w, 5, "lighthouse", r2, &diag), ERD_OK, "another phrase");
        is_int(pho_sim_worker_run(w, 0, "good morning", r2, &diag), ERD_OK, "run twice");
        ok(r1->plan.noise != PHO_NOISE_NONE, "noisy plan");
        int same = r1->n_hyps == r2->n_hyps && r1->n_hyps > 0;
        for (size_t i = 0; same && i < r1->n_hyps; i++)
            same = !strcmp(r1->hyps[i].text, r2->hyps[i].text) &&
                   r1->hyps[i].score == r2->hyps[i].score;
        ok(same, "decode does not depend on what the worker decoded before (\"%s\" / \"%s\")",
           r1->hyps[0].text, r2->hyps[0].text);
        is_int(pho_sim_worker_run(w, 1, "", r1, &diag), ERD_EEMPTY, "empty phrase refused");
    }
    pho_sim_worker_destroy(w);
    pho_sim_worker_destroy(NULL);
    free(r1);
    free(r2);

    ok(tmpdir_remove(dir), "temp dir removed");
}

int main(void)
{
    if (!in_path("flite") || !in_path("sox") || access(PHO_SIM_MODEL_DIR "/en-us/mdef", R_OK) != 0)
        return tap_skip_all("flite, sox or the pocketsphinx en-us model is missing");
    test_end_to_end();
    return tap_done();
}
