"""Which pages of a process are pinned, and by how much: GUPCTL_PAGES.

For each page of a range (or of every VMA of a process), /proc/PID/pagemap
gives the frame; gupctl's kmod (kmod/gupctl_pages.h) says what the kernel
keeps about it: the folio's order, folio_maybe_dma_pinned(), its _pincount
where it keeps one (large folios), its refcount, node and zone; and
/proc/kpagecount its mapcount.  None of these reads takes a reference, faults
a page in or locks anything, so the query moves no count it reports.  All of
them need CAP_SYS_ADMIN.

A small folio keeps no pincount: each pin adds GUP_PIN_COUNTING_BIAS to its
refcount (Documentation/core-api/pin_user_pages.rst), so its pins are
refcount // GUP_PIN_COUNTING_BIAS, which is exact while it holds fewer than
that many other references.  The report is a snapshot: the process runs on,
and a page may move between the pagemap read and the kmod's look.
"""

from __future__ import annotations

import dataclasses
import errno
import re
from dataclasses import dataclass, field
from pathlib import Path

from gupctl import abi, pagemap
from gupctl.device import Device
from gupctl.errors import DeviceError, GupctlError
from gupctl.memory import PAGE_SIZE

#: include/linux/mm.h: the references one pin of a small folio takes.
GUP_PIN_COUNTING_BIAS = 1024
#: kmod/gupctl_pages.h
FLAG_ONLINE, FLAG_PINNED, FLAG_UNSTABLE = 0x1, 0x2, 0x4
PAGES_MAX = 65536
#: pagemap entries read at a time (a VMA may be huge and sparse).
_CHUNK = 1 << 16
_MAPS = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


@dataclass(frozen=True)
class Page:
    """One present page: its frame and what the kernel keeps about its folio."""

    addr: int
    pfn: int
    zone: str
    node: int
    order: int  # the folio's
    pinned: bool  # folio_maybe_dma_pinned()
    pincount: int | None  # the folio's _pincount; None: it keeps none (small folio)
    refcount: int  # the folio's
    mapcount: int  # /proc/kpagecount: this page's

    @property
    def folio(self) -> int:
        """The folio's first frame: folios are naturally aligned."""
        return self.pfn & ~((1 << self.order) - 1)

    @property
    def folio_pins(self) -> int:
        """Pins on the whole folio: _pincount, or the small folio's refcount
        in units of GUP_PIN_COUNTING_BIAS."""
        if self.pincount is not None:
            return self.pincount
        return max(self.refcount, 0) // GUP_PIN_COUNTING_BIAS


@dataclass
class Vma:
    """One VMA of /proc/PID/maps (the part of it asked about), summarised."""

    start: int
    end: int
    perms: str
    name: str
    pages: int = 0  # in the part asked about
    present: int = 0
    pinned: int = 0  # present pages whose folio folio_maybe_dma_pinned() calls pinned
    pins: int = 0  # pins on the folios first seen in this VMA


@dataclass
class PinsReport:
    """What `gupctl pins` reports: its table and --json both come from this."""

    pid: int
    comm: str
    start: int | None  # the range asked about; None: every VMA
    end: int | None
    pinned: int = 0  # present pages whose folio is pinned
    pins: int = 0  # pins on every folio met, each folio counted once
    vmas: list[Vma] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)  # present pages (with_pages), in order


def maps(pid: int) -> list[Vma]:
    """The VMAs of `pid`, from /proc/PID/maps."""
    path = Path(f"/proc/{pid}/maps")
    try:
        text = path.read_text()
    except OSError as e:
        raise GupctlError(f"cannot read {path}", e.errno) from None
    out = []
    for line in text.splitlines():
        m = _MAPS.match(line)
        if m:
            out.append(Vma(int(m[1], 16), int(m[2], 16), m[3], m[4]))
    return out


