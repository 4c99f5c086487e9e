/* erd train: fits the learned phonetic encoder on simulated ASR pairs. */
#ifndef SRV_TRAIN_H
#define SRV_TRAIN_H

int srv_cli_train(int argc, char **argv);

#endif
