/* erd rank-fit: fits the learned second-stage ranker (index/vix_ranker.h)
 * on simulated queries. */
#ifndef SRV_RANK_H
#define SRV_RANK_H

int srv_cli_rank_fit(int argc, char **argv);

#endif
