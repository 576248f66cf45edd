/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * GUPCTL_EXTRACT: iov_iter_extract_pages() from userspace, served by the
 * gupctl module beside the gup_test ABI (gup_test.h).
 *
 * Every gup_test command, present and future, is an ioctl of type 'g'
 * (mm/gup_test.h).  This one is of type 'x', which no gup_test command can
 * ever have, and which Documentation/userspace-api/ioctl/ioctl-number.rst
 * assigns to nobody (checked against 6.12's and 7.3's by tests/facts).
 * Its struct has no padding and the same layout on every ABI, i386
 * included, so one number serves them all.
 */
#ifndef __GUPCTL_EXTRACT_H
#define __GUPCTL_EXTRACT_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* The iterator built, by enum iter_type's names. */
#define GUPCTL_EXTRACT_UBUF	1	/* over the caller's buffer */
#define GUPCTL_EXTRACT_IOVEC	2	/* the caller's buffer in nr_segs pieces */
#define GUPCTL_EXTRACT_BVEC	3	/* pages the module owns, a bio_vec each */
#define GUPCTL_EXTRACT_KVEC	4	/* the same pages, vmap()ed, one kvec */
#define GUPCTL_EXTRACT_XARRAY	5	/* the same pages' folios in an xarray */

/* ITER_DEST (the kernel writes the pages: a read), else ITER_SOURCE. */
#define GUPCTL_EXTRACT_FLAG_DEST	0x1

#define GUPCTL_EXTRACT_MAX_SEGS	16

/*
 * In: addr and size (addr 0 for the module's own pages), iter_type, flags,
 * nr_segs (IOVEC only, else 0) and fill (a byte).  Every other field must
 * be 0.  Out: size is the bytes extracted; will_pin what
 * iov_iter_extract_will_pin() said; nr_pages and nr_calls what
 * iov_iter_extract_pages() gave over how many calls; offset the offset into
 * the first page; nr_pinned how many of the pages folio_maybe_dma_pinned()
 * called pinned while they were held; nr_matched how many were the module's
 * own pages in order (the module's iterators only); checksum the sum of the
 * extracted bytes before ITER_DEST set each to fill (the module's pages
 * start filled with it).  The pages are then released as will_pin says.
 */
struct gupctl_extract {
	__u64 addr;
	__u64 size;
	__u64 offset;
	__u64 checksum;
	__u32 iter_type;
	__u32 flags;
	__u32 nr_segs;
	__u32 fill;
	__u32 will_pin;
	__u32 nr_pages;
	__u32 nr_calls;
	__u32 nr_pinned;
	__u32 nr_matched;
	__u32 reserved;
};

#define GUPCTL_EXTRACT		_IOWR('x', 1, struct gupctl_extract)

#endif	/* __GUPCTL_EXTRACT_H */
