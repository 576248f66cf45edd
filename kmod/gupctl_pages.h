/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * GUPCTL_PAGES: what the kernel keeps about page frames a pin could hold,
 * served by the gupctl module beside the gup_test ABI (gup_test.h).
 *
 * The caller names frames by number (from /proc/PID/pagemap); the module
 * looks at each without taking a reference, faulting or locking anything,
 * as /proc/kpagecount and /proc/kpageflags do, so the query moves no count
 * it reports.  Like those files it needs CAP_SYS_ADMIN (-EPERM).
 *
 * Type 'x' as GUPCTL_EXTRACT (gupctl_extract.h).  Both structs have no
 * padding and the same layout on every ABI, i386 included.
 */
#ifndef __GUPCTL_PAGES_H
#define __GUPCTL_PAGES_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* struct gupctl_page.flags */
#define GUPCTL_PAGE_ONLINE	0x1	/* pfn_to_online_page() found it */
#define GUPCTL_PAGE_PINNED	0x2	/* folio_maybe_dma_pinned() */
#define GUPCTL_PAGE_UNSTABLE	0x4	/* split under each try: no snapshot */

#define GUPCTL_PAGES_MAX	65536	/* records per request */

/*
 * In: pfn.  Out, the rest, all of it written: for an online frame, its
 * folio's order, folio_ref_count(), _pincount where the folio has one (large
 * folios; else -1, and a pin is GUP_PIN_COUNTING_BIAS of the refcount), the
 * node and the zone's name, read under a reference of the kmod's own, which
 * the refcount leaves out.  A free (or frozen) frame: ONLINE, with order,
 * refcount and pincount 0.  For any other frame, flags 0 and the rest 0.
 * A frame whose folio was split under each of three tries comes back
 * ONLINE | UNSTABLE with order, refcount and pincount 0.
 */
struct gupctl_page {
	__u64 pfn;
	__u32 flags;
	__u32 order;
	__s32 refcount;
	__s32 pincount;
	__u32 node;
	__u32 reserved;
	char zone[8];
};

/* In: pages, the address of nr records; reserved 0. */
struct gupctl_pages {
	__u64 pages;
	__u32 nr;
	__u32 reserved;
};

#define GUPCTL_PAGES		_IOWR('x', 2, struct gupctl_pages)

#endif	/* __GUPCTL_PAGES_H */
