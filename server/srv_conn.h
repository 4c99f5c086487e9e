/* Connections the HTTP server holds, tracked outside libmicrohttpd so erd
 * can bound each client phase (request line and headers, body) by a
 * deadline however steadily a client trickles bytes, cap connections per
 * client address, and refuse at accept an address that already holds many
 * connections which never finished a request (slowloris).  Thread-safe:
 * MHD workers open, move and close entries while a cleaner thread expires
 * them. */
#ifndef SRV_CONN_H
#define SRV_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/erd_error.h"

typedef struct srv_conn_table srv_conn_table;
typedef struct srv_conn srv_conn;

enum srv_conn_phase {
    SRV_CONN_HEADERS, /* waiting for a request line and headers */
    SRV_CONN_BODY,    /* headers in, body being read */
    SRV_CONN_REPLY,   /* handled; the idle timeout alone bounds the reply */
};

/* cap: most connections tracked at once (a connection past it is refused). */
int srv_conn_table_create(size_t cap, srv_conn_table **ret, erd_diag *diag);
void srv_conn_table_destroy(srv_conn_table *t);

/* Whether one more connection from addr fits: fewer than per_ip held from
 * it, fewer than half_open_per_ip of them without a finished request, and a
 * free entry; once half_open_all connections (all addresses) have not
 * finished a request, none of addr's may be such.  0 turns a limit off. */
bool srv_conn_admit(srv_conn_table *t, const struct sockaddr *addr, socklen_t len,
                    unsigned per_ip, unsigned half_open_per_ip, unsigned half_open_all);

/* Tracks connection fd from addr, in the headers phase until deadline_ns
 * (CLOCK_MONOTONIC); NULL when the table is full. */
srv_conn *srv_conn_open(srv_conn_table *t, int fd, const struct sockaddr *addr, socklen_t len,
                        uint64_t deadline_ns);
/* Stops tracking c before its socket is closed; accepts NULL. */
void srv_conn_close(srv_conn_table *t, srv_conn *c);

/* Moves c to phase, closed at deadline_ns unless it moves on first (0: no
 * deadline).  Going back to SRV_CONN_HEADERS counts a finished request. */
void srv_conn_phase(srv_conn_table *t, srv_conn *c, enum srv_conn_phase phase,
                    uint64_t deadline_ns);
/* Pushes c's deadline to deadline_ns when it is later (a body that keeps
 * arriving at a fair rate). */
void srv_conn_extend(srv_conn_table *t, srv_conn *c, uint64_t deadline_ns);

/* Marks the request on c as carrying a NUL or control byte in its path,
 * found while the path was decoded, before routing; the flag is read and
 * cleared by srv_conn_take_bad_path. */
void srv_conn_flag_bad_path(srv_conn *c);
bool srv_conn_take_bad_path(srv_conn *c);

/* Shuts down every connection past its deadline at now_ns (the server then
 * closes it as a client abort) and returns how many. */
size_t srv_conn_expire(srv_conn_table *t, uint64_t now_ns);

/* Connections tracked, and how many have not finished a request. */
void srv_conn_counts(srv_conn_table *t, size_t *ret_open, size_t *ret_half_open);

uint64_t srv_conn_now_ns(void);

#endif
