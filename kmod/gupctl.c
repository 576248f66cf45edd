// SPDX-License-Identifier: GPL-2.0-only
/*
 * gupctl - out-of-tree provider of the gup_test ioctl ABI (mm/gup_test.c)
 * for kernels built without CONFIG_GUP_TEST.
 *
 * The ABI is served on /dev/gup_test (a misc device, usable under kernel
 * lockdown) and, unless the kernel already has one, on the debugfs file
 * /sys/kernel/debug/gup_test.  The structure follows mm/gup_test.c, with
 * these deliberate differences:
 *  - every argument is validated before any work is done, so no user input
 *    can trigger a WARN in GUP or an oops;
 *  - the written-back size is the number of pages actually obtained;
 *  - PIN_LONGTERM_TEST_* state is per open file instead of global;
 *  - unknown commands fail with -ENOTTY instead of -EINVAL;
 *  - the shared zero page, which GUP does not pin, is counted and reported
 *    instead of failing the pinned check with a WARN;
 *  - 32-bit processes are served through compat_ioctl, i386 layouts
 *    included (on /dev/gup_test only: see gupctl_debugfs_init());
 *  - longterm-test pins are charged to the starting process's mm->pinned_vm
 *    (VmPin in /proc/PID/status) against RLIMIT_MEMLOCK unless it has
 *    CAP_IPC_LOCK, as RDMA's ib_umem_get() does: over the limit START
 *    fails with -ENOMEM (see gupctl_charge());
 *  - PIN_LONGTERM_TEST_READ works only for the mm that started the pins: an
 *    fd inherited through fork() or passed with SCM_RIGHTS cannot read
 *    another process's pinned pages (-EPERM, see gupctl_longterm_read());
 *  - longterm-test pins end with the mm that started them (an mmu_notifier's
 *    .release, see gupctl_pins_watch()), not only with the last close of
 *    the file: an fd inherited through fork() or passed with SCM_RIGHTS
 *    does not keep a dead (or exec'd) process's pages pinned;
 *  - the device may be given to a group (gupctl kmod install --user): what
 *    upstream's root-only file does that a group member must not is kept
 *    for CAP_SYS_ADMIN, and every page a command holds is charged to the
 *    caller's RLIMIT_MEMLOCK.  The privilege model:
 *
 *      what                                     group member   CAP_SYS_ADMIN
 *      GUP/PIN benchmarks and basic tests       yes            yes
 *      PIN_LONGTERM_TEST_*                      yes            yes
 *      GUPCTL_EXTRACT over the caller's memory  yes            yes
 *      pages held by any of those               charged        charged,
 *        (mm->pinned_vm, RLIMIT_MEMLOCK)        limited        unlimited (*)
 *      FOLL_FORCE in gup_flags                  -EPERM         yes
 *      DUMP_USER_PAGES_TEST (dump_page())       -EPERM         yes
 *      GUPCTL_EXTRACT of kernel pages           -EPERM         yes
 *      GUPCTL_PAGES                             -EPERM         yes
 *      a failed pinned check                    one log line   WARN + dump
 *      max_pages (module parameter)             no             1 to 2^30
 *
 *    (*) unlimited with CAP_IPC_LOCK, which root has (see gupctl_charge()).
 *
 * Where the kernel API changed, gupctl_config.h says which side of the
 * change $(KDIR) is on: the Makefile writes it from the build-time probes
 * in probes/.
 */

#include <linux/kernel.h>
#include <linux/compat.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/miscdevice.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/kref.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>
#include <linux/ktime.h>
#include <linux/highmem.h>
#include <linux/string.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/xarray.h>
#include <linux/bvec.h>
#include <linux/stddef.h>
#include "gup_test.h"
#include "gupctl_extract.h"
#include "gupctl_pages.h"
#include "gupctl_config.h"

static bool gupctl_debugfs = true;
module_param_named(debugfs, gupctl_debugfs, bool, 0444);
MODULE_PARM_DESC(debugfs,
		 "Create <debugfs>/gup_test if the kernel has none (default: true)");

/*
 * The ceiling of max_pages: every count derived from it fits what it is
 * handed to (vmap()'s and iov_iter_extract_pages()'s unsigned int,
 * GUPCTL_EXTRACT's __u32 nr_pages, a segment more per IOVEC piece), and a
 * byte size of it fits a u64.  0 would reach want_pages_array()'s WARN.
 */
#define GUPCTL_MAX_PAGES_CEILING	BIT(30)

static unsigned long gupctl_max_pages = 1UL << 20;

static int gupctl_max_pages_set(const char *val, const struct kernel_param *kp)
{
	unsigned long n;
	int ret;

	ret = kstrtoul(val, 0, &n);
	if (ret)
		return ret;
	if (!n || n > GUPCTL_MAX_PAGES_CEILING)
		return -EINVAL;
	WRITE_ONCE(gupctl_max_pages, n);
	return 0;
}

static const struct kernel_param_ops gupctl_max_pages_ops = {
	.set = gupctl_max_pages_set,
	.get = param_get_ulong,
};

/* Writable by root at run time: a request is checked against one READ_ONCE. */
module_param_cb(max_pages, &gupctl_max_pages_ops, &gupctl_max_pages, 0644);
MODULE_PARM_DESC(max_pages,
		 "Maximum number of pages per request, 1 to 2^30 (default: 1048576)");

/* FOLL_* bits userspace may pass; symbolic, as the values changed in v6.3. */
#define GUPCTL_FOLL_VALID	(FOLL_WRITE | FOLL_FORCE | FOLL_NOWAIT | \
				 FOLL_HWPOISON | FOLL_ANON | FOLL_DUMP)
