// SPDX-License-Identifier: GPL-2.0-only
/*
 * gupctl - the PIN_LONGTERM_TEST_* commands (gup_test.h): START pins a range
 * with FOLL_LONGTERM until STOP, READ copies the pinned pages out.  Unlike
 * mm/gup_test.c's, the pins belong to the open file (struct gupctl_file),
 * are charged to the mm that started them and end with that mm too (an
 * mmu_notifier): see the list of differences in gupctl_main.c.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/kref.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>
#include <linux/highmem.h>
#include <linux/string.h>
#include "gup_test.h"
#include "gupctl.h"

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
	pages = gupctl_alloc_charged(mm, nr_pages);
	if (IS_ERR(pages))
		return PTR_ERR(pages);

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
	gupctl_free_charged(mm, pages, nr_pages);
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

long gupctl_longterm_ioctl(struct gupctl_file *gf, unsigned int cmd,
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

/* The last close of the file: end its pins, drop its notifier reference. */
void gupctl_longterm_release(struct gupctl_file *gf)
{
	gupctl_longterm_stop(gf);
	gupctl_file_unwatch(gf);
}
