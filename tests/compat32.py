"""Static i386 clients of gup_test, for tests/kernel/test_compat32.py.

Both are built with `gcc -m32 -static` (Debian: gcc-multilib) and cached
under gupctl's cache directory, keyed by their sources and the compiler:

- gup_test32: upstream's tools/testing/selftests/mm/gup_test.c from Debian's
  linux-source-6.12, unmodified, with the kernel's own mm/gup_test.h.  It
  needs vm_util.c only for the two variables behind psize(), and vm_util.c
  needs newer uapi headers than bookworm's, so a stub defines them.
- compat32: what gup_test.c does not cover, against kmod/gup_test.h: the
  PIN_LONGTERM_TEST_* commands (START has its own i386 number), the size the
  kernel writes back, validation, and the debugfs file's missing compat_ioctl.

The build extracts four files from a 150 MB tarball: seconds on the host,
minutes under TCG.  `python tests/compat32.py` builds on the host and prints
the directory; the VM finds it there when its GUPCTL_CACHE is the host's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
CFLAGS = ["-m32", "-static", "-O2", "-Wall"]
#: What upstream's gup_test.c includes, as paths inside the kernel tree.
UPSTREAM = (
    "tools/testing/selftests/mm/gup_test.c",
    "tools/testing/selftests/mm/vm_util.h",
    "tools/testing/selftests/kselftest.h",
    "mm/gup_test.h",
)
#: psize() and pshift() in vm_util.h read these; vm_util.c defines them.
STUB = "unsigned int __page_size;\nunsigned int __page_shift;\n"

CLIENT = r"""
/* compat32: gupctl.ko's i386 ABI (compat_ioctl), one check per subcommand. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "gup_test.h"

_Static_assert(sizeof(struct gup_test) == 76, "i386 struct gup_test");
_Static_assert(sizeof(struct pin_longterm_test) == 20, "i386 pin_longterm_test");
_Static_assert(GUP_FAST_BENCHMARK == 0xc04c6701, "i386 GUP_FAST_BENCHMARK");
_Static_assert(PIN_LONGTERM_TEST_START == 0x40146707, "i386 START");

#define FOLL_WRITE 0x1 /* the same value before and after v6.3 */

static long psz;

