/* erd train-semantic: trains the semantic word model on WordNet and
 * generated equivalences.  erd tune: chooses the fused encoder's weight W
 * for a catalog on held-out simulated queries. */
#ifndef CMD_SEMANTIC_H
#define CMD_SEMANTIC_H

int cmd_train_semantic(int argc, char **argv);
int cmd_tune(int argc, char **argv);

#endif
