"""System call numbers glibc has no wrapper for, per machine (uname -m).

Each architecture numbers its system calls in its own table: x86_64's
arch/x86/entry/syscalls/syscall_64.tbl, powerpc's and s390's
arch/*/kernel/syscalls/syscall.tbl, and arm64's the generic one
(include/uapi/asm-generic/unistd.h; scripts/syscall.tbl from v6.11).
tests/facts/test_syscalls.py checks every number here against those tables
in Debian's linux-source.
"""

from __future__ import annotations

import platform

from gupctl.errors import GupctlError

#: name -> machine -> number.
NUMBERS: dict[str, dict[str, int]] = {
    # riscv64 shares arm64's generic table; i686 is x86's syscall_32.tbl.
    "mbind": {
        "x86_64": 237,
        "aarch64": 235,
        "ppc64le": 259,
        "s390x": 268,
        "riscv64": 235,
        "i686": 274,
    },
    "set_mempolicy": {
        "x86_64": 238,
        "aarch64": 237,
        "ppc64le": 261,
        "s390x": 270,
        "riscv64": 237,
        "i686": 276,
    },
    "userfaultfd": {"x86_64": 323, "aarch64": 282, "ppc64le": 364, "s390x": 355},
    "init_module": {"x86_64": 175, "aarch64": 105, "ppc64le": 128, "s390x": 128},
    "delete_module": {"x86_64": 176, "aarch64": 106, "ppc64le": 129, "s390x": 129},
    "finit_module": {"x86_64": 313, "aarch64": 273, "ppc64le": 353, "s390x": 344},
    # Since v5.1 (and 6.11's common table) new system calls take one number
    # on every architecture.
    "io_uring_setup": {"x86_64": 425, "aarch64": 425, "ppc64le": 425, "s390x": 425},
    "io_uring_enter": {"x86_64": 426, "aarch64": 426, "ppc64le": 426, "s390x": 426},
    "io_uring_register": {"x86_64": 427, "aarch64": 427, "ppc64le": 427, "s390x": 427},
}


def number(name: str, machine: str | None = None) -> int:
    """`name`'s number on `machine` (None: this one); GupctlError where
    gupctl does not know it."""
    machine = machine or platform.machine()
    try:
        return NUMBERS[name][machine]
    except KeyError:
        raise GupctlError(f"gupctl does not know the number of {name}() on {machine}") from None
