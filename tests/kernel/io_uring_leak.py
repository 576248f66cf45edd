"""A workload that leaks longterm pins on purpose: `python io_uring_leak.py PIDFILE PAGES`.

It registers a buffer of PAGES pages with an io_uring ring
(IORING_REGISTER_BUFFERS pins them FOLL_LONGTERM), forks a child that keeps
the ring's fd and sleeps, writes the child's pid to PIDFILE, and exits 0.
The ring, and so the pins, live as long as the child does.  Raw syscalls
(numbers that every architecture shares: gupctl/syscalls.py), so that it
needs neither liburing nor gupctl.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import sys

NR_IO_URING_SETUP, NR_IO_URING_REGISTER = 425, 427
IORING_REGISTER_BUFFERS = 0


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def main() -> None:
    pidfile, pages = sys.argv[1], int(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    ring = libc.syscall(NR_IO_URING_SETUP, 4, params)
    if ring < 0:
        sys.exit(f"io_uring_setup: {os.strerror(ctypes.get_errno())}")
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE)
    buf.write(b"\x5a" * len(buf))  # present, on the node the policy binds
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    iov = IoVec(addr, len(buf))
    if libc.syscall(NR_IO_URING_REGISTER, ring, IORING_REGISTER_BUFFERS, ctypes.byref(iov), 1):
        sys.exit(f"io_uring_register: {os.strerror(ctypes.get_errno())}")
    pid = os.fork()
    if pid == 0:
        os.setsid()  # out of the caller's session: it outlives the caller
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # nor does it hold the caller's pipes open
            os.dup2(null, fd)
        while True:
            signal.pause()
    with open(pidfile, "w") as f:
        f.write(str(pid))


if __name__ == "__main__":
    main()
