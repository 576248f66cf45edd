"""The C declarations of gupctl's cffi FFI, in one place, and the FFI itself.

Parsing C declarations (cffi's pycparser) costs about a second of start-up
in a TCG guest, on every command.  So setup.py parses them once, when gupctl
is built, into gupctl/_ffi.py (cffi's out-of-line ABI mode: no compiler), and
`ffi` is loaded from there.  Where that file is missing, or was built from
other declarations than these (its CDEF_ID is another text's), they are
parsed here at import, as before.  Imports nothing of gupctl: setup.py loads
this file alone, before the package's dependencies exist.
"""

from __future__ import annotations

import zlib
from typing import Any

#: The ioctl ABI's structs (gupctl/abi.py): mm/gup_test.h, and the kmod's
#: kmod/gupctl_extract.h and kmod/gupctl_pages.h.
ABI = """
struct gup_test {
    uint64_t get_delta_usec;
    uint64_t put_delta_usec;
    uint64_t addr;
    uint64_t size;
    uint32_t nr_pages_per_call;
    uint32_t gup_flags;
    uint32_t test_flags;
    uint32_t which_pages[8];
};

struct pin_longterm_test {
    uint64_t addr;
    uint64_t size;
    uint32_t flags;
};

struct gupctl_extract {
    uint64_t addr;
    uint64_t size;
    uint64_t offset;
    uint64_t checksum;
    uint32_t iter_type;
    uint32_t flags;
    uint32_t nr_segs;
    uint32_t fill;
    uint32_t will_pin;
    uint32_t nr_pages;
    uint32_t nr_calls;
    uint32_t nr_pinned;
    uint32_t nr_matched;
    uint32_t reserved;
};

struct gupctl_page {
    uint64_t pfn;
    uint32_t flags;
    uint32_t order;
    int32_t refcount;
    int32_t pincount;
    uint32_t node;
    uint32_t reserved;
    char zone[8];
};

struct gupctl_pages {
    uint64_t pages;
    uint32_t nr;
    uint32_t reserved;
};
"""

#: The libc calls gupctl makes (gupctl/_libc.py).
LIBC = """
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int madvise(void *addr, size_t length, int advice);
int mprotect(void *addr, size_t length, int prot);
void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);
long syscall(long number, ...);
void *memset(void *s, int c, size_t n);
int memcmp(const void *s1, const void *s2, size_t n);
int usleep(unsigned int usec);
struct iovec { void *iov_base; size_t iov_len; };
ssize_t vmsplice(int fd, const struct iovec *iov, unsigned long nr_segs, unsigned int flags);
"""

#: io_uring's uapi (include/uapi/linux/io_uring.h) as gupctl/io_uring.py uses
#: it: the SQE's unions flattened to the members a fixed-buffer write sets.
#: tests/facts/test_io_uring_layout.py checks every offset against the header.
IO_URING = """
struct io_sqring_offsets {
    uint32_t head; uint32_t tail; uint32_t ring_mask; uint32_t ring_entries;
    uint32_t flags; uint32_t dropped; uint32_t array; uint32_t resv1; uint64_t user_addr;
};
struct io_cqring_offsets {
    uint32_t head; uint32_t tail; uint32_t ring_mask; uint32_t ring_entries;
    uint32_t overflow; uint32_t cqes; uint32_t flags; uint32_t resv1; uint64_t user_addr;
};
struct io_uring_params {
    uint32_t sq_entries; uint32_t cq_entries; uint32_t flags; uint32_t sq_thread_cpu;
    uint32_t sq_thread_idle; uint32_t features; uint32_t wq_fd; uint32_t resv[3];
    struct io_sqring_offsets sq_off;
    struct io_cqring_offsets cq_off;
};
struct io_uring_sqe {
    uint8_t opcode; uint8_t flags; uint16_t ioprio; int32_t fd;
    uint64_t off; uint64_t addr; uint32_t len; uint32_t rw_flags; uint64_t user_data;
    uint16_t buf_index; uint16_t personality; int32_t splice_fd_in;
    uint64_t addr3; uint64_t __pad2;
};
struct io_uring_cqe {
    uint64_t user_data; int32_t res; uint32_t flags;
};
"""

CDEF = ABI + LIBC + IO_URING
#: Which declarations a built gupctl/_ffi.py holds.
CDEF_ID = zlib.crc32(CDEF.encode())


def _load() -> Any:
    try:
        from gupctl import _ffi  # type: ignore[attr-defined]

        if getattr(_ffi, "CDEF_ID", None) == CDEF_ID:
            return _ffi.ffi
    except Exception:  # missing, or from a cffi this backend refuses: parse instead
        pass
    import cffi

    parsed = cffi.FFI()
    parsed.cdef(CDEF)
    return parsed


def emit(path: str) -> None:
    """Write the parsed declarations to `path`, a module gupctl._ffi (setup.py)."""
    import cffi

    builder = cffi.FFI()
    builder.set_source("gupctl._ffi", None)
    builder.cdef(CDEF)
    builder.emit_python_code(path)
    with open(path, "a") as f:
        f.write(f"\nCDEF_ID = {CDEF_ID}\n")


ffi = _load()