/*
 * The gup_fast entry points WARN on anything beyond WRITE/FORCE/LONGTERM
 * (and internal bits), so the fast commands accept only these.
 */
#define GUPCTL_FOLL_FAST_VALID	(FOLL_WRITE | FOLL_FORCE)

/*
 * What upstream's root-only file does that a member of the device's group
 * must not: see the model above.  Asked only when such a thing is
 * requested, so that capable() audits a refusal that means something.
 */
static bool gupctl_privileged(void)
{
	return capable(CAP_SYS_ADMIN);
}

/*
 * The pins of one PIN_LONGTERM_TEST_START.  @mm is the mm that started them,
 * held with mmgrab() so that whoever ends them (STOP or the last close from
 * another process, the mm's own exit) can still uncharge it; @charged is
 * what was charged to its pinned_vm.  @pages is NULL once they have ended:
 * the object itself lives on while anyone holds a reference (its file, its
 * mm's list of pin sets, a READ under way).
 */
struct gupctl_pins {
	struct kref ref;
	struct mutex lock;	/* protects pages, nr_pages and charged */
	struct page **pages;
	unsigned long nr_pages;
	unsigned long charged;
	struct mm_struct *mm;
#ifdef CONFIG_MMU_NOTIFIER
	struct list_head node;	/* on its gupctl_mm's @pins until unlisted */
	struct gupctl_mm *gm;
#endif
};

#ifdef CONFIG_MMU_NOTIFIER
/*
 * One per mm that started pins, shared by every gupctl file used from it
 * (mmu_notifier_get()): registering a notifier takes mm_take_all_locks(),
 * every anon_vma and i_mmap lock of the mm, so it is done once per mm and
 * file, not once per START.  @pins lists the pin sets its exit must end.
 */
struct gupctl_mm {
	struct mmu_notifier mn;
	spinlock_t lock;	/* protects @pins */
	struct list_head pins;
};
#endif

/* Per open file state of the PIN_LONGTERM_TEST_* commands. */
struct gupctl_file {
	struct mutex lock;	/* protects @pins and @gm; taken before pins->lock */
	struct gupctl_pins *pins;
#ifdef CONFIG_MMU_NOTIFIER
	struct gupctl_mm *gm;	/* a reference on the notifier of @gm->mn.mm */
#endif
};

/*
 * The sizes of the two ioctl structs in the caller's ABI.  Only the tail
 * padding differs between ABIs (see gupctl_i386_abi): copying this many
 * bytes into or out of the native struct is a complete conversion.
 */
struct gupctl_abi {
	size_t gup_test_size;
	size_t pin_longterm_test_size;
};

static const struct gupctl_abi gupctl_native_abi = {
	.gup_test_size = sizeof(struct gup_test),
	.pin_longterm_test_size = sizeof(struct pin_longterm_test),
};

#ifdef CONFIG_COMPAT_FOR_U64_ALIGNMENT
/*
 * i386 aligns __u64 to 4 bytes: struct gup_test is 76 bytes there (80 on
 * x86_64) and struct pin_longterm_test 20 (24).  Every field sits at the
 * same offset in both ABIs, only the native tail padding is missing; but
 * the size is part of the command number, so an i386 process sends other
 * numbers for commands 1 to 7 (GUP_FAST_BENCHMARK: 0xc04c6701, not
 * 0xc0506701).  PIN_LONGTERM_TEST_STOP (no argument) and _READ (a __u64,
 * 8 bytes everywhere) have the same number in both.
 */
struct gupctl_gup_test32 {
	compat_u64 get_delta_usec;
	compat_u64 put_delta_usec;
	compat_u64 addr;
	compat_u64 size;
	u32 nr_pages_per_call;
	u32 gup_flags;
	u32 test_flags;
	u32 which_pages[GUP_TEST_MAX_PAGES_TO_DUMP];
};

struct gupctl_pin_longterm_test32 {
	compat_u64 addr;
	compat_u64 size;
	u32 flags;
};

static_assert(sizeof(struct gupctl_gup_test32) ==
	      offsetofend(struct gup_test, which_pages));
static_assert(offsetof(struct gupctl_gup_test32, nr_pages_per_call) ==
	      offsetof(struct gup_test, nr_pages_per_call));
static_assert(sizeof(struct gupctl_pin_longterm_test32) ==
	      offsetofend(struct pin_longterm_test, flags));

#define GUP_FAST_BENCHMARK32	_IOWR('g', 1, struct gupctl_gup_test32)
#define PIN_FAST_BENCHMARK32	_IOWR('g', 2, struct gupctl_gup_test32)
#define PIN_LONGTERM_BENCHMARK32 _IOWR('g', 3, struct gupctl_gup_test32)
#define GUP_BASIC_TEST32	_IOWR('g', 4, struct gupctl_gup_test32)
#define PIN_BASIC_TEST32	_IOWR('g', 5, struct gupctl_gup_test32)
#define DUMP_USER_PAGES_TEST32	_IOWR('g', 6, struct gupctl_gup_test32)
#define PIN_LONGTERM_TEST_START32 \
	_IOW('g', 7, struct gupctl_pin_longterm_test32)

static const struct gupctl_abi gupctl_i386_abi = {
	.gup_test_size = sizeof(struct gupctl_gup_test32),
	.pin_longterm_test_size = sizeof(struct gupctl_pin_longterm_test32),
};
#endif /* CONFIG_COMPAT_FOR_U64_ALIGNMENT */

