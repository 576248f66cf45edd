// SPDX-License-Identifier: GPL-2.0-only
/*
 * gupctl - the gup_test benchmark and basic-test commands (gup_test.h):
 * GUP_FAST_BENCHMARK, PIN_FAST_BENCHMARK, PIN_LONGTERM_BENCHMARK,
 * GUP_BASIC_TEST, PIN_BASIC_TEST and DUMP_USER_PAGES_TEST.
 *
 * This file follows mm/gup_test.c, so that the two can be diffed: where a
 * function here corresponds to one there it comes in the same order,
 * gupctl_put_back_pages() (put_back_pages()), gupctl_verify_dma_pinned()
 * (verify_dma_pinned()), gupctl_dump_pages_test() (dump_pages_test()),
 * gupctl_gup_test() (__gup_test_ioctl()) and gupctl_gup_ioctl() (the
 * gup_test part of gup_test_ioctl()); the helpers upstream has no
 * counterpart of come before their first user.  The deliberate differences
 * are listed in gupctl_main.c.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/ktime.h>
#include <linux/string.h>
#include "gup_test.h"
#include "gupctl.h"

/* FOLL_* bits userspace may pass; symbolic, as the values changed in v6.3. */
#define GUPCTL_FOLL_VALID	(FOLL_WRITE | FOLL_FORCE | FOLL_NOWAIT | \
				 FOLL_HWPOISON | FOLL_ANON | FOLL_DUMP)
/*
 * The gup_fast entry points WARN on anything beyond WRITE/FORCE/LONGTERM
 * (and internal bits), so the fast commands accept only these.
 */
#define GUPCTL_FOLL_FAST_VALID	(FOLL_WRITE | FOLL_FORCE)

static bool gupctl_cmd_pins(unsigned int cmd, const struct gup_test *gup)
{
	switch (cmd) {
	case PIN_FAST_BENCHMARK:
	case PIN_BASIC_TEST:
	case PIN_LONGTERM_BENCHMARK:
		return true;
	case DUMP_USER_PAGES_TEST:
		return gup->test_flags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN;
	}
	return false;
}

static int gupctl_validate(unsigned int cmd, const struct gup_test *gup)
{
	bool fast = cmd == GUP_FAST_BENCHMARK || cmd == PIN_FAST_BENCHMARK;
	unsigned long nr_pages;
	unsigned int valid;
	unsigned int i;
	int ret;

	ret = gupctl_check_range(gup->addr, gup->size);
	if (ret)
		return ret;
	nr_pages = gup->size / PAGE_SIZE;

	if (!gup->nr_pages_per_call)
		return -EINVAL;

	if (cmd == DUMP_USER_PAGES_TEST) {
		if (gup->test_flags & ~GUP_TEST_FLAG_DUMP_PAGES_USE_PIN)
			return -EINVAL;
	} else if (gup->test_flags) {
		return -EINVAL;
	}

	/*
	 * Refuse here everything that is_valid_gup_args() (or the gup_fast
	 * flag check) would WARN about: internal bits such as FOLL_PIN,
	 * FOLL_TOUCH or FOLL_GET, and FOLL_LONGTERM without pinning.
	 */
	valid = fast ? GUPCTL_FOLL_FAST_VALID : GUPCTL_FOLL_VALID;
	if (gupctl_cmd_pins(cmd, gup))
		valid |= FOLL_LONGTERM;
	if (gup->gup_flags & ~valid)
		return -EINVAL;

	for (i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) {
		if (gup->which_pages[i] > nr_pages)
			return -EINVAL;
		if (gup->which_pages[i] && cmd != DUMP_USER_PAGES_TEST)
			return -EINVAL;
	}

	return 0;
}

static void gupctl_put_back_pages(unsigned int cmd, const struct gup_test *gup,
				  struct page **pages, unsigned long nr_pages)
{
	unsigned long i;

	if (gupctl_cmd_pins(cmd, gup)) {
		unpin_user_pages(pages, nr_pages);
	} else {
		for (i = 0; i < nr_pages; i++)
			put_page(pages[i]);
	}
}

/*
 * The shared zero page, by exported means only: is_zero_pfn() (inline) reads
 * zero_pfn, or zero_page_pfn in newer kernels (7.3), both EXPORT_SYMBOL.
 * The huge zero folio cannot be told apart so (huge_zero_folio is not
 * exported), nor need it be: GUP pins it like any other folio, and its pins
 * count on the node it sits on, not the buffer's.
 */
static bool gupctl_is_zero_page(struct page *page)
{
	return is_zero_pfn(page_to_pfn(page));
}