def query(device: Device, pid: int, start: int | None = None, end: int | None = None,
          with_pages: bool = True) -> PinsReport:  # fmt: skip
    """Every page of `pid` in [start, end) (page-aligned; None: all its VMAs),
    summarised by VMA, and each present page too `with_pages`."""
    report = PinsReport(pid, _comm(pid), start, end)
    present: list[tuple[Vma, int, int]] = []  # (vma, addr, pfn)
    for vma in maps(pid):
        lo, hi = max(vma.start, start or 0), min(vma.end, end or vma.end)
        if lo >= hi:
            continue
        vma.start, vma.end = lo, hi
        vma.pages = (hi - lo) // PAGE_SIZE
        report.vmas.append(vma)
        for first in range(lo, hi, _CHUNK * PAGE_SIZE):
            n = min(_CHUNK, (hi - first) // PAGE_SIZE)
            for i, (on, pfn) in enumerate(pagemap.pagemap(first, n, pid)):
                if on:
                    present.append((vma, first + i * PAGE_SIZE, pfn))
    records = inspect(device, [pfn for _, _, pfn in present])
    mapcounts = pagemap.kpagecount(sorted({pfn for _, _, pfn in present}))
    seen: set[int] = set()
    for (vma, addr, pfn), rec in zip(present, records):
        if rec.flags & FLAG_UNSTABLE or not rec.flags & FLAG_ONLINE or not rec.refcount:
            continue  # device memory, or split or freed meanwhile: no page of the process now
        page = _page(addr, pfn, rec, mapcounts.get(pfn, 0))
        if with_pages:
            report.pages.append(page)
        vma.present += 1
        vma.pinned += page.pinned
        if page.folio not in seen:
            seen.add(page.folio)
            vma.pins += page.folio_pins
    report.pinned = sum(v.pinned for v in report.vmas)
    report.pins = sum(v.pins for v in report.vmas)
    return report


def pinned_only(report: PinsReport) -> PinsReport:
    """`report` with only the VMAs and pages that hold pins."""
    return dataclasses.replace(report, vmas=[v for v in report.vmas if v.pins or v.pinned],
                               pages=[p for p in report.pages if p.pinned])  # fmt: skip


def served(device: Device) -> bool:
    """Whether `device` serves GUPCTL_PAGES (gupctl's kmod), a probe that asks
    about frame 0: a read, harmless whatever is there.  Raises on any other
    error (EPERM: not root)."""
    try:
        inspect(device, [0])
    except DeviceError as e:
        if e.errno in (errno.EINVAL, errno.ENOTTY):
            return False
        raise
    return True


def _comm(pid: int) -> str:
    path = Path(f"/proc/{pid}/comm")
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise GupctlError(f"no process {pid}", errno.ESRCH) from None
    except OSError as e:
        raise GupctlError(f"cannot read {path}", e.errno) from None


def _page(addr: int, pfn: int, rec: Record, mapcount: int) -> Page:
    return Page(addr=addr, pfn=pfn, zone=rec.zone, node=rec.node, order=rec.order,
                pinned=bool(rec.flags & FLAG_PINNED),
                pincount=None if rec.pincount < 0 else rec.pincount,
                refcount=rec.refcount, mapcount=mapcount)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """struct gupctl_page as the kmod wrote it."""

    flags: int
    order: int
    refcount: int
    pincount: int  # -1: the folio keeps none
    node: int
    zone: str


def inspect(device: Device, pfns: list[int]) -> list[Record]:
    """GUPCTL_PAGES for each of `pfns`, in order."""
    out = []
    for i in range(0, len(pfns), PAGES_MAX):
        chunk = pfns[i : i + PAGES_MAX]
        records = abi.ffi.new("struct gupctl_page[]", len(chunk))
        for k, pfn in enumerate(chunk):
            records[k].pfn = pfn
        req = abi.ffi.new("struct gupctl_pages *")
        req.pages = int(abi.ffi.cast("uintptr_t", records))
        req.nr = len(chunk)
        device.ioctl(abi.GUPCTL_PAGES, req)
        for r in records:
            out.append(Record(int(r.flags), int(r.order), int(r.refcount), int(r.pincount),
                              int(r.node), abi.ffi.string(r.zone).decode()))  # fmt: skip
    return out