static long gupctl_get_user_pages(unsigned long start, unsigned long nr_pages,
				  unsigned int gup_flags, struct page **pages)
{
#ifdef GUPCTL_HAVE_GET_USER_PAGES_VMAS
	/*
	 * Before 54d020692b34 ("mm/gup: remove unused vmas parameter from
	 * get_user_pages()"), v6.5.
	 */
	return get_user_pages(start, nr_pages, gup_flags, pages, NULL);
#else
	return get_user_pages(start, nr_pages, gup_flags, pages);
#endif
}

static long gupctl_pin_user_pages(unsigned long start, unsigned long nr_pages,
				  unsigned int gup_flags, struct page **pages)
{
#ifdef GUPCTL_HAVE_PIN_USER_PAGES_VMAS
	/*
	 * Before 4c630f307455 ("mm/gup: remove vmas parameter from
	 * pin_user_pages()"), v6.5.
	 */
	return pin_user_pages(start, nr_pages, gup_flags, pages, NULL);
#else
	return pin_user_pages(start, nr_pages, gup_flags, pages);
#endif
}

static struct page **gupctl_alloc_pages(unsigned long nr_pages)
{
	return kvcalloc(nr_pages, sizeof(struct page *),
			GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
}

/* Check a user range: page aligned, non-empty, no overflow, in TASK_SIZE. */
static int gupctl_check_range(u64 addr, u64 size)
{
	u64 end;

	if (!IS_ALIGNED(addr, PAGE_SIZE) || !IS_ALIGNED(size, PAGE_SIZE))
		return -EINVAL;
	if (!size || check_add_overflow(addr, size, &end))
		return -EINVAL;
	if (end > TASK_SIZE)
		return -EINVAL;
	if (size / PAGE_SIZE > READ_ONCE(gupctl_max_pages))
		return -E2BIG;
	return 0;
}

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
 * Charge @nr_pages pins (or references) to @mm as ib_umem_get()
 * (drivers/infiniband/core/umem.c) does, and iommufd with
 * IOPT_PAGES_ACCOUNT_MM: mm->pinned_vm, which /proc/PID/status shows as
 * VmPin, checked against the caller's RLIMIT_MEMLOCK unless it has
 * CAP_IPC_LOCK.  pinned_vm is an atomic64_t since 70f8a3ca68d3 ("mm: make
 * mm->pinned_vm an atomic64 counter"), v5.1, older than every kernel this
 * builds for.  Add first, then take it back if over the limit, so that
 * concurrent chargers of one mm cannot both slip under it; capable() only
 * when over the limit, so that a caller within it is not audited as using
 * the capability.  Callers with CAP_IPC_LOCK are charged too, unlimited.
 *
 * Every command charges what it may hold, for as long as it holds it: the
 * benchmarks and GUPCTL_EXTRACT for the call, the longterm test until STOP.
 * A call is brief only as long as its faults are: a range ending in a FUSE
 * or userfaultfd mapping that never answers keeps every earlier page held,
 * so a benchmark is limited as a longterm pin is.
 */
static int gupctl_charge(struct mm_struct *mm, unsigned long nr_pages)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	unsigned long pinned;

	pinned = atomic64_add_return(nr_pages, &mm->pinned_vm);
	if (pinned > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(nr_pages, &mm->pinned_vm);
		return -ENOMEM;
	}
	return 0;
}

static void gupctl_uncharge(struct mm_struct *mm, unsigned long nr_pages)
{
	atomic64_sub(nr_pages, &mm->pinned_vm);
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
	ret = gupctl_charge(current->mm, charged);
	if (ret)
		return ret;

	pages = gupctl_alloc_pages(nr_pages);
	if (!pages) {
		ret = -ENOMEM;
		goto uncharge;
	}

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
	kvfree(pages);
uncharge:
	gupctl_uncharge(current->mm, charged);
	return ret;
}

static long gupctl_gup_ioctl(unsigned int cmd, void __user *argp,
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

/*
 * Unpin and uncharge, once: a second call finds nothing to do.  Any process
 * may get here (STOP on an inherited fd, the last close after fork() or
 * SCM_RIGHTS, the exit of the pins' mm): the charge goes back to the mm
 * that was charged, which mmgrab() kept allocated.
 */
static void gupctl_pins_end(struct gupctl_pins *p)
{
	mutex_lock(&p->lock);
	if (p->pages) {
		unpin_user_pages(p->pages, p->nr_pages);
		kvfree(p->pages);
		p->pages = NULL;
		p->nr_pages = 0;
	}
	gupctl_uncharge(p->mm, p->charged);
	p->charged = 0;
	mutex_unlock(&p->lock);
}

static void gupctl_pins_free(struct kref *ref)
{
	struct gupctl_pins *p = container_of(ref, struct gupctl_pins, ref);

	mmdrop(p->mm);
	mutex_destroy(&p->lock);
	kfree(p);
}

static void gupctl_pins_unref(struct gupctl_pins *p)
{
	kref_put(&p->ref, gupctl_pins_free);
}

#ifdef CONFIG_MMU_NOTIFIER
/*
 * exit_mmap() (or execve() replacing the mm) calls this when the mm dies,
 * whoever still holds its files: every pin set it started ends with it, as
 * the pages an RDMA or vfio user pinned do.  It can race with STOP or the
 * last close from another process; gupctl_pins_end() makes the second one a
 * no-op.  Never takes gf->lock, so that a STOP holding it cannot deadlock
 * with it.
 */
static void gupctl_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct gupctl_mm *gm = container_of(mn, struct gupctl_mm, mn);
	struct gupctl_pins *p;

	spin_lock(&gm->lock);
	while ((p = list_first_entry_or_null(&gm->pins, struct gupctl_pins,
					     node))) {
		list_del_init(&p->node);	/* the list's reference is ours */
		spin_unlock(&gm->lock);
		gupctl_pins_end(p);
		gupctl_pins_unref(p);
		cond_resched();
		spin_lock(&gm->lock);
	}
	spin_unlock(&gm->lock);
}

static struct mmu_notifier *gupctl_mn_alloc(struct mm_struct *mm)
{
	struct gupctl_mm *gm = kzalloc(sizeof(*gm), GFP_KERNEL_ACCOUNT);

