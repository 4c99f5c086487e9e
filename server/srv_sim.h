/* erd subcommands that make training data for the phonetic encoder: generic
 * English phrases, and what a speech recogniser hears when a TTS voice says
 * them.  Same calling convention as srv_cli.h: the arguments after the
 * subcommand name, the process exit code back. */
#ifndef SRV_SIM_H
#define SRV_SIM_H

int srv_cli_phrases(int argc, char **argv);
int srv_cli_simulate(int argc, char **argv);

#endif