/*
 * Whether a FOLL_LONGTERM pin may hold @folio, for the check after such a
 * pin.  Upstream's folio_is_longterm_pinnable() is inline but cannot be used
 * here: in newer kernels (Debian's 7.3 among them) it reaches
 * get_pfnblock_migratetype(), which is not exported, and modpost refuses the
 * module.  This check reads only the folio itself:
 *  - ZONE_MOVABLE (the zone bits of folio->flags): not pinnable;
 *  - device-coherent ZONE_DEVICE memory (its dev_pagemap): not pinnable;
 *  - the shared zero page: pinnable, as upstream says.
 * It cannot see what upstream's also refuses: MIGRATE_CMA and
 * MIGRATE_ISOLATE pageblocks, whose migratetype lives in the zone's
 * pageblock bitmap behind that unexported accessor; nor fsdax folios, which
 * newer helpers refuse but GUP never gets to, as check_vma_flags() fails
 * FOLL_LONGTERM on fsdax VMAs first.  So a CMA page wrongly pinned passes
 * here unnoticed; but nothing upstream calls pinnable is reported as not
 * pinnable, which would be a WARN.
 */
static bool gupctl_folio_longterm_pinnable(struct folio *folio)
{
	if (!IS_ENABLED(CONFIG_MIGRATION))
		return true;	/* nothing can be migrated away: all pinnable */
	if (gupctl_is_zero_page(&folio->page))
		return true;
	if (folio_is_device_coherent(folio))
		return false;
	return folio_zonenum(folio) != ZONE_MOVABLE;
}

/*
 * A failed pinned check: upstream's WARN and dump_page() for CAP_SYS_ADMIN.
 * For a group member one rate-limited line instead: a WARN it could cause
 * at will would panic a panic_on_warn machine, and dump_page() prints
 * kernel pointers.  The line still says "gup_test failure", which is what
 * gupctl looks for in the log.
 */
static void gupctl_pin_failure(unsigned long i, struct folio *folio,
			       const char *what)
{
	if (!ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN)) {
		pr_err_ratelimited("gupctl: gup_test failure: pages[%lu] is %s (pid %d)\n",
				   i, what, task_pid_nr(current));
		return;
	}
	WARN(1, "pages[%lu] is %s\n", i, what);
	dump_page(&folio->page, "gup_test failure");
}

static void gupctl_verify_dma_pinned(unsigned int cmd, struct page **pages,
				     unsigned long nr_pages)
{
	unsigned long i, nr_zero = 0;
	struct folio *folio;

	switch (cmd) {
	case PIN_FAST_BENCHMARK:
	case PIN_BASIC_TEST:
	case PIN_LONGTERM_BENCHMARK:
		for (i = 0; i < nr_pages; i++) {
			/*
			 * GUP takes no pin on the shared zero page, and
			 * unpin_user_pages() skips it: c8070b787519 ("mm:
			 * Don't pin ZERO_PAGE in pin_user_pages()"), v6.5,
			 * in 6.1.y from 6.1.130.  A R/O pin of untouched
			 * anonymous memory gets it: not a failure.  The huge
			 * zero folio needs no exception: try_grab_folio()
			 * pins it like any other large folio.  Before the
			 * change the zero page is pinned; skipping it then
			 * loses nothing.
			 */
			if (gupctl_is_zero_page(pages[i])) {
				nr_zero++;
				continue;
			}
			folio = page_folio(pages[i]);

			if (!folio_maybe_dma_pinned(folio)) {
				gupctl_pin_failure(i, folio, "NOT dma-pinned");
				break;
			} else if (cmd == PIN_LONGTERM_BENCHMARK &&
				   !gupctl_folio_longterm_pinnable(folio)) {
				gupctl_pin_failure(i, folio,
						   "NOT pinnable but pinned");
				break;
			}
		}
		break;
	}

	if (nr_zero)
		pr_info_ratelimited("gupctl: %lu of %lu pages are the shared zero page, not checked for a pin (GUP takes none on it since v6.5)\n",
				    nr_zero, nr_pages);
}

static void gupctl_dump_pages_test(struct gup_test *gup, struct page **pages,
				   unsigned long nr_pages)
{
	unsigned int index;
	unsigned int i;

	for (i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) {
		index = gup->which_pages[i];
		/* 1-based; entries beyond what GUP returned are dropped. */
		if (index > nr_pages) {
			gup->which_pages[i] = 0;
			continue;
		}
		if (!index)
			continue;
		index--;
		pr_info("---- page #%u, starting from user virt addr: 0x%llx\n",
			index, gup->addr);
		dump_page(pages[index], "gup_test: dump_pages() test");
	}
}

static long gupctl_gup_call(unsigned int cmd, const struct gup_test *gup,
			    unsigned long addr, unsigned long nr,
			    struct page **pages)
{
	unsigned int flags = gup->gup_flags;