	if (!gm)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&gm->lock);
	INIT_LIST_HEAD(&gm->pins);
	return &gm->mn;
}

/* After the last mmu_notifier_put() and an SRCU grace period. */
static void gupctl_mn_free(struct mmu_notifier *mn)
{
	kfree(container_of(mn, struct gupctl_mm, mn));
}

static const struct mmu_notifier_ops gupctl_mn_ops = {
	.release = gupctl_mn_release,
	.alloc_notifier = gupctl_mn_alloc,
	.free_notifier = gupctl_mn_free,
};

/*
 * List @p on the notifier of its mm, current->mm (alive: this is its
 * ioctl), so that the mm's exit ends it.  The file keeps its reference on
 * that notifier until it is closed (or used from another mm), so a
 * START/STOP loop registers once.  Caller holds gf->lock, not mmap_lock:
 * mmu_notifier_get() takes it for writing.
 */
static int gupctl_pins_watch(struct gupctl_file *gf, struct gupctl_pins *p)
{
	struct mmu_notifier *mn;

	if (gf->gm && gf->gm->mn.mm != p->mm) {
		mmu_notifier_put(&gf->gm->mn);	/* an fd passed to another mm */
		gf->gm = NULL;
	}
	if (!gf->gm) {
		mn = mmu_notifier_get(&gupctl_mn_ops, p->mm);
		if (IS_ERR(mn))
			return PTR_ERR(mn);
		gf->gm = container_of(mn, struct gupctl_mm, mn);
	}
	p->gm = gf->gm;
	kref_get(&p->ref);	/* the list's */
	spin_lock(&p->gm->lock);
	list_add(&p->node, &p->gm->pins);
	spin_unlock(&p->gm->lock);
	return 0;
}

/* Take @p off its mm's list, unless the mm's exit took it first. */
static void gupctl_pins_unwatch(struct gupctl_pins *p)
{
	bool listed;

	spin_lock(&p->gm->lock);
	listed = !list_empty(&p->node);
	list_del_init(&p->node);
	spin_unlock(&p->gm->lock);
	if (listed)
		gupctl_pins_unref(p);	/* never the last: the file has one */
}

/* The last close: the file's reference on its mm's notifier. */
static void gupctl_file_unwatch(struct gupctl_file *gf)
{
	if (gf->gm)
		mmu_notifier_put(&gf->gm->mn);
}
#else
/*
 * Without CONFIG_MMU_NOTIFIER (kernels built for gup_test alone) the pins
 * end with STOP or the last close only, as upstream's do.
 */
static int gupctl_pins_watch(struct gupctl_file *gf, struct gupctl_pins *p)
{
	return 0;
}

static void gupctl_pins_unwatch(struct gupctl_pins *p)
{
}

static void gupctl_file_unwatch(struct gupctl_file *gf)
{
}
#endif /* CONFIG_MMU_NOTIFIER */

/* End the pins and drop the file's reference on @p. */
static void gupctl_pins_put(struct gupctl_pins *p)
{
	gupctl_pins_unwatch(p);
	gupctl_pins_end(p);
	gupctl_pins_unref(p);
}

/* STOP: end the file's pins, if any.  Caller holds gf->lock, or is release(). */
static void gupctl_longterm_stop(struct gupctl_file *gf)
{
	if (gf->pins) {
		gupctl_pins_put(gf->pins);
		gf->pins = NULL;
	}
}

/* Whether @p still pins anything (its mm may have ended them). */
static bool gupctl_pins_held(struct gupctl_pins *p)
{
	bool held;

	mutex_lock(&p->lock);
	held = p->pages;
	mutex_unlock(&p->lock);
	return held;
}

/* Caller holds gf->lock. */
static int gupctl_longterm_start(struct gupctl_file *gf, void __user *argp,
				 const struct gupctl_abi *abi)
{
	unsigned int gup_flags = FOLL_LONGTERM;
	struct mm_struct *mm = current->mm;
	struct pin_longterm_test args;
	unsigned long nr_pages, addr, done;
	struct gupctl_pins *p;
	struct page **pages;
	long cur;
	bool fast;
	int ret;

	memset(&args, 0, sizeof(args));
	if (copy_from_user(&args, argp, abi->pin_longterm_test_size))
		return -EFAULT;

	if (args.flags & ~(PIN_LONGTERM_TEST_FLAG_USE_WRITE |
			   PIN_LONGTERM_TEST_FLAG_USE_FAST))
		return -EINVAL;
	ret = gupctl_check_range(args.addr, args.size);
	if (ret)
		return ret;
	if (gf->pins) {
		if (gupctl_pins_held(gf->pins))
			return -EBUSY;
		/* Ended by the exit of their mm: the file may start anew. */
		gupctl_longterm_stop(gf);
	}

	nr_pages = args.size / PAGE_SIZE;
	/* Before any work: over the limit, nothing is pinned or kept. */
	ret = gupctl_charge(mm, nr_pages);
	if (ret)
		return ret;

	pages = gupctl_alloc_pages(nr_pages);
	if (!pages) {
		ret = -ENOMEM;
		goto uncharge;
	}

	if (args.flags & PIN_LONGTERM_TEST_FLAG_USE_WRITE)
		gup_flags |= FOLL_WRITE;
	fast = args.flags & PIN_LONGTERM_TEST_FLAG_USE_FAST;

	if (!fast && mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto free_pages;
	}

	done = 0;
	while (done < nr_pages) {
		addr = args.addr + done * PAGE_SIZE;
		if (fast)
			cur = pin_user_pages_fast(addr,
						  min(nr_pages - done,
						      (unsigned long)INT_MAX),
						  gup_flags, pages + done);
		else
			cur = gupctl_pin_user_pages(addr, nr_pages - done,
						    gup_flags, pages + done);
		if (cur <= 0) {
			ret = cur ? cur : -EFAULT;
			break;
		}
		done += cur;
		if (done < nr_pages && fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}

	if (!fast)
		mmap_read_unlock(mm);

	if (ret)
		goto unpin;

	p = kzalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p) {
		ret = -ENOMEM;
		goto unpin;
	}
	kref_init(&p->ref);	/* the file's */
	mutex_init(&p->lock);
	mmgrab(mm);
	p->mm = mm;
	p->charged = nr_pages;
	p->pages = pages;
	p->nr_pages = nr_pages;
	/* Not under mmap_lock: mmu_notifier_get() takes it for writing. */
	ret = gupctl_pins_watch(gf, p);
	if (ret) {
		/* Not listed: the pins end here, and so does @p. */
		gupctl_pins_end(p);
		gupctl_pins_unref(p);
		return ret;
	}
	gf->pins = p;
	return 0;

unpin:
	unpin_user_pages(pages, done);
free_pages:
	kvfree(pages);
uncharge:
	gupctl_uncharge(mm, nr_pages);
	return ret;
}

