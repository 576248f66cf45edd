// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compiles only where <linux/mm.h> has folio_has_pincount(), the test of
 * whether folio->_pincount holds the folio's pins: in 6.12 (a macro) and 7.3
 * (an inline function that also asks the order on 32-bit), not in 6.1.
 * no_folio_has_pincount.c is its complement.
 */
#include <linux/mm.h>

static bool __maybe_unused gupctl_probe(struct folio *folio)
{
	return folio_has_pincount(folio);
}
