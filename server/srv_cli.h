/* The erd command line: one function per subcommand, each taking the
 * arguments after the subcommand name and returning the process exit code. */
#ifndef SRV_CLI_H
#define SRV_CLI_H

/* Exit codes, as sysexits(3) has them where one fits. */
enum {
    SRV_EXIT_OK = 0,
    SRV_EXIT_FAIL = 1,     /* the operation failed */
    SRV_EXIT_USAGE = 2,    /* bad command line */
    SRV_EXIT_DATAERR = 65, /* bad input data */
    SRV_EXIT_NOINPUT = 66, /* input file missing */
    SRV_EXIT_CONFIG = 78,  /* bad configuration */
};

int srv_cli_import(int argc, char **argv);
int srv_cli_build(int argc, char **argv);
int srv_cli_serve(int argc, char **argv);
int srv_cli_resolve(int argc, char **argv);
int srv_cli_config(int argc, char **argv);
int srv_cli_eval(int argc, char **argv);

/* Exit code for an erd error code. */
int srv_cli_exit_code(int err);

#endif
