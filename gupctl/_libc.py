"""The few libc calls gupctl makes, through cffi's ABI mode.

cffi releases the GIL for the duration of every call it makes into C, so
ioctls issued from several Python threads run in parallel in the kernel,
as the C selftest's -j threads do.
"""

from __future__ import annotations

import cffi

ffi = cffi.FFI()
ffi.cdef(
    """
    int ioctl(int fd, unsigned long request, ...);
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
    int munmap(void *addr, size_t length);
    int madvise(void *addr, size_t length, int advice);
    int mprotect(void *addr, size_t length, int prot);
    long syscall(long number, ...);
    void *memset(void *s, int c, size_t n);
    int usleep(unsigned int usec);
    struct iovec { void *iov_base; size_t iov_len; };
    ssize_t vmsplice(int fd, const struct iovec *iov, unsigned long nr_segs, unsigned int flags);
    """
)
lib = ffi.dlopen(None)

MAP_FAILED = ffi.cast("void *", -1)