/*
 * Only the mm that started the pins may read them: an fd inherited through
 * fork() or received with SCM_RIGHTS would otherwise copy one process's
 * pinned memory into another's (mm/gup_test.c has no such check; it is
 * root-only).  After execve() the starter has a new mm and is refused too.
 * -EPERM, not -EACCES: the file was opened with every right it has, and
 * this caller is not the owner of the pins (as kill() answers for another
 * user's process).  STOP is allowed from any mm: it only gives the pins and
 * the charge back, which the last close() does from whichever process
 * makes it anyway.
 *
 * The caller holds a reference on @p and no lock: copy_to_user() may fault
 * for as long as the caller's fault handlers take (userfaultfd, FUSE), so
 * each page is taken under p->lock with a reference of its own, and copied
 * with no lock held.  A STOP meanwhile ends the read (-EINVAL).
 */
static int gupctl_longterm_read(struct gupctl_pins *p, void __user *argp)
{
	unsigned long i, left;
	struct page *page;
	u64 user_addr;
	void *kaddr;
	int ret = 0;

	if (p->mm != current->mm)
		return -EPERM;

	if (copy_from_user(&user_addr, argp, sizeof(user_addr)))
		return -EFAULT;
	if (user_addr != (unsigned long)user_addr)
		return -EFAULT;

	for (i = 0; !ret; i++) {
		mutex_lock(&p->lock);
		if (!p->pages) {
			mutex_unlock(&p->lock);
			return -EINVAL;	/* never started, or ended */
		}
		if (i == p->nr_pages) {
			mutex_unlock(&p->lock);
			break;
		}
		page = p->pages[i];
		get_page(page);
		mutex_unlock(&p->lock);

		kaddr = kmap_local_page(page);
		left = copy_to_user(u64_to_user_ptr(user_addr), kaddr,
				    PAGE_SIZE);
		kunmap_local(kaddr);
		put_page(page);
		if (left)
			ret = -EFAULT;
		else if (fatal_signal_pending(current))
			ret = -EINTR;	/* up to max_pages of them */
		user_addr += PAGE_SIZE;
		cond_resched();
	}
	return ret;
}

static long gupctl_longterm_ioctl(struct gupctl_file *gf, unsigned int cmd,
				  void __user *argp,
				  const struct gupctl_abi *abi)
{
	struct gupctl_pins *p;
	int ret = -ENOTTY;

	if (mutex_lock_killable(&gf->lock))
		return -EINTR;

	switch (cmd) {
	case PIN_LONGTERM_TEST_START:
		ret = gupctl_longterm_start(gf, argp, abi);
		break;
	case PIN_LONGTERM_TEST_STOP:
		gupctl_longterm_stop(gf);
		ret = 0;
		break;
	case PIN_LONGTERM_TEST_READ:
		/* Read without gf->lock: see gupctl_longterm_read(). */
		p = gf->pins;
		if (!p) {
			ret = -EINVAL;
			break;
		}
		kref_get(&p->ref);
		mutex_unlock(&gf->lock);
		ret = gupctl_longterm_read(p, argp);
		gupctl_pins_unref(p);
		return ret;
	}

	mutex_unlock(&gf->lock);
	return ret;
}

#ifdef GUPCTL_HAVE_IOV_ITER_EXTRACT_PAGES
/*
 * GUPCTL_EXTRACT (gupctl_extract.h): build an iterator, extract its pages
 * with iov_iter_extract_pages() as a driver doing direct I/O would, touch
 * the bytes extracted, and release the pages as iov_iter_extract_will_pin()
 * says.  The iterators of kernel memory are built over pages this module
 * allocates (in the caller's memory policy) and frees again.
 */
struct gupctl_kbuf {
	struct page **pages;
	unsigned long nr_pages;
	struct bio_vec *bvec;
	void *vaddr;		/* KVEC: the pages vmap()ed ... */
	struct kvec kvec;	/* ... as one segment */
	struct xarray xa;	/* XARRAY: the pages' folios by index */
};

