/* SPDX-License-Identifier: GPL-2.0 */
/*
 * <linux/io_uring.h> with the 6.12 setup flags that older UAPI headers
 * (Debian 12's are 6.1's) lack; the values are UAPI and never change.
 */
#ifndef UCR_UAPI_H
#define UCR_UAPI_H

#include <linux/io_uring.h>

#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP		(1U << 14)
#endif
#ifndef IORING_SETUP_REGISTERED_FD_ONLY
#define IORING_SETUP_REGISTERED_FD_ONLY	(1U << 15)
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY		(1U << 16)
#endif

/* IORING_REGISTER_CLOCK (6.10) */
#define UCR_REGISTER_CLOCK		29
struct ucr_clock_register {
	__u32 clockid;
	__u32 resv[3];
};

/* IORING_REGISTER_NAPI (6.9) */
#define UCR_REGISTER_NAPI		27
struct ucr_napi {
	__u32 busy_poll_to;		/* microseconds */
	__u8 prefer_busy_poll;
	__u8 pad[3];
	__u64 resv;
};

/* IORING_REGISTER_CLONE_BUFFERS (6.12) */
#define UCR_REGISTER_CLONE_BUFFERS	30
struct ucr_clone_buffers {
	__u32 src_fd;
	__u32 flags;
	__u32 pad[6];
};

#endif /* UCR_UAPI_H */
