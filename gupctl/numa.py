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
from gupctl.syscalls import NUMBERS

NODE_ROOT = Path("/sys/devices/system/node")
MPOL_BIND = 2


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


def _syscall_nr(name: str) -> int:
    """mbind and set_mempolicy: glibc has no wrappers (libnuma does)."""
    nr = NUMBERS[name].get(platform.machine())
    if nr is None:
        raise MappingError(f"{name} on {platform.machine()}", errno.ENOSYS)
    return nr


def bind_task(node: int) -> None:
    """set_mempolicy(MPOL_BIND, node): everything this task allocates from now on,
    page cache included (which mbind() of a file mapping does not steer)."""
    mask, maxnode = _nodemask(node)
    nr = _syscall_nr("set_mempolicy")
    ret = lib.syscall(ffi.cast("long", nr), ffi.cast("long", MPOL_BIND), mask,
                      ffi.cast("unsigned long", maxnode))  # fmt: skip
    if ret < 0:
        raise MappingError(f"set_mempolicy to NUMA node {node}", ffi.errno)


def bind_range(addr: int, size: int, node: int) -> int:
    """mbind(MPOL_BIND, node) of [addr, addr + size): 0, or the errno."""
    mask, maxnode = _nodemask(node)
    nr = _syscall_nr("mbind")
    ret = lib.syscall(ffi.cast("long", nr), ffi.cast("unsigned long", addr),
                      ffi.cast("unsigned long", size), ffi.cast("long", MPOL_BIND), mask,
                      ffi.cast("unsigned long", maxnode), ffi.cast("long", 0))  # fmt: skip
    return int(ffi.errno) if ret < 0 else 0
