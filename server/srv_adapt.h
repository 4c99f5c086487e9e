/* erd adapt: fine-tunes the learned encoder for one catalog. */
#ifndef SRV_ADAPT_H
#define SRV_ADAPT_H

int srv_cli_adapt(int argc, char **argv);

#endif
