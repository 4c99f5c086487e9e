/* erd subcommands that make training data for the phonetic encoder: generic
 * English phrases, and what a speech recogniser hears when a TTS voice says
 * them.  Same calling convention as cmd_cli.h: the arguments after the
 * subcommand name, the process exit code back. */
#ifndef CMD_SIM_H
#define CMD_SIM_H

int cmd_phrases(int argc, char **argv);
int cmd_simulate(int argc, char **argv);

#endif
