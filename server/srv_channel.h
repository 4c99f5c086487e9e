/* erd channel: estimates the phone noise channel from simulated ASR pairs. */
#ifndef SRV_CHANNEL_H
#define SRV_CHANNEL_H

int srv_cli_channel(int argc, char **argv);

#endif