static bool gupctl_extract_user(u32 iter_type)
{
	return iter_type == GUPCTL_EXTRACT_UBUF ||
	       iter_type == GUPCTL_EXTRACT_IOVEC;
}

static int gupctl_extract_validate(const struct gupctl_extract *ex)
{
	u64 end;

	if (ex->iter_type < GUPCTL_EXTRACT_UBUF ||
	    ex->iter_type > GUPCTL_EXTRACT_XARRAY)
		return -EINVAL;
	if (ex->flags & ~GUPCTL_EXTRACT_FLAG_DEST || ex->fill > 0xff)
		return -EINVAL;
	if (ex->offset || ex->checksum || ex->will_pin || ex->nr_pages ||
	    ex->nr_calls || ex->nr_pinned || ex->nr_matched || ex->reserved)
		return -EINVAL;
	if (ex->iter_type == GUPCTL_EXTRACT_IOVEC) {
		if (!ex->nr_segs || ex->nr_segs > GUPCTL_EXTRACT_MAX_SEGS ||
		    ex->nr_segs > ex->size)
			return -EINVAL;
	} else if (ex->nr_segs) {
		return -EINVAL;
	}
	if (!ex->size || check_add_overflow(ex->addr, ex->size, &end))
		return -EINVAL;
	if (gupctl_extract_user(ex->iter_type)) {
		if (end > TASK_SIZE)
			return -EINVAL;
	} else if (ex->addr) {
		return -EINVAL;	/* the module's own pages: no address */
	}
	/*
	 * In bytes: DIV_ROUND_UP() of a size within a page of 2^64 wraps to
	 * 0 pages.  max_pages <= GUPCTL_MAX_PAGES_CEILING: no overflow here.
	 */
	if (ex->size > (u64)READ_ONCE(gupctl_max_pages) << PAGE_SHIFT)
		return -E2BIG;
	return 0;
}

static void gupctl_kbuf_free(struct gupctl_kbuf *kb)
{
	unsigned long i;

	xa_destroy(&kb->xa);
	if (kb->vaddr)
		vunmap(kb->vaddr);
	kvfree(kb->bvec);
	for (i = 0; i < kb->nr_pages; i++)
		__free_page(kb->pages[i]);
	kvfree(kb->pages);
}

/* Pages for the module's iterators, each filled with @fill. */
static int gupctl_kbuf_alloc(struct gupctl_kbuf *kb, u32 iter_type,
			     u64 size, u8 fill)
{
	unsigned long i, n = DIV_ROUND_UP(size, PAGE_SIZE);

	xa_init(&kb->xa);
	kb->pages = gupctl_alloc_pages(n);
	if (!kb->pages)
		return -ENOMEM;
	for (; kb->nr_pages < n; kb->nr_pages++) {
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
		/* Fail rather than OOM-kill for a request that cannot fit. */
		kb->pages[kb->nr_pages] = alloc_page(GFP_KERNEL_ACCOUNT |
						     __GFP_NORETRY |
						     __GFP_NOWARN);
		if (!kb->pages[kb->nr_pages])
			return -ENOMEM;
		memset(page_address(kb->pages[kb->nr_pages]), fill, PAGE_SIZE);
	}
	switch (iter_type) {
	case GUPCTL_EXTRACT_BVEC:
		kb->bvec = kvcalloc(n, sizeof(*kb->bvec),
				    GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		if (!kb->bvec)
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			kb->bvec[i].bv_page = kb->pages[i];
			kb->bvec[i].bv_len = min_t(u64, size - i * PAGE_SIZE,
						   PAGE_SIZE);
			kb->bvec[i].bv_offset = 0;
		}
		break;
	case GUPCTL_EXTRACT_KVEC:
		kb->vaddr = vmap(kb->pages, n, VM_MAP, PAGE_KERNEL);
		if (!kb->vaddr)
			return -ENOMEM;
		break;
	case GUPCTL_EXTRACT_XARRAY:
		for (i = 0; i < n; i++) {
			int ret = xa_err(xa_store(&kb->xa, i,
						  page_folio(kb->pages[i]),
						  GFP_KERNEL_ACCOUNT));
			if (ret)
				return ret;
		}
		break;
	}
	return 0;
}

/* The iterator @ex asks for; @iov holds IOVEC's segments. */
static void gupctl_extract_iter(struct iov_iter *iter, struct iovec *iov,
				struct gupctl_kbuf *kb,
				const struct gupctl_extract *ex)
{
	unsigned int dir = ex->flags & GUPCTL_EXTRACT_FLAG_DEST ?
			   ITER_DEST : ITER_SOURCE;
	u64 at = 0;
	u32 s;

	switch (ex->iter_type) {
	case GUPCTL_EXTRACT_UBUF:
		iov_iter_ubuf(iter, dir, u64_to_user_ptr(ex->addr), ex->size);
		break;
	case GUPCTL_EXTRACT_IOVEC:
		/* Segment boundaries at sizes that split pages, on purpose. */
		for (s = 0; s < ex->nr_segs; s++) {
			u64 next = div64_u64(ex->size * (s + 1), ex->nr_segs);

			iov[s].iov_base = u64_to_user_ptr(ex->addr + at);
			iov[s].iov_len = next - at;
			at = next;
		}
		iov_iter_init(iter, dir, iov, ex->nr_segs, ex->size);
		break;
	case GUPCTL_EXTRACT_BVEC:
		iov_iter_bvec(iter, dir, kb->bvec, kb->nr_pages, ex->size);
		break;
	case GUPCTL_EXTRACT_KVEC:
		kb->kvec.iov_base = kb->vaddr;
		kb->kvec.iov_len = ex->size;
		iov_iter_kvec(iter, dir, &kb->kvec, 1, ex->size);
		break;
	case GUPCTL_EXTRACT_XARRAY:
		iov_iter_xarray(iter, dir, &kb->xa, 0, ex->size);
		break;
	}
}

