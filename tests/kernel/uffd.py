"""A userfaultfd that holds faults for as long as a test wants: the stall a
FUSE daemon that never answers gives, without FUSE.

GUP that reaches a missing page in a range registered in MISSING mode
sleeps in handle_userfault() until the page is served (or the uffd is
closed), with every page it took before that still held.  The layouts are
include/uapi/linux/userfaultfd.h's, the same on every 64-bit architecture.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import struct
from pathlib import Path

from gupctl.syscalls import number

UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F  # _IOWR(0xAA, 0x3F, struct uffdio_api): 3 x u64
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register): 4 x u64
UFFDIO_ZEROPAGE = 0xC020AA04  # _IOWR(0xAA, 0x04, struct uffdio_zeropage): 4 x u64
UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_EVENT_PAGEFAULT = 0x12
MSG_SIZE = 32  # struct uffd_msg
#: Without it (0, Debian's default), a user without CAP_SYS_PTRACE gets a uffd
#: that handles user-mode faults only, and GUP's faults are kernel-mode.
SYSCTL = Path("/proc/sys/vm/unprivileged_userfaultfd")


class Userfaultfd:
    """A userfaultfd (O_CLOEXEC|O_NONBLOCK) in MISSING mode over ranges given to register()."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.syscall(number("userfaultfd"), os.O_CLOEXEC | os.O_NONBLOCK)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"userfaultfd(): {os.strerror(err)} (is {SYSCTL} 1?)")
        self.fd = fd
        api = bytearray(struct.pack("QQQ", UFFD_API, 0, 0))
        fcntl.ioctl(self.fd, UFFDIO_API, api)

    def register(self, addr: int, size: int) -> None:
        """Faults on missing pages of [addr, addr+size) wait for this uffd."""
        fcntl.ioctl(
            self.fd,
            UFFDIO_REGISTER,
            bytearray(struct.pack("QQQQ", addr, size, UFFDIO_REGISTER_MODE_MISSING, 0)),
        )

    def fault(self, timeout: float) -> int | None:
        """The address of the next fault waiting on this uffd, or None after `timeout` s."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return None
        msg = os.read(self.fd, MSG_SIZE)
        (event,) = struct.unpack_from("B", msg, 0)
        assert event == UFFD_EVENT_PAGEFAULT, f"uffd event {event:#x}, not a page fault"
        return struct.unpack_from("Q", msg, 16)[0]  # arg.pagefault.address

    def serve(self, addr: int, size: int) -> None:
        """Map the zero page over [addr, addr+size) and wake whoever waits there."""
        try:
            fcntl.ioctl(self.fd, UFFDIO_ZEROPAGE, bytearray(struct.pack("QQQq", addr, size, 0, 0)))
        except OSError as e:
            if e.errno != errno.EEXIST:  # served already: the waiter is woken anyway
                raise

    def close(self) -> None:
        """Closing wakes every waiter: their faults fail."""
        os.close(self.fd)

    def __enter__(self) -> Userfaultfd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
