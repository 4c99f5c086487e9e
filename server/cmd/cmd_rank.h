/* erd rank-fit: fits the learned second-stage ranker (index/vix_ranker.h)
 * on simulated queries. */
#ifndef CMD_RANK_H
#define CMD_RANK_H

int cmd_rank_fit(int argc, char **argv);

#endif
