/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * gup_test ioctl ABI, shared by the gupctl module and userspace.
 *
 * This mirrors the kernel's private header mm/gup_test.h (the ABI served by
 * CONFIG_GUP_TEST at /sys/kernel/debug/gup_test): the v5.13+ layout of
 * struct gup_test and commands 1..6, plus the PIN_LONGTERM_TEST_* commands
 * added in v6.2.  Command numbers, macro names and struct layouts must stay
 * byte-for-byte identical to the in-kernel definition, so that a binary built
 * against either header works with either implementation.
 */
#ifndef __GUP_TEST_H
#define __GUP_TEST_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define GUP_FAST_BENCHMARK	_IOWR('g', 1, struct gup_test)
#define PIN_FAST_BENCHMARK	_IOWR('g', 2, struct gup_test)
#define PIN_LONGTERM_BENCHMARK	_IOWR('g', 3, struct gup_test)
#define GUP_BASIC_TEST		_IOWR('g', 4, struct gup_test)
#define PIN_BASIC_TEST		_IOWR('g', 5, struct gup_test)
#define DUMP_USER_PAGES_TEST	_IOWR('g', 6, struct gup_test)
#define PIN_LONGTERM_TEST_START	_IOW('g', 7, struct pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define PIN_LONGTERM_TEST_READ	_IOW('g', 9, __u64)

#define GUP_TEST_MAX_PAGES_TO_DUMP		8

#define GUP_TEST_FLAG_DUMP_PAGES_USE_PIN	0x1

/*
 * sizeof(struct gup_test) is 80 on x86_64 (4 bytes of implicit tail padding
 * after which_pages[]) but 76 on i386, where __u64 is only 4-byte aligned.
 * The size is encoded in the command numbers above, so no explicit padding
 * member may be added: the layout must match the kernel's on every ABI.
 */
struct gup_test {
	__u64 get_delta_usec;
	__u64 put_delta_usec;
	__u64 addr;
	__u64 size;
	__u32 nr_pages_per_call;
	__u32 gup_flags;
	__u32 test_flags;
	/*
	 * Each non-zero entry is the number of the page (1-based: first page is
	 * page 1, so that zero entries mean "do nothing") from the .addr base.
	 */
	__u32 which_pages[GUP_TEST_MAX_PAGES_TO_DUMP];
};

#define PIN_LONGTERM_TEST_FLAG_USE_WRITE	1
#define PIN_LONGTERM_TEST_FLAG_USE_FAST		2

struct pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#endif	/* __GUP_TEST_H */
