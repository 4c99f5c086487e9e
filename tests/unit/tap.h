/* Minimal TAP producer for unit tests: meson reads the protocol, so every
 * check is reported by name and a failing one fails the test. */
#ifndef ERD_TAP_H
#define ERD_TAP_H

#include <stdio.h>
#include <string.h>

static int tap__n, tap__failed;

#define ok(cond, ...)                                                        \
    do {                                                                     \
        int tap__c = !!(cond);                                               \
        tap__n++;                                                            \
        if (!tap__c) tap__failed++;                                          \
        printf("%s %d - ", tap__c ? "ok" : "not ok", tap__n);                \
        printf(__VA_ARGS__);                                                 \
        printf("\n");                                                        \
        if (!tap__c) printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    } while (0)

#define is_int(got, want, ...)                                               \
    do {                                                                     \
        long long tap__g = (long long)(got), tap__w = (long long)(want);     \
        ok(tap__g == tap__w, __VA_ARGS__);                                   \
        if (tap__g != tap__w) printf("#   got %lld, want %lld\n", tap__g, tap__w); \
    } while (0)

#define is_str(got, want, ...)                                               \
    do {                                                                     \
        const char *tap__g = (got), *tap__w = (want);                        \
        int tap__eq = tap__g && tap__w && strcmp(tap__g, tap__w) == 0;       \
        ok(tap__eq, __VA_ARGS__);                                            \
        if (!tap__eq) printf("#   got \"%s\", want \"%s\"\n", tap__g ? tap__g : "(null)", tap__w ? tap__w : "(null)"); \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap__n);
    return tap__failed ? 1 : 0;
}

#endif
