/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * gupctl - what the module's source files share: not a uapi header (those
 * are gup_test.h, gupctl_extract.h and gupctl_pages.h).  The helpers are
 * defined in gupctl_main.c, each ioctl entry point in the file of its
 * commands.
 */
#ifndef __GUPCTL_H
#define __GUPCTL_H

#include <linux/compiler.h>
#include <linux/mutex.h>
#include <linux/types.h>

struct mm_struct;
struct page;
struct gupctl_pins;
struct gupctl_mm;

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

/* The max_pages module parameter: the most pages one request may name. */
extern unsigned long gupctl_max_pages;

/* gupctl_privileged() - whether the caller may do what upstream keeps for root */
bool gupctl_privileged(void);

/* gupctl_get_user_pages() - get_user_pages() without vmas, on every kernel */
long gupctl_get_user_pages(unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages);

/* gupctl_pin_user_pages() - pin_user_pages() without vmas, on every kernel */
long gupctl_pin_user_pages(unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages);

/* gupctl_alloc_pages() - a zeroed array of @nr_pages page pointers, kvfree()d */
struct page **gupctl_alloc_pages(unsigned long nr_pages);

/* gupctl_check_range() - 0 if @addr, @size is a valid user range, else -errno */
int gupctl_check_range(u64 addr, u64 size);

/* gupctl_charge() - charge @nr_pages to @mm's pinned_vm, or -ENOMEM */
int gupctl_charge(struct mm_struct *mm, unsigned long nr_pages);

/* gupctl_uncharge() - give back what gupctl_charge() charged */
void gupctl_uncharge(struct mm_struct *mm, unsigned long nr_pages);

/* gupctl_alloc_charged() - gupctl_alloc_pages() after gupctl_charge(), or ERR_PTR */
struct page **gupctl_alloc_charged(struct mm_struct *mm,
				   unsigned long nr_pages);

/* gupctl_free_charged() - kvfree() what gupctl_alloc_charged() gave, uncharged */
void gupctl_free_charged(struct mm_struct *mm, struct page **pages,
			 unsigned long nr_pages);

/* gupctl_gup_ioctl() - the benchmark and basic-test commands (gupctl_gup.c) */
long gupctl_gup_ioctl(unsigned int cmd, void __user *argp,
		      const struct gupctl_abi *abi);

/* gupctl_longterm_ioctl() - PIN_LONGTERM_TEST_* (gupctl_longterm.c) */
long gupctl_longterm_ioctl(struct gupctl_file *gf, unsigned int cmd,
			   void __user *argp, const struct gupctl_abi *abi);

/* gupctl_longterm_release() - the last close: end @gf's longterm state */
void gupctl_longterm_release(struct gupctl_file *gf);

/* gupctl_extract_ioctl() - GUPCTL_EXTRACT, or -EOPNOTSUPP (gupctl_extract.c) */
long gupctl_extract_ioctl(void __user *argp);

/* gupctl_pages_ioctl() - GUPCTL_PAGES (gupctl_pages.c) */
long gupctl_pages_ioctl(void __user *argp);

#endif	/* __GUPCTL_H */
