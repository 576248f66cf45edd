// SPDX-License-Identifier: GPL-2.0-only
/*
 * gupctl - GUPCTL_EXTRACT (gupctl_extract.h): iov_iter_extract_pages() from
 * userspace.  Built against a kernel without it (before v6.3, see
 * gupctl_config.h) the command fails with -EOPNOTSUPP.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/highmem.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/xarray.h>
#include <linux/bvec.h>
#include "gupctl_extract.h"
#include "gupctl_config.h"
#include "gupctl.h"

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

long gupctl_extract_ioctl(void __user *argp)
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
	pages = gupctl_alloc_charged(current->mm, max);
	if (IS_ERR(pages))
		return PTR_ERR(pages);
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
	gupctl_free_charged(current->mm, pages, max);
	return ret;
}
#else
long gupctl_extract_ioctl(void __user *argp)
{
	return -EOPNOTSUPP;	/* iov_iter_extract_pages() is v6.3+ */
}
#endif /* GUPCTL_HAVE_IOV_ITER_EXTRACT_PAGES */
