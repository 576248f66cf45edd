// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where pin_user_pages() has no vmas argument: from commit
 * 4c630f307455 ("mm/gup: remove vmas parameter from pin_user_pages()"),
 * v6.5.  pin_user_pages_vmas.c is its complement.
 */
#include <linux/mm.h>

static long __maybe_unused gupctl_probe(struct page **pages)
{
	return pin_user_pages(0, 1, 0, pages);
}