	switch (cmd) {
	case GUP_FAST_BENCHMARK:
		return get_user_pages_fast(addr, nr, flags, pages);
	case GUP_BASIC_TEST:
		return gupctl_get_user_pages(addr, nr, flags, pages);
	case PIN_FAST_BENCHMARK:
		return pin_user_pages_fast(addr, nr, flags, pages);
	case PIN_BASIC_TEST:
		return gupctl_pin_user_pages(addr, nr, flags, pages);
	case PIN_LONGTERM_BENCHMARK:
		return gupctl_pin_user_pages(addr, nr, flags | FOLL_LONGTERM,
					     pages);
	case DUMP_USER_PAGES_TEST:
		if (gup->test_flags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN)
			return gupctl_pin_user_pages(addr, nr, flags, pages);
		return gupctl_get_user_pages(addr, nr, flags, pages);
	}
	return -EINVAL;
}

/*
 * The benchmark and basic-test commands pin (or get) and release within this
 * one ioctl, charged for its length (see gupctl_charge()).
 */
static int gupctl_gup_test(unsigned int cmd, struct gup_test *gup)
{
	bool needs_mmap_lock =
		cmd != GUP_FAST_BENCHMARK && cmd != PIN_FAST_BENCHMARK;
	unsigned long i, nr_pages, per_call, addr, nr, charged;
	ktime_t start_time, end_time;
	struct page **pages;
	long got;
	int ret;

	ret = gupctl_validate(cmd, gup);
	if (ret)
		return ret;
	/* dump_page() prints pfns and kernel pointers; FOLL_FORCE breaks COW. */
	if ((cmd == DUMP_USER_PAGES_TEST || gup->gup_flags & FOLL_FORCE) &&
	    !gupctl_privileged())
		return -EPERM;

	nr_pages = gup->size / PAGE_SIZE;
	/* 0xffffffff (or anything >= nr_pages) means "all in one call". */
	per_call = min3((unsigned long)gup->nr_pages_per_call, nr_pages,
			(unsigned long)INT_MAX);

	charged = nr_pages;
	pages = gupctl_alloc_charged(current->mm, charged);
	if (IS_ERR(pages))
		return PTR_ERR(pages);

	if (needs_mmap_lock && mmap_read_lock_killable(current->mm)) {
		ret = -EINTR;
		goto free_pages;
	}

	i = 0;
	addr = gup->addr;
	start_time = ktime_get();
	while (i < nr_pages) {
		nr = min(per_call, nr_pages - i);
		got = gupctl_gup_call(cmd, gup, addr, nr, pages + i);
		if (got <= 0) {
			/*
			 * As GUP itself: the pages done if any, else the
			 * errno (mm/gup_test.c reports size 0 and loses it).
			 */
			if (got < 0 && !i)
				ret = got;
			break;
		}
		i += got;
		addr += got * PAGE_SIZE;
		if (got < nr)
			break;
		/*
		 * Up to max_pages calls of one page each: a killed caller
		 * stops here, with the pages done so far (mm/gup_test.c
		 * does neither; GUP itself yields only while faulting).
		 */
		if (fatal_signal_pending(current))
			break;
		cond_resched();
	}
	end_time = ktime_get();

	/* From here on nr_pages is the number of pages actually obtained. */
	nr_pages = i;

	gup->get_delta_usec = ktime_us_delta(end_time, start_time);
	gup->size = (u64)nr_pages * PAGE_SIZE;

	/*
	 * Take an un-benchmark-timed moment to verify DMA pinned
	 * state: print a warning if any non-dma-pinned pages are found:
	 */
	gupctl_verify_dma_pinned(cmd, pages, nr_pages);

	if (cmd == DUMP_USER_PAGES_TEST)
		gupctl_dump_pages_test(gup, pages, nr_pages);

	start_time = ktime_get();
	gupctl_put_back_pages(cmd, gup, pages, nr_pages);
	end_time = ktime_get();
	gup->put_delta_usec = ktime_us_delta(end_time, start_time);

	if (needs_mmap_lock)
		mmap_read_unlock(current->mm);
free_pages:
	gupctl_free_charged(current->mm, pages, charged);
	return ret;
}

long gupctl_gup_ioctl(unsigned int cmd, void __user *argp,
		      const struct gupctl_abi *abi)
{
	struct gup_test gup;
	int ret;

	/* A shorter ABI leaves the tail zero, never stack garbage. */
	memset(&gup, 0, sizeof(gup));
	if (copy_from_user(&gup, argp, abi->gup_test_size))
		return -EFAULT;

	ret = gupctl_gup_test(cmd, &gup);
	if (ret)
		return ret;

	/*
	 * Zero the implicit tail padding (4 bytes on x86_64, none on i386) so
	 * that no kernel stack byte can ever reach userspace.
	 */
	memset_after(&gup, 0, which_pages);

	if (copy_to_user(argp, &gup, abi->gup_test_size))
		return -EFAULT;
	return 0;
}
