/* erd calibrate: fits the score calibration (index/vix_calib.h) on held-out
 * simulated queries. */
#ifndef CMD_CALIBRATE_H
#define CMD_CALIBRATE_H

int cmd_calibrate(int argc, char **argv);

#endif
