/* Replays a fuzz target's committed corpus (every file under the folders
 * given) as a TAP test, so every build checks the inputs fuzzing found. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_run;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len); /* aborts on a finding */
    free(buf);
    printf("ok %d - %s\n", ++n_run, path);
    return 0;
}

static int replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort); /* sorted: same order every run */
    if (n < 0) {
        printf("not ok %d - cannot read %s\n", ++n_run, dir);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (names[i]->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay_file(path) < 0) {
                printf("not ok %d - cannot read %s\n", ++n_run, path);
                rc = -1;
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i]) < 0)
            rc = 1;
    if (n_run == 0) {
        printf("not ok 1 - empty corpus\n");
        n_run = 1;
        rc = 1;
    }
    printf("1..%d\n", n_run);
    return rc;
}
