/* Minimal TAP producer for unit tests: meson reads the protocol, so every
 * check is reported by name and a failing one fails the test. */
#ifndef ERD_TAP_H
#define ERD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap__n, tap__failed;

/* A description is one TAP line, cut to the buffer: control characters
 * from test inputs would start lines the TAP reader cannot parse. */
__attribute__((format(printf, 3, 4))) static inline void tap__describe(char *buf, size_t cap,
                                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    for (char *s = buf; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
}

#define ok(cond, ...)                                                        \
    do {                                                                     \
        int tap__c = !!(cond);                                               \
        tap__n++;                                                            \
        if (!tap__c) tap__failed++;                                          \
        char tap__d[512];                                                    \
        tap__describe(tap__d, sizeof tap__d, __VA_ARGS__);                   \
        printf("%s %d - %s\n", tap__c ? "ok" : "not ok", tap__n, tap__d);    \
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

/* One check that could not run here (a tool or data file missing): meson
 * counts it as skipped, not passed. */
static inline void tap_skip(const char *reason)
{
    printf("ok %d # SKIP %s\n", ++tap__n, reason);
}

/* The whole test cannot run here: a plan of none with the reason, which
 * meson reports as SKIP.  Call before any check; main returns it. */
static inline int tap_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    return 0;
}

static inline int tap_done(void)
{
    printf("1..%d\n", tap__n);
    return tap__failed ? 1 : 0;
}

#endif
