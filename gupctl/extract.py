"""GUPCTL_EXTRACT: iov_iter_extract_pages() from userspace, through gupctl's kmod.

The kmod builds the iterator asked for, over this process's buffer (UBUF,
IOVEC) or over pages of its own (BVEC, KVEC, XARRAY), in either direction;
extracts every page of it with iov_iter_extract_pages(), as a driver doing
direct I/O does; sums the bytes it got and, for ITER_DEST, writes a fill byte
into each; then releases the pages as iov_iter_extract_will_pin() says.

What the kernel does is checked here against three oracles of its own: the
node's nr_foll_pin_* deltas (pins for user-backed iterators, none for the
rest), the checksum against this process's own sum of its buffer, and the
buffer read back after an ITER_DEST extraction.

iov_iter_extract_pages() came in v6.3 (David Howells, "iov_iter: Add a
function to extract a page list from an iterator").  The kmod probes for it
when it is built; built against an older kernel it answers EOPNOTSUPP.  The
in-kernel gup_test has no such command (EINVAL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gupctl import abi, vmstat
from gupctl._libc import ffi, lib
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

#: enum iter_type's names, as kmod/gupctl_extract.h numbers them.
ITER_TYPES = {"ubuf": 1, "iovec": 2, "bvec": 3, "kvec": 4, "xarray": 5}
#: Iterators over the caller's memory (user_backed_iter()); the others are
#: built over pages the kmod owns.
USER_BACKED = frozenset({"ubuf", "iovec"})
FLAG_DEST = 0x1
MAX_SEGS = 16


def merged(iter_type: str, dest: bool) -> str:
    """What iov_iter_extract_pages() does to the pages, as merged in v6.3:
    iov_iter_extract_will_pin() is user_backed_iter(), in both directions."""
    return "pin" if iter_type in USER_BACKED else "list"


def proposed(iter_type: str, dest: bool) -> str:
    """What the extraction helpers' first proposal (2022) described: a pin for
    user-backed ITER_DEST (READ), a ref ("get") for user-backed ITER_SOURCE
    (WRITE), and no retention for the rest.  It did not merge so."""
    if iter_type not in USER_BACKED:
        return "list"
    return "pin" if dest else "get"


@dataclass(frozen=True)
class ExtractSpec:
    """One extraction: `size` bytes from `offset` into a fresh buffer of `memory`
    (user-backed), or of the kmod's own pages; `nr_segs` for IOVEC."""

    iter_type: str = "ubuf"
    dest: bool = False
    size: int = 1 << 20
    offset: int = 0
    nr_segs: int = 4
    fill: int = 0xA5
    memory: MemorySpec = field(default_factory=MemorySpec)


@dataclass(frozen=True)
class ExtractResult:
    """What `gupctl extract` reports: the table and --json both come from this."""

    iter_type: str
    direction: str  # "dest" (ITER_DEST, a read into the pages) or "source"
    size: int
    extracted: int
    offset: int
    nr_pages: int
    nr_calls: int
    will_pin: bool
    retention: str  # "pin" or "list": what will_pin means
    merged: str  # the v6.3 table's answer
    proposed: str  # the 2022 proposal's answer
    nr_pinned: int  # pages folio_maybe_dma_pinned() called pinned while held
    nr_matched: int | None  # the kmod's own pages, in order (None: user-backed)
    checksum_ok: bool
    contents_ok: bool | None  # ITER_DEST on this process's buffer: the fill read back
    balance: vmstat.Balance

    def disagreements(self) -> list[str]:
        """The oracles that disagree with the kernel's answer: the pin deltas,
        the checksum, the contents read back, the kmod's own pages."""
        checks = (("pins", self.balance.exact), ("checksum", self.checksum_ok),
                  ("contents", self.contents_ok is not False),
                  ("pages", self.nr_matched in (None, self.nr_pages)))  # fmt: skip
        return [name for name, ok in checks if not ok]

    @property
    def ok(self) -> bool:
        """Every oracle agrees."""
        return not self.disagreements()


def issue(device: Device, arg) -> None:
    """GUPCTL_EXTRACT with `arg` (a struct gupctl_extract *), written back."""
    device.ioctl(abi.GUPCTL_EXTRACT, arg)


def _request(spec: ExtractSpec, addr: int):
    arg = abi.ffi.new("struct gupctl_extract *")
    arg.addr, arg.size = addr, spec.size
    arg.iter_type = ITER_TYPES[spec.iter_type]
    arg.flags = FLAG_DEST if spec.dest else 0
    arg.nr_segs = spec.nr_segs if spec.iter_type == "iovec" else 0
    arg.fill = spec.fill
    return arg


def _pattern(mapping: Mapping) -> None:
    """A byte per page that differs from the next page's, and 17 other bytes at
    the start: a wrong page or offset changes the sum."""
    for i in range(mapping.size // PAGE_SIZE):
        lib.memset(ffi.cast("void *", mapping.addr + i * PAGE_SIZE), 1 + i % 251, PAGE_SIZE)
    lib.memset(ffi.cast("void *", mapping.addr), 0x3C, 17)


def extract(device: Device, spec: ExtractSpec) -> ExtractResult:
    """Run one extraction and check it against the oracles."""
    user = spec.iter_type in USER_BACKED
    node = spec.memory.numa_node
    span = -(-(spec.offset + spec.size) // PAGE_SIZE) * PAGE_SIZE
    with Mapping(spec.memory, span) as mapping:
        _pattern(mapping)
        region = mapping.read(spec.offset, spec.size) if user else b""
        arg = _request(spec, mapping.addr + spec.offset if user else 0)
        before = vmstat.snapshot(node)
        issue(device, arg)
        after = vmstat.snapshot(node)
        done = int(arg.size)
        if user:
            checksum_ok = int(arg.checksum) == sum(region[:done])
            back = mapping.read(spec.offset, done)
            contents_ok = back == bytes([spec.fill]) * done if spec.dest else None
        else:
            checksum_ok, contents_ok = int(arg.checksum) == spec.fill * done, None
    nr_pages, will_pin = int(arg.nr_pages), bool(arg.will_pin)
    return ExtractResult(
        iter_type=spec.iter_type, direction="dest" if spec.dest else "source",
        size=spec.size, extracted=done, offset=int(arg.offset), nr_pages=nr_pages,
        nr_calls=int(arg.nr_calls), will_pin=will_pin, retention="pin" if will_pin else "list",
        merged=merged(spec.iter_type, spec.dest), proposed=proposed(spec.iter_type, spec.dest),
        nr_pinned=int(arg.nr_pinned), nr_matched=None if user else int(arg.nr_matched),
        checksum_ok=checksum_ok, contents_ok=contents_ok,
        balance=vmstat.Balance.between(before, after, nr_pages if will_pin else 0),
    )  # fmt: skip
