/* erd train-semantic: trains the semantic word model on WordNet and
 * generated equivalences.  erd tune: chooses the fused encoder's weight W
 * for a catalog on held-out simulated queries. */
#ifndef SRV_SEMANTIC_H
#define SRV_SEMANTIC_H

int srv_cli_train_semantic(int argc, char **argv);
int srv_cli_tune(int argc, char **argv);

#endif
