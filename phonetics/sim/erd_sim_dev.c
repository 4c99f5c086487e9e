/* Stand-alone driver for erd phrases / erd simulate, so the simulator can be
 * built and run without the server: erd-sim-dev phrases|simulate [OPTIONS]. */
#include <stdio.h>
#include <string.h>

#include "server/srv_sim.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "phrases"))
        return srv_cli_phrases(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "simulate"))
        return srv_cli_simulate(argc - 1, argv + 1);
    fprintf(stderr, "usage: erd-sim-dev phrases|simulate [OPTIONS]  (--help for options)\n");
    return 2;
}
