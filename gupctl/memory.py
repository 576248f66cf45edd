"""The memory gup_test pins: the mappings tools/testing/selftests/mm/gup_test.c offers.

Anonymous private (the default) or shared, file-backed, hugetlb; THP on or off
through madvise; optionally bound to one NUMA node; prefaulted from userspace
by default, as the selftest does (a write fault per page), so that GUP finds
present pages.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from gupctl import numa, thp
from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.errors import MappingError

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# <asm-generic/mman.h>; the architectures gupctl runs on share it.
MAP_HUGETLB = 0x40000
# MAP_HUGE_* / MFD_HUGE_*: log2 of the huge page size in bits 26-31.
MAP_HUGE_SHIFT = 26
# <asm-generic/mman-common.h>, v5.14 (the same number on every architecture).
MADV_POPULATE_WRITE = 23


@dataclass(frozen=True)
class MemorySpec:
    """What memory to map; the CLI's --shared/--file/--hugetlb/--thp/... options."""

    shared: bool = False
    file: str | None = None
    create: bool = False
    memfd: bool = False  # memfd_create(): tmpfs, or hugetlbfs with hugetlb
    hugetlb: bool = False
    hugetlb_size: int | None = None  # bytes; None: the default huge page size
    thp: bool | None = None  # None: leave the system's THP policy alone
    thp_size: int | None = None  # bytes: THP of this size alone (thp.only()); implies thp
    prefault: bool = True
    numa_node: int | None = None

    def describe(self) -> str:
        """A short name of the backing, e.g. 'anon-private', 'file-shared', 'hugetlb-private',
        'anon-private+nothp' (--no-thp), 'anon-private+thp64KiB' (--thp-size 64K)."""
        kind = "memfd" if self.memfd else ("file" if self.file else "anon")
        if self.hugetlb:
            kind = "hugetlb" if kind == "anon" else f"{kind}-hugetlb"
        sharing = "shared" if self.shared else "private"
        thp = {None: "", True: "+thp", False: "+nothp"}[self.thp]
        if self.thp_size:
            thp = f"+thp{size_label(self.thp_size).replace(' ', '')}"
        return f"{kind}-{sharing}{thp}"


def hugetlb_page_size() -> int:
    """The default huge page size from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1]) * 1024
    raise MappingError("this kernel has no hugetlb support", errno.ENOSYS, "hugetlb")


def size_label(size: int) -> str:
    """`size` bytes as tables and labels show it: '4 KiB', '2 MiB', '1.5 GiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.4g} {unit}"
    return f"{size} B"


def anon_huge_bytes(addr: int) -> int:
    """AnonHugePages of the mapping that holds `addr`, in bytes: how much of it
    THP backs (/proc/self/smaps, as cow.c's check_huge_anon() reads it)."""
    with open("/proc/self/smaps") as f:
        text = f.read()
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        start, end = (int(x, 16) for x in block.split(" ", 1)[0].split("-"))
        if start <= addr < end:
            fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", block, re.MULTILINE))
            return int(fields.get("AnonHugePages", 0)) * 1024
    raise MappingError(f"no mapping at {addr:#x} in /proc/self/smaps", errno.EFAULT, "smaps")


def hugetlb_sizes() -> list[int]:
    """The huge page sizes this kernel offers (bytes), from /sys/kernel/mm/hugepages."""
    root = Path("/sys/kernel/mm/hugepages")
    sizes = []
    for d in root.glob("hugepages-*kB"):
        sizes.append(int(d.name.removeprefix("hugepages-").removesuffix("kB")) * 1024)
    return sorted(sizes)


def _huge_shift(size: int | None) -> int:
    """The MAP_HUGE_*/MFD_HUGE_* value for `size`; 0 selects the default size."""
    return size.bit_length() - 1 if size else 0


