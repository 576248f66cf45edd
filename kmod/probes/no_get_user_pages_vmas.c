// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where get_user_pages() has no vmas argument: from commit
 * 54d020692b34 ("mm/gup: remove unused vmas parameter from
 * get_user_pages()"), v6.5.  get_user_pages_vmas.c is its complement.
 */
#include <linux/mm.h>

static long __maybe_unused gupctl_probe(struct page **pages)
{
	return get_user_pages(0, 1, 0, pages);
}
