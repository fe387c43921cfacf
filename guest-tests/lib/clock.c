// SPDX-License-Identifier: GPL-2.0
/*
 * Time (clock.h).
 */
#include <time.h>

#include "clock.h"

double t_tscale = 1.0;

long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000L;
}

void sleep_us(long us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000,
		.tv_nsec = us % 1000000 * 1000,
	};

	nanosleep(&ts, NULL);
}

int wait_s(int seconds)
{
	return (int)(seconds * t_tscale + 0.5);
}