/* Sum the @len bytes at @off of @pages, then set them to @fill if @dest. */
static u64 gupctl_extract_touch(struct page **pages, size_t off, size_t len,
				bool dest, u8 fill)
{
	u64 sum = 0;

	for (; len; pages++, off = 0) {
		size_t n = min_t(size_t, len, PAGE_SIZE - off);
		u8 *p = kmap_local_page(*pages);
		size_t k;

		for (k = 0; k < n; k++)
			sum += p[off + k];
		if (dest)
			memset(p + off, fill, n);
		kunmap_local(p);
		len -= n;
		cond_resched();	/* up to max_pages of them */
	}
	return sum;
}

/* Extract every page of @iter into @pages (room for @max); @ex gets the counts. */
static ssize_t gupctl_extract_all(struct iov_iter *iter, struct page **pages,
				  unsigned long max, const struct gupctl_kbuf *kb,
				  struct gupctl_extract *ex)
{
	bool dest = ex->flags & GUPCTL_EXTRACT_FLAG_DEST;
	unsigned long nr = 0, i;
	ssize_t done = 0;

	while (iov_iter_count(iter) && nr < max) {
		struct page **p = pages + nr;
		size_t off;
		ssize_t got = iov_iter_extract_pages(iter, &p, iov_iter_count(iter),
						     max - nr, 0, &off);
		unsigned long n;

		if (got <= 0) {
			if (!done)
				return got ?: -EFAULT;
			break;	/* what was extracted is reported */
		}
		n = DIV_ROUND_UP(off + got, PAGE_SIZE);
		if (!ex->nr_calls)
			ex->offset = off;
		for (i = 0; i < n; i++) {
			ex->nr_pinned += folio_maybe_dma_pinned(page_folio(p[i]));
			ex->nr_matched += kb->pages && nr + i < kb->nr_pages &&
					  p[i] == kb->pages[nr + i];
		}
		ex->checksum += gupctl_extract_touch(p, off, got, dest, ex->fill);
		ex->nr_calls++;
		nr += n;
		done += got;
		if (fatal_signal_pending(current))
			break;	/* the caller releases what was extracted */
	}
	ex->nr_pages = nr;
	return done;
}

static long gupctl_extract_ioctl(void __user *argp)
{
	struct iovec iov[GUPCTL_EXTRACT_MAX_SEGS];
	struct gupctl_kbuf kb = {};
	struct gupctl_extract ex;
	struct iov_iter iter;
	struct page **pages;
	unsigned long max;
	ssize_t done;
	int ret;

	if (copy_from_user(&ex, argp, sizeof(ex)))
		return -EFAULT;
	ret = gupctl_extract_validate(&ex);
	if (ret)
		return ret;
	/* Kernel pages on request, up to max_pages: not a group's to ask. */
	if (!gupctl_extract_user(ex.iter_type) && !gupctl_privileged())
		return -EPERM;

	/* A page more per segment: each may start inside a page. */
	max = DIV_ROUND_UP(ex.size, PAGE_SIZE) + max(ex.nr_segs, 1U);
	ret = gupctl_charge(current->mm, max);
	if (ret)
		return ret;
	pages = gupctl_alloc_pages(max);
	if (!pages) {
		ret = -ENOMEM;
		goto uncharge;
	}
	if (!gupctl_extract_user(ex.iter_type)) {
		ret = gupctl_kbuf_alloc(&kb, ex.iter_type, ex.size, ex.fill);
		if (ret)
			goto free_kbuf;
	}
	gupctl_extract_iter(&iter, iov, &kb, &ex);
	ex.will_pin = iov_iter_extract_will_pin(&iter);

	done = gupctl_extract_all(&iter, pages, max, &kb, &ex);
	if (done < 0) {
		ret = done;
		goto free_kbuf;
	}
	/* The caller's pages are pinned (will_pin); the module's only listed. */
	if (ex.will_pin)
		unpin_user_pages_dirty_lock(pages, ex.nr_pages,
					    ex.flags & GUPCTL_EXTRACT_FLAG_DEST);
	ex.size = done;
	if (copy_to_user(argp, &ex, sizeof(ex)))
		ret = -EFAULT;
free_kbuf:
	if (!gupctl_extract_user(ex.iter_type))
		gupctl_kbuf_free(&kb);
	kvfree(pages);
uncharge:
	gupctl_uncharge(current->mm, max);
	return ret;
}
#endif /* GUPCTL_HAVE_IOV_ITER_EXTRACT_PAGES */

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

static long gupctl_pages_ioctl(void __user *argp)
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

/* @cmd is a native command number; @abi gives the caller's struct sizes. */
static long gupctl_dispatch(struct file *file, unsigned int cmd,
			    void __user *argp, const struct gupctl_abi *abi)
{
	switch (cmd) {
	case GUP_FAST_BENCHMARK:
	case PIN_FAST_BENCHMARK:
	case PIN_LONGTERM_BENCHMARK:
	case GUP_BASIC_TEST:
	case PIN_BASIC_TEST:
	case DUMP_USER_PAGES_TEST:
		return gupctl_gup_ioctl(cmd, argp, abi);
	case PIN_LONGTERM_TEST_START:
	case PIN_LONGTERM_TEST_STOP:
	case PIN_LONGTERM_TEST_READ:
		return gupctl_longterm_ioctl(file->private_data, cmd, argp,
					     abi);
	case GUPCTL_EXTRACT:
#ifdef GUPCTL_HAVE_IOV_ITER_EXTRACT_PAGES
		return gupctl_extract_ioctl(argp);
#else
		return -EOPNOTSUPP;	/* iov_iter_extract_pages() is v6.3+ */
#endif
	case GUPCTL_PAGES:
		return gupctl_pages_ioctl(argp);
	}

	/* Documentation/driver-api/ioctl.rst; mm/gup_test.c says -EINVAL. */
	return -ENOTTY;
}

