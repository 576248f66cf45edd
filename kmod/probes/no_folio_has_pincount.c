// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where <linux/mm.h> has no folio_has_pincount(): 6.1, whose
 * large folios keep their pins behind folio_pincount_ptr().  Where it has
 * one, this declaration conflicts with it (a function), or with what the
 * macro expands to.  folio_has_pincount.c is its complement.
 */
#include <linux/mm.h>

int folio_has_pincount(void);
