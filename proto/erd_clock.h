/* The monotonic clock every stage timer, progress line and deadline reads:
 * seconds as a double for people, nanoseconds for counters.  Header-only. */
#ifndef ERD_CLOCK_H
#define ERD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t erd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double erd_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
