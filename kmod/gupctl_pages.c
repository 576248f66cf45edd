// SPDX-License-Identifier: GPL-2.0-only
/*
 * gupctl - GUPCTL_PAGES (gupctl_pages.h): what the kernel keeps about the
 * page frames a caller names, root's only.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/capability.h>
#include <linux/uaccess.h>
#include <linux/string.h>
#include "gupctl_pages.h"
#include "gupctl_config.h"
#include "gupctl.h"

/*
 * GUPCTL_PAGES (gupctl_pages.h): a snapshot of each frame, taken under a
 * speculative reference, as compaction's isolate_migratepages_block() and
 * memory-failure take theirs on frames they did not allocate: the folio
 * cannot be freed (and so not reallocated) while it is read, and a frame
 * whose count is already zero is free (or frozen) and has no pins to show.
 * /proc/kpagecount reads without one (fs/proc/page.c) and can mix a freed
 * folio's counts with its successor's; 7.3's snapshot_page(), which
 * retries, is not exported.  Under CONFIG_DEBUG_VM_PGFLAGS a head that
 * turns tail mid-read could still trip const_folio_flags()'s VM_BUG_ON;
 * Debian's kernels do not set it.
 */
static int gupctl_folio_pincount(struct folio *folio)
{
	/*
	 * Where folio_maybe_dma_pinned() reads the pins from, through the
	 * helper that says when folio->_pincount holds them: large folios
	 * (on 32-bit 7.3 kernels only from order 2); small ones count each
	 * pin as GUP_PIN_COUNTING_BIAS references, reported as none here.
	 */
#ifdef GUPCTL_HAVE_FOLIO_HAS_PINCOUNT
	if (!folio_has_pincount(folio))
		return -1;
	return atomic_read(&folio->_pincount);
#else
	/* 6.1: _pincount is "do not use directly"; its accessor is this. */
	if (!folio_test_large(folio))
		return -1;
	return atomic_read(folio_pincount_ptr(folio));
#endif
}

/*
 * Fill @rec from @folio, on which the caller holds one reference of its
 * own: that one is left out of the count.  folio_maybe_dma_pinned() sees
 * it, which matters only to a small folio exactly one reference short of
 * GUP_PIN_COUNTING_BIAS.
 */
static void gupctl_folio_info(struct gupctl_page *rec, struct folio *folio)
{
	rec->order = folio_order(folio);
	rec->refcount = folio_ref_count(folio) - 1;
	rec->pincount = gupctl_folio_pincount(folio);
	if (folio_maybe_dma_pinned(folio))
		rec->flags |= GUPCTL_PAGE_PINNED;
}

static void gupctl_page_info(struct gupctl_page *rec)
{
	struct folio *folio;
	struct page *page;
	int tries;

	if (rec->pfn != (unsigned long)rec->pfn)	/* beyond a 32-bit pfn */
		return;
	page = pfn_to_online_page(rec->pfn);
	if (!page)
		return;
	rec->flags = GUPCTL_PAGE_ONLINE;
	rec->node = page_to_nid(page);
	strscpy(rec->zone, page_zone(page)->name, sizeof(rec->zone));
	/*
	 * The reference pins the folio, not the frame's place in it: a split
	 * between page_folio() and folio_try_get() leaves the frame in another
	 * folio, so look again under the reference.
	 */
	for (tries = 0; tries < 3; tries++) {
		folio = page_folio(page);
		if (!folio_try_get(folio))
			return;		/* free or frozen: order 0, no count */
		if (page_folio(page) == folio) {
			gupctl_folio_info(rec, folio);
			folio_put(folio);
			return;
		}
		folio_put(folio);
	}
	rec->flags |= GUPCTL_PAGE_UNSTABLE;
}

long gupctl_pages_ioctl(void __user *argp)
{
	struct gupctl_page __user *up;
	struct gupctl_pages req;
	struct gupctl_page rec;
	u32 i;

	/* What a frame holds is /proc/kpagecount's business: root's only. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.reserved || !req.nr || req.nr > GUPCTL_PAGES_MAX)
		return -EINVAL;
	if (req.pages != (unsigned long)req.pages)	/* beyond a 32-bit kernel's */
		return -EFAULT;
	up = u64_to_user_ptr(req.pages);
	if (!access_ok(up, array_size(req.nr, sizeof(*up))))
		return -EFAULT;
	for (i = 0; i < req.nr; i++) {
		memset(&rec, 0, sizeof(rec));
		if (get_user(rec.pfn, &up[i].pfn))
			return -EFAULT;
		gupctl_page_info(&rec);
		if (copy_to_user(&up[i], &rec, sizeof(rec)))
			return -EFAULT;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}
