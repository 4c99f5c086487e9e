/* erd channel: estimates the phone noise channel from simulated ASR pairs. */
#ifndef CMD_CHANNEL_H
#define CMD_CHANNEL_H

int cmd_channel(int argc, char **argv);

#endif
