// SPDX-License-Identifier: GPL-2.0
/*
 * Physical memory through /proc/kcore: the contents of a registered buffer
 * whose pages are pinned but no longer mapped where the application put
 * them (it unmapped them after registering). The iterator gives each
 * bio_vec's PFN; kcore's PT_LOAD headers give, for RAM, the physical
 * address each segment starts at (p_paddr), so a page is read at
 * p_offset + (phys - p_paddr). Needs root (CAP_SYS_RAWIO), CONFIG_PROC_KCORE
 * and no kernel lockdown; without them such buffers are refused.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcore.h"

#define MAX_SEGS	256

struct seg {
	uint64_t paddr, size, offset;
};

struct ucr_kcore {
	int fd;
	unsigned int nr;
	struct seg segs[MAX_SEGS];
};

int ucr_kcore_open(struct ucr_kcore **out, struct ucr_err *err)
{
	struct ucr_kcore *k;
	Elf64_Ehdr eh;
	unsigned int i;

	*out = NULL;
	if (getenv("UCR_NO_KCORE"))	/* testing: the refusal without kcore */
		return ucr_errf(err, -ENOENT, "/proc/kcore not used (UCR_NO_KCORE is set)");
	k = calloc(1, sizeof(*k));
	if (!k)
		return ucr_errf(err, -ENOMEM, "out of memory");
	k->fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
	if (k->fd < 0) {
		int e = errno;

		free(k);
		return ucr_errf(err, -e, "/proc/kcore: %s (it needs root, CONFIG_PROC_KCORE and no kernel lockdown)",
				strerror(e));
	}
	if (pread(k->fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) {
		ucr_kcore_close(k);
		return ucr_errf(err, -EINVAL, "/proc/kcore: not an ELF64 core");
	}
	for (i = 0; i < eh.e_phnum && k->nr < MAX_SEGS; i++) {
		Elf64_Phdr ph;

		if (pread(k->fd, &ph, sizeof(ph), eh.e_phoff + (uint64_t)i * sizeof(ph)) != sizeof(ph)) {
			ucr_kcore_close(k);
			return ucr_errf(err, -EIO, "/proc/kcore: short read of its program headers");
		}
		/* RAM and kernel text have a physical address; vmalloc and the rest -1 */
		if (ph.p_type != PT_LOAD || ph.p_paddr == (Elf64_Addr)-1 || !ph.p_filesz)
			continue;
		k->segs[k->nr++] = (struct seg){ ph.p_paddr, ph.p_filesz, ph.p_offset };
	}
	*out = k;
	return 0;
}

void ucr_kcore_close(struct ucr_kcore *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

int ucr_kcore_read(struct ucr_kcore *k, uint64_t phys, void *buf, size_t len,
		   struct ucr_err *err)
{
	while (len) {
		const struct seg *s = NULL;
		size_t n;
		ssize_t got;

		for (unsigned int i = 0; i < k->nr; i++)
			if (phys >= k->segs[i].paddr && phys - k->segs[i].paddr < k->segs[i].size)
				s = &k->segs[i];
		if (!s)
			return ucr_errf(err, -EFAULT, "/proc/kcore: no segment holds physical address 0x%" PRIx64,
					phys);
		n = s->size - (phys - s->paddr);
		if (n > len)
			n = len;
		got = pread(k->fd, buf, n, s->offset + (phys - s->paddr));
		if (got <= 0)
			return ucr_errf(err, got ? -errno : -EIO,
					"/proc/kcore: reading physical address 0x%" PRIx64 ": %s", phys,
					got ? strerror(errno) : "short read");
		phys += got;
		buf = (char *)buf + got;
		len -= got;
	}
	return 0;
}
