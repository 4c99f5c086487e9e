/* erd command-fit: fits the command table (index/vix_command.h) that the
 * open-set calibration's "command" feature reads. */
#ifndef CMD_COMMAND_H
#define CMD_COMMAND_H

int cmd_command_fit(int argc, char **argv);

#endif
