/*
 * The gup_test ABI as one architecture's C compiler sees kmod/gup_test.h,
 * for test_abi_cross.py.  Compiled with -S only (no libc, no assembler, no
 * linking) against that architecture's uapi headers: each value lands in the
 * assembly (or LLVM IR) as a "->NAME VALUE" string, the kernel's asm-offsets
 * trick (include/linux/kbuild.h).
 */
#include "gup_test.h"

#define DEFINE(sym, val) asm volatile("\n.ascii \"->" #sym " %0\"" : : "i" (val))
#define OFFSET(s, f) DEFINE(offset_##s##_##f, __builtin_offsetof(struct s, f))
#define STRUCT(s) do { \
	DEFINE(size_##s, sizeof(struct s)); \
	DEFINE(align_##s, _Alignof(struct s)); \
} while (0)
#define CMD(c) DEFINE(cmd_##c, c)

/* A type's alignment inside a struct: what the layout uses (gcc's
 * __alignof__(__u64) on i386 says 8, its preferred alignment, not 4). */
struct u64_in_struct { char c; __u64 v; };
struct u32_in_struct { char c; __u32 v; };

void probe(void);

void probe(void)
{
	DEFINE(align_u64, __builtin_offsetof(struct u64_in_struct, v));
	DEFINE(align_u32, __builtin_offsetof(struct u32_in_struct, v));
	DEFINE(sizeof_long, sizeof(long));

	STRUCT(gup_test);
	OFFSET(gup_test, get_delta_usec);
	OFFSET(gup_test, put_delta_usec);
	OFFSET(gup_test, addr);
	OFFSET(gup_test, size);
	OFFSET(gup_test, nr_pages_per_call);
	OFFSET(gup_test, gup_flags);
	OFFSET(gup_test, test_flags);
	OFFSET(gup_test, which_pages);

	STRUCT(pin_longterm_test);
	OFFSET(pin_longterm_test, addr);
	OFFSET(pin_longterm_test, size);
	OFFSET(pin_longterm_test, flags);

	CMD(GUP_FAST_BENCHMARK);
	CMD(PIN_FAST_BENCHMARK);
	CMD(PIN_LONGTERM_BENCHMARK);
	CMD(GUP_BASIC_TEST);
	CMD(PIN_BASIC_TEST);
	CMD(DUMP_USER_PAGES_TEST);
	CMD(PIN_LONGTERM_TEST_START);
	CMD(PIN_LONGTERM_TEST_STOP);
	CMD(PIN_LONGTERM_TEST_READ);
}
