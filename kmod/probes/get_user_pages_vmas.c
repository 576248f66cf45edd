// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where get_user_pages() still takes its trailing
 * "struct vm_area_struct **vmas" argument: before commit 54d020692b34
 * ("mm/gup: remove unused vmas parameter from get_user_pages()"), v6.5.
 * no_get_user_pages_vmas.c is its complement.
 */
#include <linux/mm.h>

static long __maybe_unused gupctl_probe(struct page **pages)
{
	return get_user_pages(0, 1, 0, pages, NULL);
}
