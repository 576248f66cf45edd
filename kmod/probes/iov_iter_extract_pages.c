// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where iov_iter_extract_pages() exists: from v6.3 (David
 * Howells, "iov_iter: Add a function to extract a page list from an
 * iterator").  no_iov_iter_extract_pages.c is its complement.
 */
#include <linux/uio.h>

static ssize_t __maybe_unused gupctl_probe(struct iov_iter *i,
					   struct page **pages)
{
	size_t offset;

	return iov_iter_extract_pages(i, &pages, 1, 1, 0, &offset) +
	       iov_iter_extract_will_pin(i);
}
