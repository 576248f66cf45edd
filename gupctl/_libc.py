"""The few libc calls gupctl makes, through cffi's ABI mode.

cffi releases the GIL for the duration of every call it makes into C, so
ioctls issued from several Python threads run in parallel in the kernel,
as the C selftest's -j threads do.
"""

from __future__ import annotations

from gupctl._cdefs import ffi

lib = ffi.dlopen(None)

MAP_FAILED = ffi.cast("void *", -1)
