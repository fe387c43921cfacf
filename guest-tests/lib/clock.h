/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Time: a monotonic clock in ms, short sleeps, and the scale of every wait
 * on the kernel (tscale=F on the command line, HARNESS_TIMEOUT_SCALE).
 */
#ifndef GUEST_CLOCK_H
#define GUEST_CLOCK_H

/* Set by t_start() from tscale=F; 1.0 by default. */
extern double t_tscale;

long now_ms(void);
long now_us(void);
void sleep_us(long us);
/* @seconds scaled by t_tscale, rounded. */
int wait_s(int seconds);

#endif /* GUEST_CLOCK_H */