static char *map(unsigned long pages, int fill)
{
	char *p = mmap(NULL, pages * psz, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long i;

	if (p == MAP_FAILED) {
		perror("compat32: mmap");
		exit(2);
	}
	for (i = 0; i < pages; i++)
		memset(p + i * psz, fill ? (int)(i % 251) + 1 : 0, psz);
	return p;
}

static int open_dev(const char *path)
{
	int fd = open(path, O_RDWR);

	if (fd < 0) {
		fprintf(stderr, "compat32: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return fd;
}

static int expect(const char *what, int ret, int want_errno)
{
	int got = ret ? errno : 0;

	printf("%s %s: %s\n", got == want_errno ? "ok" : "not ok", what,
		got ? strerror(got) : "success");
	return got != want_errno;
}

/* START (R/O), write through the mapping, READ through the pins, STOP. */
static int longterm(int fd, unsigned long pages)
{
	char *p = map(pages, 1), *copy = map(pages, 0);
	struct pin_longterm_test args = {
		.addr = (uintptr_t)p, .size = (uint64_t)pages * psz,
	};
	uint64_t dst = (uintptr_t)copy;
	unsigned long i;
	int bad = 0;

	bad |= expect("start", ioctl(fd, PIN_LONGTERM_TEST_START, &args), 0);
	bad |= expect("start again", ioctl(fd, PIN_LONGTERM_TEST_START, &args),
			EBUSY);
	for (i = 0; i < pages; i++)
		memset(p + i * psz, 0xff - (int)(i % 251), psz);
	bad |= expect("read", ioctl(fd, PIN_LONGTERM_TEST_READ, &dst), 0);
	if (memcmp(p, copy, pages * psz)) {
		printf("not ok read: the pins do not see the later writes\n");
		bad = 1;
	}
	bad |= expect("stop", ioctl(fd, PIN_LONGTERM_TEST_STOP), 0);
	return bad;
}

/* The kernel writes back 76 bytes: the size obtained, and nothing beyond. */
static int layout(int fd)
{
	unsigned char raw[sizeof(struct gup_test) + 16];
	struct gup_test *gup = (struct gup_test *)raw;
	unsigned int i;
	int bad;

	memset(raw, 0xa5, sizeof(raw));
	memset(gup, 0, sizeof(*gup));
	gup->addr = (uintptr_t)map(4, 1);
	gup->size = 4 * psz;
	gup->nr_pages_per_call = 3;
	gup->gup_flags = FOLL_WRITE;
	bad = expect("pin_basic_test", ioctl(fd, PIN_BASIC_TEST, gup), 0);
	if (gup->size != (uint64_t)4 * psz) {
		printf("not ok size written back: %llu\n",
			(unsigned long long)gup->size);
		bad = 1;
	}
	for (i = sizeof(*gup); i < sizeof(raw); i++) {
		if (raw[i] != 0xa5) {
			printf("not ok byte %u past the struct overwritten\n", i);
			bad = 1;
		}
	}
	return bad;
}

/* Every field is still checked on the i386 path. */
static int einval(int fd)
{
	uint64_t addr = (uintptr_t)map(2, 1);
	struct gup_test gup = {
		.addr = addr, .size = 2 * psz, .nr_pages_per_call = 1,
	};
	struct pin_longterm_test lt = { .addr = addr, .size = 2 * psz };
	int bad = 0;

	gup.test_flags = GUP_TEST_FLAG_DUMP_PAGES_USE_PIN;
	bad |= expect("test_flags on gup_basic_test",
			ioctl(fd, GUP_BASIC_TEST, &gup), EINVAL);
	gup.test_flags = 0;
	gup.which_pages[0] = 3;
	bad |= expect("which_pages beyond size",
			ioctl(fd, DUMP_USER_PAGES_TEST, &gup), EINVAL);
	gup.which_pages[0] = 0;
	gup.addr = addr + 1;
	bad |= expect("unaligned addr", ioctl(fd, PIN_FAST_BENCHMARK, &gup),
			EINVAL);
	gup.addr = 1ULL << 32;
	bad |= expect("addr above the i386 TASK_SIZE",
			ioctl(fd, PIN_BASIC_TEST, &gup), EINVAL);
	gup.addr = addr;
	gup.nr_pages_per_call = 0;
	bad |= expect("nr_pages_per_call 0",
			ioctl(fd, PIN_LONGTERM_BENCHMARK, &gup), EINVAL);
	lt.flags = 4;
	bad |= expect("longterm flags", ioctl(fd, PIN_LONGTERM_TEST_START, &lt),
			EINVAL);
	lt.flags = 0;
	lt.addr = 1ULL << 32;
	bad |= expect("longterm addr above the i386 TASK_SIZE",
			ioctl(fd, PIN_LONGTERM_TEST_START, &lt), EINVAL);
	bad |= expect("unknown command", ioctl(fd, _IO('g', 10)), ENOTTY);
	return bad;
}

/* debugfs's proxy file_operations have no compat_ioctl. */
static int debugfs(int fd)
{
	struct gup_test gup = {
		.addr = (uintptr_t)map(1, 1), .size = psz, .nr_pages_per_call = 1,
	};

	return expect("i386 ioctl on the debugfs file",
			ioctl(fd, PIN_BASIC_TEST, &gup), ENOTTY);
}

int main(int argc, char **argv)
{
	int fd;

	psz = sysconf(_SC_PAGESIZE);
	if (argc < 3) {
		fprintf(stderr, "usage: compat32 longterm|layout|einval|debugfs FILE [PAGES]\n");
		return 2;
	}
	fd = open_dev(argv[2]);
	if (!strcmp(argv[1], "longterm") && argc == 4)
		return longterm(fd, strtoul(argv[3], NULL, 0));
	if (!strcmp(argv[1], "layout"))
		return layout(fd);
	if (!strcmp(argv[1], "einval"))
		return einval(fd);
	if (!strcmp(argv[1], "debugfs"))
		return debugfs(fd);
	fprintf(stderr, "compat32: unknown check %s\n", argv[1]);
	return 2;
}
"""


class Missing(Exception):
    """Something the i386 build needs is not installed: the message says what."""


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True)


def _compiler_id() -> str:
    """gcc's version line; Missing unless `gcc -m32 -static` links a program."""
    if not shutil.which("gcc"):
        raise Missing("no gcc (Debian: gcc, gcc-multilib)")
    probe = subprocess.run(["gcc", *CFLAGS, "-x", "c", "-", "-o", "/dev/null"],
                           input="int main(void) { return 0; }\n",
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise Missing(f"gcc -m32 -static cannot build i386 programs (Debian: gcc-multilib): {last}")
    return _run(["gcc", "--version"]).stdout.splitlines()[0]


def _extract(dest: Path) -> None:
    """UPSTREAM's files from TARBALL into `dest`, at their paths in the tree."""
    if not TARBALL.exists():
        raise Missing(f"no {TARBALL} (Debian: linux-source-6.12)")
    from gupctl.vm.build import extract

    missing = extract(TARBALL, UPSTREAM, dest)
    if missing:
        raise Missing(f"{TARBALL} lacks {', '.join(missing)}")


def _compile(argv: list[str], cwd: Path) -> None:
    proc = _run(["gcc", *CFLAGS, *argv], cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"gcc {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")


def _make(scratch: Path) -> None:
    tree = scratch / "src"
    _extract(tree)
    (tree / "stub.c").write_text(STUB)
    mm = tree / "tools/testing/selftests/mm"
    _compile(["-I", str(tree), "-o", str(scratch / "gup_test32"), "gup_test.c",
              str(tree / "stub.c"), "-lpthread"], mm)  # fmt: skip
    (tree / "compat32.c").write_text(CLIENT)
    _compile(["-Werror", "-I", str(ROOT / "kmod"), "-o", str(scratch / "compat32"),
              "compat32.c"], tree)  # fmt: skip
    shutil.rmtree(tree)


def build() -> Path:
    """The directory holding gup_test32 and compat32, built if need be."""
    from gupctl import cache

    compiler = _compiler_id()
    if not TARBALL.exists():
        raise Missing(f"no {TARBALL} (Debian: linux-source-6.12)")
    st = TARBALL.stat()
    parts = [str(TARBALL), str(st.st_size), str(int(st.st_mtime)), compiler, " ".join(CFLAGS),
             STUB, CLIENT, (ROOT / "kmod" / "gup_test.h").read_bytes()]  # fmt: skip
    return cache.entry("compat32", cache.key(parts), _make)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    try:
        print(build())
    except Missing as e:
        sys.exit(f"compat32: {e}")