class Mapping:
    """A live mapping of `size` bytes at `addr`; close() undoes everything it did."""

    def __init__(self, spec: MemorySpec, size: int) -> None:
        self.spec = spec
        self.size = size
        self.addr = 0
        self._base = self._map_len = 0
        self._fd = -1
        self._created: str | None = None
        self._policy = contextlib.ExitStack()
        try:
            if spec.thp_size:  # before the faults, and until the unmap (GUP may fault)
                self._policy.enter_context(thp.only(spec.thp_size))
            self._map()
        except BaseException:
            self.close()
            raise

    def _map(self) -> None:
        spec, size = self.spec, self.size
        unit = (spec.hugetlb_size or hugetlb_page_size()) if spec.hugetlb else PAGE_SIZE
        if size <= 0 or size % unit:
            raise MappingError(
                f"size {size} is not a positive multiple of {unit}", errno.EINVAL, spec.describe()
            )
        flags = mmap.MAP_SHARED if spec.shared else mmap.MAP_PRIVATE
        if spec.memfd:
            self._fd = self._memfd(size, unit)
        elif spec.file:
            self._fd = self._open_file(spec.file, size)
        else:
            flags |= mmap.MAP_ANONYMOUS
            if spec.hugetlb:
                flags |= MAP_HUGETLB | _huge_shift(spec.hugetlb_size) << MAP_HUGE_SHIFT
        # THP needs PMD-aligned memory: map one PMD more and trim.
        # Not for a memfd: the pad would map past the end of its file (SIGBUS),
        # and shmem aligns its own mappings (shmem_get_unmapped_area()).
        align = thp.pmd_size() if spec.thp and not spec.file and not spec.memfd else 0
        length = size + align
        addr = lib.mmap(ffi.NULL, length, mmap.PROT_READ | mmap.PROT_WRITE, flags, self._fd, 0)
        if addr == MAP_FAILED:
            raise MappingError(f"mmap of {size} bytes", ffi.errno, spec.describe())
        base = int(ffi.cast("uintptr_t", addr))
        # Both at once: a signal (an exception, see gupctl/cli/signals.py) between
        # two statements would leave close() a length without its address.
        self._base, self._map_len = base, length
        self.addr = base
        if align:
            self.addr = (self._base + align - 1) & ~(align - 1)
        if spec.thp is not None:
            advice = mmap.MADV_HUGEPAGE if spec.thp else mmap.MADV_NOHUGEPAGE
            self._call(lib.madvise(self._ptr(), size, advice), "madvise")
        if spec.numa_node is not None:
            self._bind(spec.numa_node)
        if spec.prefault:
            self._prefault()

    def _prefault(self) -> None:
        """Fault every page in writable, as the selftest's loop does with a
        write of one byte per page.  MADV_POPULATE_WRITE takes the same write
        faults in one call; under emulation a loop, or memset over the whole
        range, costs as much again as the faults (about 0.3 s for 128 MiB).
        Kernels before v5.14 (4ca9b3859dac) answer EINVAL: memset there."""
        if lib.madvise(self._ptr(), self.size, MADV_POPULATE_WRITE) == 0:
            return
        err = ffi.errno
        if err != errno.EINVAL:  # EFAULT: a fault failed (no huge page free on the node)
            raise MappingError("prefault (MADV_POPULATE_WRITE)", err, self.spec.describe())
        lib.memset(self._ptr(), 0, self.size)

    def _open_file(self, path: str, size: int) -> int:
        flags = os.O_RDWR | os.O_CLOEXEC
        if self.spec.create:
            flags |= os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as e:
            raise MappingError(f"cannot open {path}", e.errno, self.spec.describe()) from None
        if self.spec.create:
            self._created = path
            os.ftruncate(fd, size)
        elif stat.S_ISREG((st := os.fstat(fd)).st_mode) and st.st_size < size:
            os.close(fd)
            # Touching a page past EOF would be SIGBUS, not an error message.
            raise MappingError(
                f"{path} is smaller than {size} bytes", errno.EFBIG, self.spec.describe()
            )
        return fd

    def _memfd(self, size: int, unit: int) -> int:
        flags = os.MFD_CLOEXEC
        if self.spec.hugetlb:
            flags |= os.MFD_HUGETLB | _huge_shift(self.spec.hugetlb_size) << MAP_HUGE_SHIFT
        try:
            fd = os.memfd_create("gupctl", flags)
        except OSError as e:
            raise MappingError("memfd_create", e.errno, self.spec.describe()) from None
        try:
            os.ftruncate(fd, size)
        except OSError as e:
            os.close(fd)
            raise MappingError(f"ftruncate of a memfd to {size}", e.errno,
                               self.spec.describe()) from None  # fmt: skip
        return fd

    def protect_readonly(self) -> None:
        """mprotect(PROT_READ): gup_longterm.c maps R/O before R/O pins."""
        self.protect(mmap.PROT_READ)

    def protect(self, prot: int) -> None:
        """mprotect() the whole mapping to `prot` (mmap.PROT_* bits)."""
        self._call(lib.mprotect(self._ptr(), self.size, prot), "mprotect")

    def _bind(self, node: int) -> None:
        err = numa.bind_range(self.addr, self.size, node)
        if err:
            raise MappingError(f"mbind to NUMA node {node}", err, self.spec.describe())

    def _ptr(self) -> object:
        return ffi.cast("void *", self.addr)

    def _call(self, ret: int, what: str) -> None:
        if ret < 0:
            raise MappingError(what, ffi.errno, self.spec.describe())

    def fill(self, byte: int) -> None:
        """Write `byte` to every byte of the mapping, from userspace."""
        lib.memset(self._ptr(), byte, self.size)

    def read(self, offset: int, length: int) -> bytes:
        """Copy `length` bytes at `offset` out of the mapping."""
        return bytes(ffi.buffer(ffi.cast("char *", self.addr + offset), length))

    def close(self) -> None:
        """Unmap, close the file, and remove it if gupctl created it."""
        if self._map_len:
            lib.munmap(ffi.cast("void *", self._base), self._map_len)
            self._map_len = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._created:
            Path(self._created).unlink(missing_ok=True)
            self._created = None
        self._policy.close()

    def __enter__(self) -> Mapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
