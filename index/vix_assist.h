/* A second core for one job at a time (index/vix_assist.c). */
#ifndef VIX_ASSIST_H
#define VIX_ASSIST_H

#include <stdbool.h>

/* Hands fn(arg) to the process's helper thread (started on first use):
 * true when it was taken, and the caller must then call vix_assist_end
 * before it touches what fn writes or frees arg; false when the helper is
 * busy with another caller's job or cannot be started, and the caller does
 * the work itself; also false while vix_assist_enter's count leaves no CPU
 * idle. */
bool vix_assist_begin(void (*fn)(void *), void *arg);
/* Waits until the job vix_assist_begin took has run. */
void vix_assist_end(void);
/* Around a whole resolve: while as many resolves run as the machine has
 * CPUs, vix_assist_begin declines (no core is idle to help). */
void vix_assist_enter(void);
void vix_assist_leave(void);

#endif
