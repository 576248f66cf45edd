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
 * GUPCTL_PAGES (gupctl_pages.h): a snapshot of each frame, taken without a
 * reference, as /proc/kpageflags and /proc/kpagecount take theirs (see
 * fs/proc/page.c; 7.3's snapshot_page(), which retries, is not exported):
 * the folio may be split or freed meanwhile, so a snapshot is kept only if
 * the folio and its order are the same after it.  A folio freed and
 * reallocated at the same order between the two reads is not seen: the
 * snapshot then mixes the two, as /proc/kpagecount's can.  Under
 * CONFIG_DEBUG_VM_PGFLAGS a head that turns tail mid-read could still trip
 * const_folio_flags()'s VM_BUG_ON; Debian's kernels do not set it.
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

static void gupctl_page_info(struct gupctl_page *rec)
{
	struct folio *folio;
	struct page *page;
	unsigned int order;
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
	 * A split or a free may change the folio between two reads: keep a
	 * snapshot only if the folio and its order are the same after it.
	 */
	for (tries = 0; tries < 3; tries++) {
		folio = page_folio(page);
		order = folio_order(folio);
		rec->refcount = folio_ref_count(folio);
		rec->pincount = gupctl_folio_pincount(folio);
		if (folio_maybe_dma_pinned(folio))
			rec->flags |= GUPCTL_PAGE_PINNED;
		else
			rec->flags &= ~GUPCTL_PAGE_PINNED;
		if (page_folio(page) == folio && folio_order(folio) == order) {
			rec->order = order;
			return;
		}
	}
	rec->flags = GUPCTL_PAGE_ONLINE | GUPCTL_PAGE_UNSTABLE;
	rec->refcount = 0;
	rec->pincount = 0;
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
