#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/srv_conn.h"
#include "tap.h"

static struct sockaddr_in addr4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

#define SA(a) ((const struct sockaddr *)&(a)), (socklen_t)sizeof(a)

static void test_limits(void)
{
    srv_conn_table *t = NULL;
    srv_conn *c[8] = {0};
    struct sockaddr_in a = addr4("127.0.0.2"), b = addr4("127.0.0.3");
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.2", &mapped.sin6_addr);
    size_t open = 0, half = 0;
    is_int(srv_conn_table_create(6, &t, NULL), ERD_OK, "table created");
    ok(srv_conn_admit(t, SA(a), 3, 2, 0), "a first connection is admitted");
    srv_conn_counts(t, &open, &half);
    is_int((int)open, 1, "admitted holds its entry before it opens");
    ok(srv_conn_admit(t, SA(a), 3, 2, 0), "a second, accepted side by side, is admitted");
    ok(!srv_conn_admit(t, SA(a), 3, 2, 0), "a third is refused before either opened");
    c[0] = srv_conn_open(t, -1, SA(a), 0);
    c[1] = srv_conn_open(t, -1, SA(a), 0);
    srv_conn_counts(t, &open, &half);
    ok(c[0] && c[1] && open == 2, "opening claims the reserved entries");
    ok(!srv_conn_admit(t, SA(mapped), 3, 2, 0), "also refused as an IPv4-mapped IPv6 address");
    ok(srv_conn_admit(t, SA(b), 3, 2, 0), "another address is admitted");
    c[2] = srv_conn_open(t, -1, SA(b), 0);
    srv_conn_phase(t, c[0], SRV_CONN_BODY, 0);
    srv_conn_phase(t, c[0], SRV_CONN_HEADERS, 0);
    ok(srv_conn_admit(t, SA(a), 3, 2, 0), "a finished request makes a connection no longer half-open");
    c[3] = srv_conn_open(t, -1, SA(a), 0);
    ok(!srv_conn_admit(t, SA(a), 3, 0, 0), "per-address cap of 3 reached");
    srv_conn_counts(t, &open, &half);
    is_int((int)open, 4, "four open");
    is_int((int)half, 3, "three half-open");
    ok(!srv_conn_admit(t, SA(a), 0, 0, 3), "past the server-wide half-open mark, an address holding one is refused");
    srv_conn_phase(t, c[2], SRV_CONN_REPLY, 0);
    ok(srv_conn_admit(t, SA(b), 0, 0, 2), "one holding none is not");
    c[4] = srv_conn_open(t, -1, SA(b), 0);
    c[5] = srv_conn_open(t, -1, SA(b), 0);
    ok(c[4] && c[5], "six open");
    ok(!srv_conn_admit(t, SA(b), 0, 0, 0), "a full table refuses");
    ok(srv_conn_open(t, -1, SA(b), 0) == NULL, "and tracks no more");
    srv_conn_close(t, c[5]);
    ok(srv_conn_admit(t, SA(b), 0, 0, 0), "a closed one frees its entry");
    ok(!srv_conn_admit(t, SA(b), 0, 0, 0), "which the admission reserved");
    srv_conn_expire(t, srv_conn_now_ns() + 3000000000ull);
    ok(srv_conn_admit(t, SA(b), 0, 0, 0), "a reservation never opened is given back");
    srv_conn_close(t, NULL);
    srv_conn_flag_bad_path(c[0]);
    ok(srv_conn_take_bad_path(c[0]), "a flagged path is taken once");
    ok(!srv_conn_take_bad_path(c[0]), "and then cleared");
    srv_conn_table_destroy(t);
    srv_conn_table_destroy(NULL);
}

static void test_expire(void)
{
    srv_conn_table *t = NULL;
    int sv[2], sw[2];
    struct sockaddr_in a = addr4("127.0.0.2");
    ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sw) == 0,
       "socket pairs");
    srv_conn_table_create(4, &t, NULL);
    uint64_t now = srv_conn_now_ns();
    srv_conn *late = srv_conn_open(t, sv[0], SA(a), now + 1000);
    srv_conn *fine = srv_conn_open(t, sw[0], SA(a), now + 1000000000000ull);
    is_int((int)srv_conn_expire(t, now), 0, "nothing before its deadline");
    is_int((int)srv_conn_expire(t, now + 2000), 1, "one past its deadline");
    char ch;
    is_int((int)read(sv[1], &ch, 1), 0, "its socket is shut down: the peer reads the end");
    is_int((int)srv_conn_expire(t, now + 3000), 0, "shut down once only");
    srv_conn_extend(t, fine, now + 5);
    is_int((int)srv_conn_expire(t, now + 4000), 0, "extend never brings a deadline closer");
    srv_conn_phase(t, fine, SRV_CONN_REPLY, 0);
    is_int((int)srv_conn_expire(t, UINT64_MAX), 0, "no deadline while replying");
    srv_conn_close(t, late);
    srv_conn_close(t, fine);
    srv_conn_table_destroy(t);
    close(sv[0]), close(sv[1]), close(sw[0]), close(sw[1]);
}

int main(void)
{
    test_limits();
    test_expire();
    return tap_done();
}
