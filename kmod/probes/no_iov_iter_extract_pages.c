// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where <linux/uio.h> declares no iov_iter_extract_pages():
 * before v6.3.  Where it does, this declaration conflicts with it.
 * iov_iter_extract_pages.c is its complement.
 */
#include <linux/uio.h>

int iov_iter_extract_pages(void);
