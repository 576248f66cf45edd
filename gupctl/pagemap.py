"""Which page frames back a range of this process: /proc/self/pagemap,
/proc/kpageflags and the node spans in /proc/zoneinfo
(Documentation/admin-guide/mm/pagemap.rst).

gupctl needs it for one fact the pin counters cannot give: which pages of a
buffer are the shared zero page.  Since v6.5 (c8070b787519, "mm: Don't pin
ZERO_PAGE in pin_user_pages()"; Debian's 6.1 has it from 6.1.130) GUP hands
the zero page back without pinning it, so a read-only pin of untouched
anonymous memory moves nr_foll_pin_* by less than one per page.  The huge
zero page, by contrast, is pinned like any folio, on whichever node it was
allocated.  Page frame numbers need CAP_SYS_ADMIN: without it pagemap shows
them as 0, and frames() says so.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from gupctl.errors import GupctlError
from gupctl.memory import PAGE_SIZE

KPAGEFLAGS = Path("/proc/kpageflags")
KPAGECOUNT = Path("/proc/kpagecount")
ZONEINFO = Path("/proc/zoneinfo")
_PRESENT = 1 << 63
_SWAP = 1 << 62  # PM_SWAP: swapped out (or another swap entry); cow.c's pagemap_is_swapped()
_EXCLUSIVE = 1 << 56  # PM_MMAP_EXCLUSIVE: mapped by this process alone (v4.2)
_PFN_MASK = (1 << 55) - 1
# include/uapi/linux/kernel-page-flags.h
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_ZERO_PAGE = 15, 16, 24


@dataclass(frozen=True)
class Frame:
    """One page of the range: its frame, and what kpageflags says of it."""

    present: bool
    pfn: int
    zero: bool  # the shared zero page (KPF_ZERO_PAGE, not compound)
    huge_zero: bool  # a subpage of the huge zero page
    node: int | None


def frames(addr: int, size: int) -> list[Frame]:
    """Every page of [addr, addr + size) of this process, as its frame.

    Raises GupctlError when page frame numbers are hidden (not root).
    """
    entries = pagemap(addr, size // PAGE_SIZE)
    flags = kpageflags(sorted({pfn for on, pfn in entries if on}))
    spans = zone_spans()
    out = []
    for on, pfn in entries:
        f = flags.get(pfn, 0) if on else 0
        compound = f & (1 << KPF_COMPOUND_HEAD | 1 << KPF_COMPOUND_TAIL)
        zero = bool(f >> KPF_ZERO_PAGE & 1)
        out.append(Frame(on, pfn, zero and not compound, zero and bool(compound),
                         node_of(pfn, spans) if on else None))  # fmt: skip
    return out


def folio_sizes(addr: int, size: int) -> dict[int, int]:
    """How many bytes of [addr, addr + size) each folio size backs, as mapped
    here: a compound head and the tails that follow it at the next frames
    make one folio (as tools/mm/thpmaps counts them); a page outside any, one
    base page.  Absent pages count for none.  Raises GupctlError when page
    frame numbers are hidden (not root)."""
    mapped = [pfn for on, pfn in pagemap(addr, size // PAGE_SIZE) if on]
    return folio_runs(mapped, kpageflags(sorted(set(mapped))))


def folio_runs(mapped: list[int], flags: dict[int, int]) -> dict[int, int]:
    """folio_sizes() of the frames `mapped` in address order, given their kpageflags."""
    tail = 1 << KPF_COMPOUND_TAIL
    out: dict[int, int] = {}
    run = 0  # pages of the folio being counted
    for i, pfn in enumerate(mapped):
        f = flags.get(pfn, 0)
        if run and f & tail and pfn == mapped[i - 1] + 1:
            run += 1
            continue
        _add(out, run * PAGE_SIZE)
        run = 1
    _add(out, run * PAGE_SIZE)
    return out


def _add(sizes: dict[int, int], folio: int) -> None:
    if folio:
        sizes[folio] = sizes.get(folio, 0) + folio


@dataclass(frozen=True)
class Entry:
    """One word of /proc/PID/pagemap (Documentation/admin-guide/mm/pagemap.rst)."""

    present: bool
    pfn: int
    exclusive: bool  # PM_MMAP_EXCLUSIVE: the page's mapcount is 1
    swapped: bool = False


def entries(addr: int, n: int, pid: int | str = "self", require_pfns: bool = True) -> list[Entry]:
    """The pagemap entries of the `n` pages from `addr` of process `pid`.
    Reading pagemap faults nothing in.  Pages past what pagemap covers (the
    vsyscall page, beyond TASK_SIZE) read as absent.

    Raises GupctlError when the file cannot be read, or, if `require_pfns`,
    page frame numbers are hidden (they need CAP_SYS_ADMIN).
    """
    path = Path(f"/proc/{pid}/pagemap")
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            raw = os.pread(fd, 8 * n, addr // PAGE_SIZE * 8)
        finally:
            os.close(fd)
    except OSError as e:
        raise GupctlError(f"cannot read {path}", e.errno) from None
    words = struct.unpack(f"={len(raw) // 8}Q", raw)  # native-endian, as pagemap.rst says
    out = [
        Entry(bool(w & _PRESENT), w & _PFN_MASK, bool(w & _EXCLUSIVE), bool(w & _SWAP))
        for w in words
    ]
    if require_pfns and any(e.present for e in out) and not any(e.pfn for e in out):
        raise GupctlError("page frame numbers are hidden: reading them needs CAP_SYS_ADMIN; "
                          "run gupctl as root")  # fmt: skip
    return out + [Entry(False, 0, False)] * (n - len(out))


def pagemap(addr: int, n: int, pid: int | str = "self") -> list[tuple[bool, int]]:
    """(present, pfn) of the `n` pages from `addr` of process `pid` (see entries())."""
    return [(e.present, e.pfn) for e in entries(addr, n, pid)]


def kpageflags(pfns: list[int]) -> dict[int, int]:
    """The kpageflags word of each of `pfns` (sorted), reading runs at once."""
    return _kpage(KPAGEFLAGS, pfns)


def kpagecount(pfns: list[int]) -> dict[int, int]:
    """How many times each of `pfns` (sorted) is mapped (/proc/kpagecount)."""
    return _kpage(KPAGECOUNT, pfns)


def _kpage(path: Path, pfns: list[int]) -> dict[int, int]:
    """A /proc/kpage* file's 64-bit word for each of `pfns` (sorted), reading
    each run of consecutive frames at once.  Raises GupctlError."""
    try:
        return _kpage_read(path, pfns)
    except OSError as e:
        raise GupctlError(f"cannot read {path}", e.errno) from None


def _kpage_read(path: Path, pfns: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        i = 0
        while i < len(pfns):
            j = i
            while j + 1 < len(pfns) and pfns[j + 1] == pfns[j] + 1:
                j += 1
            raw = os.pread(fd, 8 * (j - i + 1), pfns[i] * 8)
            for k, word in enumerate(struct.unpack(f"={len(raw) // 8}Q", raw)):
                out[pfns[i] + k] = word
            i = j + 1
    finally:
        os.close(fd)
    return out


@dataclass(frozen=True)
class ZoneSpan:
    """One populated zone of /proc/zoneinfo: node, name and [start, end) pfns."""

    node: int
    zone: str
    start: int
    end: int


def zone_spans(text: str | None = None) -> list[ZoneSpan]:
    """Every populated zone in /proc/zoneinfo, with the pfns it spans."""
    text = ZONEINFO.read_text() if text is None else text
    spans = []
    for block in re.split(r"^(?=Node \d+, zone)", text, flags=re.MULTILINE):
        head = re.match(r"Node (\d+), zone\s+(\S+)", block)
        spanned = re.search(r"^\s+spanned\s+(\d+)", block, re.MULTILINE)
        start = re.search(r"^\s+start_pfn:\s+(\d+)", block, re.MULTILINE)
        if head and spanned and start and int(spanned.group(1)):
            first = int(start.group(1))
            spans.append(ZoneSpan(int(head.group(1)), head.group(2), first,
                                  first + int(spanned.group(1))))  # fmt: skip
    return spans


def zone_of(pfn: int, spans: list[ZoneSpan]) -> ZoneSpan | None:
    """The zone that spans `pfn`."""
    return next((z for z in spans if z.start <= pfn < z.end), None)


def node_of(pfn: int, spans: list[ZoneSpan]) -> int | None:
    """The node whose zone spans `pfn`."""
    zone = zone_of(pfn, spans)
    return None if zone is None else zone.node


def pinnable(frames_: list[Frame], node: int | None) -> int:
    """Pages of `frames_` that a FOLL_PIN takes a pin on and that count on
    `node` (None: anywhere): all but the shared zero page."""
    return sum(1 for f in frames_ if not f.zero and (node is None or f.node == node))
