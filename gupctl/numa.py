"""NUMA: which nodes there are, which hold memory only, and binding memory to one.

A memory-only node (no CPUs) holds nothing the kernel or other processes
allocate by themselves, so its pin counters move only for memory bound there:
gupctl's exact pin balance (gupctl/balance.py) counts on one.  Binding is
mbind() for a mapping and set_mempolicy() for a whole task (page cache
included, which mbind() of a file mapping does not steer).
"""

from __future__ import annotations

import errno
import platform
import re
from pathlib import Path

from gupctl._libc import ffi, lib
from gupctl.errors import MappingError

NODE_ROOT = Path("/sys/devices/system/node")
MPOL_BIND = 2
# __NR_mbind, __NR_set_mempolicy: glibc has no wrappers (libnuma does);
# x86_64, aarch64/riscv (asm-generic), i386.
_NR_MBIND = {"x86_64": 237, "aarch64": 235, "riscv64": 235, "i686": 274, "i386": 274}
_NR_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237, "riscv64": 237, "i686": 276, "i386": 276}


def nodes() -> list[int]:
    """The NUMA nodes sysfs lists, in order."""
    found = (re.fullmatch(r"node(\d+)", p.name) for p in NODE_ROOT.glob("node*"))
    return sorted(int(m.group(1)) for m in found if m)


def node_has_cpus(node: int) -> bool:
    """Whether `node` has CPUs (a memory-only node has none)."""
    try:
        return bool((NODE_ROOT / f"node{node}" / "cpulist").read_text().strip())
    except OSError:
        return False


def memory_only_nodes() -> list[int]:
    """The nodes with memory and no CPUs, in order."""
    return [n for n in nodes() if not node_has_cpus(n)]


def node_mib(node: int) -> int | None:
    """MemTotal of `node` in MiB, None where sysfs does not say."""
    try:
        for line in (NODE_ROOT / f"node{node}" / "meminfo").read_text().splitlines():
            if "MemTotal:" in line:
                return int(line.split()[-2]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _nodemask(node: int) -> tuple[object, int]:
    maxnode = max(64, node + 1)
    mask = ffi.new("unsigned long[]", (maxnode + 63) // 64)
    mask[node // 64] = 1 << (node % 64)
    return mask, maxnode + 1  # the kernel takes one more than the bits it reads


def _syscall_nr(table: dict[str, int], what: str) -> int:
    nr = table.get(platform.machine())
    if nr is None:
        raise MappingError(f"{what} on {platform.machine()}", errno.ENOSYS)
    return nr


def bind_task(node: int) -> None:
    """set_mempolicy(MPOL_BIND, node): everything this task allocates from now on,
    page cache included (which mbind() of a file mapping does not steer)."""
    mask, maxnode = _nodemask(node)
    nr = _syscall_nr(_NR_SET_MEMPOLICY, "set_mempolicy")
    ret = lib.syscall(ffi.cast("long", nr), ffi.cast("long", MPOL_BIND), mask,
                      ffi.cast("unsigned long", maxnode))  # fmt: skip
    if ret < 0:
        raise MappingError(f"set_mempolicy to NUMA node {node}", ffi.errno)


def bind_range(addr: int, size: int, node: int) -> int:
    """mbind(MPOL_BIND, node) of [addr, addr + size): 0, or the errno."""
    mask, maxnode = _nodemask(node)
    nr = _syscall_nr(_NR_MBIND, "mbind")
    ret = lib.syscall(ffi.cast("long", nr), ffi.cast("unsigned long", addr),
                      ffi.cast("unsigned long", size), ffi.cast("long", MPOL_BIND), mask,
                      ffi.cast("unsigned long", maxnode), ffi.cast("long", 0))  # fmt: skip
    return int(ffi.errno) if ret < 0 else 0
