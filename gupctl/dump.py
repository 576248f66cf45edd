"""DUMP_USER_PAGES_TEST: the kernel's dump_page() of chosen pages, read back from /dev/kmsg.

The ioctl gets (or pins) every page of the range, then dump_page()s up to 8
of them into the kernel log: a "---- page #N, starting from user virt addr"
header, the dump_page() lines (mm/debug.c), and "page dumped because:
gup_test: dump_pages() test".  gupctl reads those lines from /dev/kmsg, after
seeking to its end just before the ioctl, so only what the ioctl printed is
seen (gupctl.kmsg).  The format of dump_page() changes between releases (6.1 prints
"head:%p order:%u compound_mapcount:%d compound_pincount:%d", 6.12 "head:
order:%u mapcount:%d ... pincount:%d"), so the parser reads every key:value
token of the page:/head: lines instead of matching one layout.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gupctl import abi, flags, kmsg, thp, vmstat
from gupctl.device import Device
from gupctl.errors import DeviceError, GupctlError, Truncated
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec, hugetlb_page_size

KMSG = "/dev/kmsg"
REASON = "page dumped because: gup_test: dump_pages() test"
_HEADER = re.compile(r"---- page #(\d+), starting from user virt addr: (0x[0-9a-fA-F]+)")
_TOKEN = re.compile(r"(\w+):(\S+)")
_FLAGS = re.compile(r"(?:(\w+) )?flags: (0x[0-9a-f]+)\(([^)]*)\)")


@dataclass(frozen=True)
class DumpSpec:
    """Which pages to dump (0-based, at most 8), of how many bytes, through which GUP call."""

    indexes: tuple[int, ...]
    size: int
    pin: bool = False
    gup_flags: int = 0
    memory: MemorySpec = field(default_factory=MemorySpec)


@dataclass(frozen=True)
class DumpedPage:
    """One page as dump_page() described it; `raw` holds its log lines verbatim."""

    index: int
    user_addr: int  # this page's address: the header's range start + index pages
    pfn: int
    refcount: int
    mapcount: int
    pincount: int | None  # large folios only; a small one counts pins in refcount
    order: int | None  # large folios only
    flags: list[str]
    mapping: str | None  # the hashed %p of folio_mapping(); None for NULL (anon)
    raw: list[str]


@dataclass(frozen=True)
class DumpResult:
    """What `gupctl dump` reports: the table and --json both come from this."""

    call: str  # get_user_pages or pin_user_pages
    backing: str
    size: int
    nr_pages: int
    gup_flags: int
    gup_flag_names: list[str]
    pages: list[DumpedPage]
    missing: list[int]  # asked for, but no dump of it came back from the log
    balance: vmstat.Balance


def default_size(indexes: Sequence[int], memory: MemorySpec) -> int:
    """Bytes just covering the largest index, rounded up to the huge page size if any."""
    size = (max(indexes, default=0) + 1) * PAGE_SIZE
    unit = hugetlb_page_size() if memory.hugetlb else thp.pmd_size() if memory.thp else PAGE_SIZE
    return -(-size // unit) * unit


def parse_dump(lines: list[str]) -> list[DumpedPage]:
    """The pages of a gup_test dump, from kernel log lines that may hold others too.

    Lines count only between a "---- page #" header and the "page dumped
    because: gup_test: dump_pages() test" that ends its dump.
    """
    pages: list[DumpedPage] = []
    current: tuple[int, int] | None = None
    body: list[str] = []
    for line in lines:
        header = _HEADER.search(line)
        if header:
            current, body = (int(header.group(1)), int(header.group(2), 16)), []
        elif current is not None:
            body.append(line)
            if line.strip() == REASON:
                pages.append(_page(current[0], current[1] + current[0] * PAGE_SIZE, body))
                current = None
    return pages


def _page(index: int, user_addr: int, body: list[str]) -> DumpedPage:
    info: dict[str, str] = {}
    page_flags: list[str] = []
    for line in body:
        text = line.strip()
        # "head: 0123..." is the folio's hex dump; "head: order:" (6.12) and
        # "head:%p order:" (6.1) are the folio's counters.
        if text.startswith("page:") or (text.startswith("head:") and "order:" in text):
            for key, value in _TOKEN.findall(text):
                info.setdefault(key, value)
        flags_match = _FLAGS.match(text)
        if flags_match and not page_flags:
            page_flags = [f for f in flags_match.group(3).split("|") if f]
    pincount = info.get("pincount", info.get("compound_pincount"))
    mapping = info.get("mapping")
    return DumpedPage(
        index=index,
        user_addr=user_addr,
        pfn=_int(info.get("pfn")),
        refcount=_int(info.get("refcount")),
        mapcount=_int(info.get("mapcount")),
        pincount=_int(pincount) if pincount is not None else None,
        order=_int(info["order"]) if "order" in info else None,
        flags=page_flags,
        mapping=None if mapping is None or mapping.strip("0") in ("", "(null)") else mapping,
        raw=list(body),
    )


def _int(value: str | None) -> int:
    return int(value, 0) if value else 0


def run(device: Device, spec: DumpSpec) -> DumpResult:
    """Map the memory spec asks for, and dump its chosen pages (see dump_pages())."""
    with Mapping(spec.memory, spec.size) as mapping:
        return dump_pages(device, mapping, spec.indexes, pin=spec.pin, gup_flags=spec.gup_flags)


def dump_pages(
    device: Device, mapping: Mapping, indexes: Sequence[int], *, pin: bool = False,
    gup_flags: int = 0, per_call: int | None = None,
) -> DumpResult:  # fmt: skip
    """DUMP_USER_PAGES_TEST over all of `mapping`, dumping the pages at 0-based
    `indexes`, `per_call` pages a GUP call (default: all in one).

    The pin balance is counted on the mapping's NUMA node if it has one.
    """
    if len(indexes) > abi.GUP_TEST_MAX_PAGES_TO_DUMP:
        raise ValueError(f"at most {abi.GUP_TEST_MAX_PAGES_TO_DUMP} pages can be dumped")
    node = mapping.spec.numa_node
    nr_pages = mapping.size // PAGE_SIZE
    arg = abi.ffi.new("struct gup_test *")
    arg.addr, arg.size = mapping.addr, mapping.size
    arg.nr_pages_per_call = per_call or nr_pages
    arg.gup_flags = gup_flags
    arg.test_flags = abi.GUP_TEST_FLAG_DUMP_PAGES_USE_PIN if pin else 0
    for slot, index in enumerate(indexes):
        arg.which_pages[slot] = index + 1  # the ABI counts from 1; 0 means "none"
    try:
        log = kmsg.KernelLog()
    except OSError as e:
        raise GupctlError(f"cannot read the kernel log ({KMSG})", e.errno) from None
    call = "pin_user_pages" if pin else "get_user_pages"
    write = bool(gup_flags & abi.FOLL_WRITE)
    try:
        before = vmstat.snapshot(node)
        device.ioctl(abi.DUMP_USER_PAGES_TEST, arg)
        after = vmstat.snapshot(node)
        lines = log.read_new()
    except DeviceError as e:
        if e.errno != errno.EFAULT:  # the kmod's answer to a first call that faults
            raise
        raise Truncated(call, mapping.size, 0, mapping.spec.describe(), write) from None
    finally:
        log.close()
    if int(arg.size) != mapping.size:
        raise Truncated(call, mapping.size, int(arg.size), mapping.spec.describe(), write)
    pages = parse_dump(lines)
    found = {p.index for p in pages}
    return DumpResult(
        call=call,
        backing=mapping.spec.describe(),
        size=mapping.size,
        nr_pages=nr_pages,
        gup_flags=gup_flags,
        gup_flag_names=flags.names(gup_flags),
        pages=pages,
        missing=[i for i in indexes if i not in found],
        # pin_user_pages() pins, and the test unpins, every page of the range.
        balance=vmstat.Balance.between(before, after, nr_pages if pin else 0),
    )
