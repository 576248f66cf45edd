/*
 * Prints the ABI as the C compiler sees kmod/gup_test.h (and the kmod's own
 * gupctl_extract.h and gupctl_pages.h): compiled and run by
 * test_abi.py at test time, and compared with gupctl/abi.py.
 */
#include <stddef.h>
#include <stdio.h>
#include "gup_test.h"
#include "gupctl_extract.h"
#include "gupctl_pages.h"

#define CMD(c) printf("cmd %s %lu\n", #c, (unsigned long)(c))
#define SIZE(s) printf("size struct %s %zu\n", #s, sizeof(struct s))
#define OFF(s, f) printf("offset struct %s %s %zu\n", #s, #f, offsetof(struct s, f))

int main(void)
{
	CMD(GUP_FAST_BENCHMARK);
	CMD(PIN_FAST_BENCHMARK);
	CMD(PIN_LONGTERM_BENCHMARK);
	CMD(GUP_BASIC_TEST);
	CMD(PIN_BASIC_TEST);
	CMD(DUMP_USER_PAGES_TEST);
	CMD(PIN_LONGTERM_TEST_START);
	CMD(PIN_LONGTERM_TEST_STOP);
	CMD(PIN_LONGTERM_TEST_READ);
	SIZE(gup_test);
	SIZE(pin_longterm_test);
	OFF(gup_test, get_delta_usec);
	OFF(gup_test, put_delta_usec);
	OFF(gup_test, addr);
	OFF(gup_test, size);
	OFF(gup_test, nr_pages_per_call);
	OFF(gup_test, gup_flags);
	OFF(gup_test, test_flags);
	OFF(gup_test, which_pages);
	OFF(pin_longterm_test, addr);
	OFF(pin_longterm_test, size);
	OFF(pin_longterm_test, flags);
	printf("const GUP_TEST_MAX_PAGES_TO_DUMP %d\n", GUP_TEST_MAX_PAGES_TO_DUMP);
	printf("const GUP_TEST_FLAG_DUMP_PAGES_USE_PIN %d\n", GUP_TEST_FLAG_DUMP_PAGES_USE_PIN);
	printf("const PIN_LONGTERM_TEST_FLAG_USE_WRITE %d\n", PIN_LONGTERM_TEST_FLAG_USE_WRITE);
	printf("const PIN_LONGTERM_TEST_FLAG_USE_FAST %d\n", PIN_LONGTERM_TEST_FLAG_USE_FAST);
	CMD(GUPCTL_EXTRACT);
	SIZE(gupctl_extract);
	OFF(gupctl_extract, addr);
	OFF(gupctl_extract, size);
	OFF(gupctl_extract, offset);
	OFF(gupctl_extract, checksum);
	OFF(gupctl_extract, iter_type);
	OFF(gupctl_extract, flags);
	OFF(gupctl_extract, nr_segs);
	OFF(gupctl_extract, fill);
	OFF(gupctl_extract, will_pin);
	OFF(gupctl_extract, nr_pages);
	OFF(gupctl_extract, nr_calls);
	OFF(gupctl_extract, nr_pinned);
	OFF(gupctl_extract, nr_matched);
	OFF(gupctl_extract, reserved);
	printf("const GUPCTL_EXTRACT_UBUF %d\n", GUPCTL_EXTRACT_UBUF);
	printf("const GUPCTL_EXTRACT_IOVEC %d\n", GUPCTL_EXTRACT_IOVEC);
	printf("const GUPCTL_EXTRACT_BVEC %d\n", GUPCTL_EXTRACT_BVEC);
	printf("const GUPCTL_EXTRACT_KVEC %d\n", GUPCTL_EXTRACT_KVEC);
	printf("const GUPCTL_EXTRACT_XARRAY %d\n", GUPCTL_EXTRACT_XARRAY);
	printf("const GUPCTL_EXTRACT_FLAG_DEST %d\n", GUPCTL_EXTRACT_FLAG_DEST);
	printf("const GUPCTL_EXTRACT_MAX_SEGS %d\n", GUPCTL_EXTRACT_MAX_SEGS);
	CMD(GUPCTL_PAGES);
	SIZE(gupctl_page);
	SIZE(gupctl_pages);
	OFF(gupctl_page, pfn);
	OFF(gupctl_page, flags);
	OFF(gupctl_page, order);
	OFF(gupctl_page, refcount);
	OFF(gupctl_page, pincount);
	OFF(gupctl_page, node);
	OFF(gupctl_page, reserved);
	OFF(gupctl_page, zone);
	OFF(gupctl_pages, pages);
	OFF(gupctl_pages, nr);
	OFF(gupctl_pages, reserved);
	printf("const GUPCTL_PAGE_ONLINE %d\n", GUPCTL_PAGE_ONLINE);
	printf("const GUPCTL_PAGE_PINNED %d\n", GUPCTL_PAGE_PINNED);
	printf("const GUPCTL_PAGE_UNSTABLE %d\n", GUPCTL_PAGE_UNSTABLE);
	printf("const GUPCTL_PAGES_MAX %d\n", GUPCTL_PAGES_MAX);
	return 0;
}
