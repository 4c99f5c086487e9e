/* erd train: fits the learned phonetic encoder on simulated ASR pairs. */
#ifndef CMD_TRAIN_H
#define CMD_TRAIN_H

int cmd_train(int argc, char **argv);

#endif
