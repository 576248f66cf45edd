"""cffi builder of gupctl._loop: the benchmark's repeat loop in C.

Under emulation (and to a lesser degree natively) the Python statements around
each one-page ioctl cost several times the ioctl itself; this loop makes a run
of N repeats cost what N ioctls cost in C.  The struct comes from kmod's uapi
header, the C definition of the ABI.  Built by setup.py (cffi_modules); where
it is not built, gupctl.bench falls back to its Python loop.
"""

from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    "long gupctl_repeat(int fd, unsigned long cmd, void *arg, long repeats,"
    " unsigned long long size, unsigned long long *samples);"
)
ffibuilder.set_source(
    "gupctl._loop",
    r"""
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include "gup_test.h"

/*
 * Issue `repeats` ioctls of `cmd` on `arg` (a struct gup_test), resetting its
 * size each time; store get and put µs of repeat i at samples[2i], [2i+1].
 * Returns the repeats completed: fewer on an error (errno set) or when the
 * kernel wrote back a smaller size (arg->size tells).
 */
long gupctl_repeat(int fd, unsigned long cmd, void *arg, long repeats,
                   unsigned long long size, unsigned long long *samples)
{
    struct gup_test *gup = arg;
    long i;

    for (i = 0; i < repeats; i++) {
        gup->size = size;
        if (ioctl(fd, cmd, gup) < 0)
            break;
        samples[2 * i] = gup->get_delta_usec;
        samples[2 * i + 1] = gup->put_delta_usec;
        if (gup->size != size)
            return i + 1;
    }
    return i;
}
""",
    include_dirs=[str(Path(__file__).resolve().parents[1] / "kmod")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