static long gupctl_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	return gupctl_dispatch(file, cmd, (void __user *)arg,
			       &gupctl_native_abi);
}

#ifdef CONFIG_COMPAT
#ifdef CONFIG_COMPAT_FOR_U64_ALIGNMENT
/* The native command number for an i386 one, or 0 if @cmd is none. */
static unsigned int gupctl_cmd_from_i386(unsigned int cmd)
{
	switch (cmd) {
	case GUP_FAST_BENCHMARK32:
		return GUP_FAST_BENCHMARK;
	case PIN_FAST_BENCHMARK32:
		return PIN_FAST_BENCHMARK;
	case PIN_LONGTERM_BENCHMARK32:
		return PIN_LONGTERM_BENCHMARK;
	case GUP_BASIC_TEST32:
		return GUP_BASIC_TEST;
	case PIN_BASIC_TEST32:
		return PIN_BASIC_TEST;
	case DUMP_USER_PAGES_TEST32:
		return DUMP_USER_PAGES_TEST;
	case PIN_LONGTERM_TEST_START32:
		return PIN_LONGTERM_TEST_START;
	}
	return 0;
}
#endif

/*
 * 32-bit callers.  The i386 numbers select the i386 struct sizes; every other
 * number (x32, the two commands whose number is the same in both ABIs, and
 * compat ABIs that align __u64 to 8) means the native layout.  The pointer
 * argument goes through compat_ptr(); the addresses inside the structs are
 * __u64 in every ABI and are checked against the caller's TASK_SIZE like
 * native ones.  Every command then runs the native handler, with its checks.
 */
static long gupctl_compat_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	void __user *argp = compat_ptr(arg);
#ifdef CONFIG_COMPAT_FOR_U64_ALIGNMENT
	unsigned int native = gupctl_cmd_from_i386(cmd);

	if (native)
		return gupctl_dispatch(file, native, argp, &gupctl_i386_abi);
#endif
	return gupctl_dispatch(file, cmd, argp, &gupctl_native_abi);
}
#else
#define gupctl_compat_ioctl NULL
#endif /* CONFIG_COMPAT */

/*
 * Unlike mm/gup_test.c, which keeps one global set of long-term pins, the
 * PIN_LONGTERM_TEST_* state belongs to the open file: independent users
 * cannot interfere with each other and release() drops exactly its own pins,
 * and their charge to the mm that started them.
 */
static int gupctl_open(struct inode *inode, struct file *file)
{
	struct gupctl_file *gf;

	gf = kzalloc(sizeof(*gf), GFP_KERNEL);
	if (!gf)
		return -ENOMEM;
	mutex_init(&gf->lock);
	file->private_data = gf;

	return nonseekable_open(inode, file);
}

static int gupctl_release(struct inode *inode, struct file *file)
{
	struct gupctl_file *gf = file->private_data;

	gupctl_longterm_stop(gf);
	gupctl_file_unwatch(gf);
	mutex_destroy(&gf->lock);
	kfree(gf);
	return 0;
}

static const struct file_operations gupctl_fops = {
	.owner = THIS_MODULE,
	.open = gupctl_open,
	.release = gupctl_release,
	.unlocked_ioctl = gupctl_ioctl,
	.compat_ioctl = gupctl_compat_ioctl,
};

static struct miscdevice gupctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "gup_test",
	.fops = &gupctl_fops,
	.mode = 0600,
};

static struct dentry *gupctl_dentry;

static void gupctl_debugfs_init(void)
{
	struct dentry *d;

	/* No pr_fmt: the dump_pages() lines must read exactly as upstream's. */
	if (!gupctl_debugfs)
		return;

	/* A kernel with CONFIG_GUP_TEST already provides the file. */
	d = debugfs_lookup("gup_test", NULL);
	if (!IS_ERR_OR_NULL(d)) {
		dput(d);
		pr_info("gupctl: debugfs gup_test provided by the kernel, not creating it\n");
		return;
	}

	/*
	 * Not _unsafe: the proxy makes removal safe against open files.  The
	 * proxy (full_proxy_fops in fs/debugfs/file.c, still so in v7.3) has
	 * no .compat_ioctl, so 32-bit processes get -ENOTTY here: they must
	 * use /dev/gup_test.
	 */
	d = debugfs_create_file("gup_test", 0600, NULL, NULL, &gupctl_fops);
	if (IS_ERR_OR_NULL(d)) {
		pr_info("gupctl: debugfs gup_test not created\n");
		return;
	}
	gupctl_dentry = d;
}

static int __init gupctl_init(void)
{
	int ret;

	ret = misc_register(&gupctl_misc);
	if (ret) {
		pr_err("gupctl: misc_register failed: %d\n", ret);
		return ret;
	}

	gupctl_debugfs_init();
	return 0;
}

static void __exit gupctl_exit(void)
{
	debugfs_remove(gupctl_dentry);
	misc_deregister(&gupctl_misc);
#ifdef CONFIG_MMU_NOTIFIER
	/* gupctl_mn_free() runs after mmu_notifier_put() returns. */
	mmu_notifier_synchronize();
#endif
}

module_init(gupctl_init);
module_exit(gupctl_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("gup_test ioctl ABI (mm/gup_test.c) for stock kernels");
MODULE_VERSION("0.1.0");
