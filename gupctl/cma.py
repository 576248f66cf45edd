"""Where the kernel's CMA areas lie, as the kernel itself said at boot.

A longterm pin must not leave a page in a CMA area (the allocator hands
those pages to movable allocations only on loan: cma_alloc() needs them
back), just as it must not leave one in ZONE_MOVABLE.  Unlike a zone, a CMA
area is in no file that gives its frames: debugfs's cma/*/base_pfn needs
CONFIG_CMA_DEBUGFS (off in Debian's kernels), sysfs's /sys/kernel/mm/cma
gives counts only.  What the kernel does say is where it reserved each
area, once, at boot (mm/cma.c, cma_declare_contiguous_nid()):

    cma: Reserved 64 MiB at 0x00000000f9c00000

These lines are read from the kernel log (root, or CAP_SYSLOG), and trusted
only when they add up to /proc/meminfo's CmaTotal: an area reserved in
several ranges ("Reserved 64 MiB in 2 ranges") or a log that has wrapped
leaves them short, and then no area is given at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from gupctl import kmsg
from gupctl.memory import PAGE_SIZE
from gupctl.pagemap import ZoneSpan, zone_of, zone_spans

#: The name the areas go by among the zones (placement.py).
CMA = "CMA"
#: cma_declare_contiguous_nid()'s line ("cma: " is its pr_fmt); %pa prints hex.
RESERVED = re.compile(r"cma: Reserved (\d+) MiB at 0x([0-9a-f]+)\b")
MEMINFO = Path("/proc/meminfo")


def total_kib(meminfo: str | None = None) -> int:
    """/proc/meminfo's CmaTotal (kB), 0 where the kernel has no CMA."""
    text = MEMINFO.read_text() if meminfo is None else meminfo
    m = re.search(r"^CmaTotal:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def parse(lines: list[str], spans: list[ZoneSpan]) -> list[ZoneSpan]:
    """The areas `lines` (a kernel log) reserved, each as a span named CMA on
    the node whose zone holds its first frame (-1: none does)."""
    areas = []
    for line in lines:
        m = RESERVED.search(line)
        if m:
            start = int(m.group(2), 16) // PAGE_SIZE
            end = start + (int(m.group(1)) << 20) // PAGE_SIZE
            zone = zone_of(start, spans)
            areas.append(ZoneSpan(zone.node if zone else -1, CMA, start, end))
    return areas


def areas(lines: list[str] | None = None, meminfo: str | None = None) -> tuple[list[ZoneSpan], str]:
    """This machine's CMA areas, and "" or why none can be given."""
    total = total_kib(meminfo)
    if not total:
        return [], "this kernel reserved no CMA (CmaTotal 0: CONFIG_CMA, cma=, numa_cma=)"
    if lines is None:
        try:
            with kmsg.KernelLog(from_start=True) as log:
                lines = log.read_new()
        except OSError as e:
            return [], f"the kernel log, which says where CMA lies, is unreadable: {e.strerror}"
    found = parse(lines, zone_spans())
    said = sum(a.end - a.start for a in found) * PAGE_SIZE // 1024
    if said != total:
        return [], (f"the kernel log places {said} kB of CMA, /proc/meminfo counts {total} kB "
                    "(an area in several ranges, or a log that has wrapped)")  # fmt: skip
    return found, ""
