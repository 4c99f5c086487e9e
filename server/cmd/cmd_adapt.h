/* erd adapt: fine-tunes the learned encoder for one catalog. */
#ifndef CMD_ADAPT_H
#define CMD_ADAPT_H

int cmd_adapt(int argc, char **argv);

#endif
