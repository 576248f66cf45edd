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
 *
 * The sources follow the uapi headers: gupctl_gup.c serves gup_test.h's
 * benchmark and basic-test commands, in the order of mm/gup_test.c so that
 * the two can be diffed; gupctl_longterm.c its PIN_LONGTERM_TEST_*
 * commands; gupctl_extract.c GUPCTL_EXTRACT (gupctl_extract.h);
 * gupctl_pages.c GUPCTL_PAGES (gupctl_pages.h).  This file has what they
 * share (declared in gupctl.h), the dispatch of commands and the device.
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
#include <linux/sched/signal.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/stddef.h>
#include "gup_test.h"
#include "gupctl_extract.h"
#include "gupctl_pages.h"
#include "gupctl_config.h"
#include "gupctl.h"

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

unsigned long gupctl_max_pages = 1UL << 20;

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

/*
 * What upstream's root-only file does that a member of the device's group
 * must not: see the model above.  Asked only when such a thing is
 * requested, so that capable() audits a refusal that means something.
 */
bool gupctl_privileged(void)
{
	return capable(CAP_SYS_ADMIN);
}

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

long gupctl_get_user_pages(unsigned long start, unsigned long nr_pages,
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

long gupctl_pin_user_pages(unsigned long start, unsigned long nr_pages,
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

struct page **gupctl_alloc_pages(unsigned long nr_pages)
{
	return kvcalloc(nr_pages, sizeof(struct page *),
			GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
}

/* Check a user range: page aligned, non-empty, no overflow, in TASK_SIZE. */
int gupctl_check_range(u64 addr, u64 size)
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
int gupctl_charge(struct mm_struct *mm, unsigned long nr_pages)
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

void gupctl_uncharge(struct mm_struct *mm, unsigned long nr_pages)
{
	atomic64_sub(nr_pages, &mm->pinned_vm);
}

/*
 * The page array of a command that will hold up to @nr_pages, charged to
 * @mm before anything is pinned: over the limit, nothing is kept.
 */
struct page **gupctl_alloc_charged(struct mm_struct *mm,
				   unsigned long nr_pages)
{
	struct page **pages;
	int ret;

	ret = gupctl_charge(mm, nr_pages);
	if (ret)
		return ERR_PTR(ret);
	pages = gupctl_alloc_pages(nr_pages);
	if (!pages) {
		gupctl_uncharge(mm, nr_pages);
		return ERR_PTR(-ENOMEM);
	}
	return pages;
}

void gupctl_free_charged(struct mm_struct *mm, struct page **pages,
			 unsigned long nr_pages)
{
	kvfree(pages);
	gupctl_uncharge(mm, nr_pages);
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
		return gupctl_extract_ioctl(argp);
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

	gupctl_longterm_release(gf);
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
