"""Timing samples kept in a buffer, not in Python objects.

A benchmark of a million one-page ioctls gives two million samples.  Device.
repeat has the C loop (gupctl._loop) write them straight into two arrays of
unsigned 64-bit integers, and the statistics come from those arrays in C: no
Python object is made per sample on the path of a repeat, nor to summarise
it.  Where the extension was not built, the same functions run in Python.
"""

from __future__ import annotations

import array
from collections.abc import Iterable
from typing import Any

try:  # the C loop and statistics, built by setup.py (cffi_modules); optional
    from gupctl import _loop as native  # type: ignore[attr-defined]
except ImportError:
    native = None

#: The array type code of a sample: unsigned 64 bits, as the kernel's __u64.
TYPECODE = "Q"
Samples = array.array


def new(n: int = 0) -> Samples:
    """`n` zeroed samples (a buffer the C loop fills)."""
    return array.array(TYPECODE, bytes(8 * n))


def of(values: Iterable[int]) -> Samples:
    """Samples from integers (a saved file's list); OverflowError or TypeError
    for anything that is not an integer from 0 to 2**64 - 1."""
    return array.array(TYPECODE, values)


def pointer(buf: Samples, offset: int = 0) -> Any:
    """A C pointer to `buf[offset]`, for `native` (which must exist).
    Valid only until `buf` is resized."""
    return native.ffi.cast("unsigned long long *", native.ffi.from_buffer(buf)) + offset


def summary(values: Samples | Iterable[int]) -> tuple[float, float, float, float]:
    """(min, median, max, mean) of non-empty `values`; the median of an even
    count is the mean of the middle two, as statistics.median has it."""
    if not isinstance(values, array.array) or values.typecode != TYPECODE:
        values = of(values)
    if not values:
        raise ValueError("no samples")
    if native is None:
        import statistics  # here: it imports fractions, decimal and random

        return (float(min(values)), float(statistics.median(values)), float(max(values)),
                statistics.fmean(values))  # fmt: skip
    out = native.ffi.new("double[4]")
    if native.lib.gupctl_stats(pointer(values), len(values), out) < 0:
        raise MemoryError("sorting a copy of the samples")
    return out[0], out[1], out[2], out[3]
