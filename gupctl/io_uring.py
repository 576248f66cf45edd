"""io_uring, as far as its fixed buffers go: a ring of one entry, buffers
registered with IORING_REGISTER_BUFFERS (which pins them FOLL_WRITE |
FOLL_PIN | FOLL_LONGTERM: io_uring/rsrc.c), and IORING_OP_WRITE_FIXED,
which writes a file from a registered buffer through its pins.

Raw system calls, so that no liburing is needed (their numbers: gupctl/
syscalls.py).  The structures are io_uring.h's
(gupctl/_cdefs.py), checked against the header by tests/facts.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.errors import IoUringError
from gupctl.syscalls import number

IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES = 0, 0x8000000, 0x10000000
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_ENTER_GETEVENTS = 1 << 0
IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS = 0, 1
IORING_OP_WRITE_FIXED = 5


class Ring:
    """An io_uring instance with one submission entry; a context manager that
    unmaps and closes it (which drops any buffers still registered)."""

    def __init__(self) -> None:
        params = ffi.new("struct io_uring_params *")
        self.fd = _syscall("io_uring_setup", ffi.cast("unsigned", 1), params)
        self._maps: list[tuple[Any, int]] = []
        try:
            self._map_rings(params)
        except BaseException:
            self.close()
            raise

    def _map_rings(self, p: Any) -> None:
        sq_size = p.sq_off.array + p.sq_entries * 4
        cq_size = p.cq_off.cqes + p.cq_entries * ffi.sizeof("struct io_uring_cqe")
        if p.features & IORING_FEAT_SINGLE_MMAP:  # since v5.4: one mapping for both rings
            sq = cq = self._map(max(sq_size, cq_size), IORING_OFF_SQ_RING)
        else:
            sq, cq = self._map(sq_size, IORING_OFF_SQ_RING), self._map(cq_size, IORING_OFF_CQ_RING)
        sqes = self._map(p.sq_entries * ffi.sizeof("struct io_uring_sqe"), IORING_OFF_SQES)
        self._sq_tail = ffi.cast("uint32_t *", sq + p.sq_off.tail)
        self._sq_mask = ffi.cast("uint32_t *", sq + p.sq_off.ring_mask)[0]
        self._sq_array = ffi.cast("uint32_t *", sq + p.sq_off.array)
        self._sqes = ffi.cast("struct io_uring_sqe *", sqes)
        self._cq_head = ffi.cast("uint32_t *", cq + p.cq_off.head)
        self._cq_mask = ffi.cast("uint32_t *", cq + p.cq_off.ring_mask)[0]
        self._cqes = ffi.cast("struct io_uring_cqe *", cq + p.cq_off.cqes)

    def _map(self, size: int, offset: int) -> Any:
        ptr = lib.mmap(ffi.NULL, size, mmap.PROT_READ | mmap.PROT_WRITE,
                       mmap.MAP_SHARED | mmap.MAP_POPULATE, self.fd, offset)  # fmt: skip
        if ptr == MAP_FAILED:
            raise IoUringError("mmap of an io_uring ring", ffi.errno)
        self._maps.append((ptr, size))
        return ffi.cast("char *", ptr)

    def register_buffer(self, addr: int, size: int) -> None:
        """IORING_REGISTER_BUFFERS of one buffer: pins it, long-term and writable."""
        iov = ffi.new("struct iovec *", {"iov_base": ffi.cast("void *", addr), "iov_len": size})
        self._register(IORING_REGISTER_BUFFERS, iov, 1)

    def unregister_buffers(self) -> None:
        """IORING_UNREGISTER_BUFFERS: the buffers' pins are dropped."""
        self._register(IORING_UNREGISTER_BUFFERS, ffi.NULL, 0)

    def _register(self, opcode: int, arg: Any, n: int) -> None:
        _syscall("io_uring_register", ffi.cast("int", self.fd),
                 ffi.cast("unsigned", opcode), arg, ffi.cast("unsigned", n))  # fmt: skip

    def write_fixed(self, fd: int, addr: int, size: int, offset: int = 0) -> int:
        """IORING_OP_WRITE_FIXED from registered buffer 0: the CQE's result
        (bytes written, or -errno), waited for."""
        tail = self._sq_tail[0]
        index = tail & self._sq_mask
        sqe = self._sqes[index]
        ffi.memmove(ffi.addressof(sqe), bytes(ffi.sizeof(sqe)), ffi.sizeof(sqe))
        sqe.opcode, sqe.fd, sqe.buf_index = IORING_OP_WRITE_FIXED, fd, 0
        sqe.off, sqe.addr, sqe.len = offset, addr, size
        self._sq_array[index] = index
        self._sq_tail[0] = tail + 1  # the io_uring_enter() below is the barrier
        _syscall("io_uring_enter", ffi.cast("int", self.fd),
                 ffi.cast("unsigned", 1), ffi.cast("unsigned", 1),
                 ffi.cast("unsigned", IORING_ENTER_GETEVENTS), ffi.NULL,
                 ffi.cast("size_t", 0))  # fmt: skip
        head = self._cq_head[0]
        res = int(self._cqes[head & self._cq_mask].res)
        self._cq_head[0] = head + 1
        return res

    def close(self) -> None:
        for ptr, size in self._maps:
            lib.munmap(ptr, size)
        self._maps = []
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _syscall(name: str, *args: Any) -> int:
    ret = int(lib.syscall(number(name), *args))
    if ret < 0:
        raise IoUringError(name, ffi.errno)
    return ret
