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
    " unsigned long long size, unsigned long long *get, unsigned long long *put);"
    "int gupctl_stats(const unsigned long long *values, long n, double *out);"
)
ffibuilder.set_source(
    "gupctl._loop",
    r"""
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "gup_test.h"

/*
 * Issue `repeats` ioctls of `cmd` on `arg` (a struct gup_test), resetting its
 * size each time; store repeat i's get and put µs at get[i] and put[i].
 * Returns the repeats completed: fewer on an error (errno set) or when the
 * kernel wrote back a smaller size (arg->size tells).
 */
long gupctl_repeat(int fd, unsigned long cmd, void *arg, long repeats,
                   unsigned long long size, unsigned long long *get,
                   unsigned long long *put)
{
    struct gup_test *gup = arg;
    long i;

    for (i = 0; i < repeats; i++) {
        gup->size = size;
        if (ioctl(fd, cmd, gup) < 0)
            break;
        get[i] = gup->get_delta_usec;
        put[i] = gup->put_delta_usec;
        if (gup->size != size)
            return i + 1;
    }
    return i;
}

static int cmp_ull(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a;
    unsigned long long y = *(const unsigned long long *)b;

    return (x > y) - (x < y);
}

/*
 * out[0..3] = min, median (the mean of the middle two for an even n, as
 * Python's statistics.median), max and mean of values[0..n-1], n > 0.
 * Sorts a copy: returns -1 (errno ENOMEM) if there is no room for it.
 */
int gupctl_stats(const unsigned long long *values, long n, double *out)
{
    unsigned long long *v = malloc(n * sizeof(*v));
    long double sum = 0;
    long i;

    if (!v)
        return -1;
    memcpy(v, values, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_ull);
    for (i = 0; i < n; i++)
        sum += v[i];
    out[0] = v[0];
    out[1] = n % 2 ? v[n / 2] : ((long double)v[n / 2 - 1] + v[n / 2]) / 2;
    out[2] = v[n - 1];
    out[3] = sum / n;
    free(v);
    return 0;
}
""",
    include_dirs=[str(Path(__file__).resolve().parents[1] / "kmod")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
