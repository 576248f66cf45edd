/*
 * Prints the ABI as the C compiler sees kmod/gup_test.h: compiled and run by
 * test_abi.py at test time, and compared with gupctl/abi.py.
 */
#include <stddef.h>
#include <stdio.h>
#include "gup_test.h"

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
	return 0;
}
