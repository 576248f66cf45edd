"""gupctl/cma.py: CMA areas from the kernel's own boot lines, trusted only whole."""

from __future__ import annotations

from gupctl import cma
from gupctl.memory import PAGE_SIZE
from gupctl.pagemap import ZoneSpan

SPANS = [ZoneSpan(0, "DMA", 0x40000, 0x100000), ZoneSpan(1, "Normal", 0x100000, 0x200000)]
MIB = (1 << 20) // PAGE_SIZE
LOG = [
    "Booting Linux on physical CPU 0x0000000000 [0x000f0510]",
    "cma: Reserved 64 MiB at 0x00000000f9c00000",
    "cma: Reserved 3072 MiB at 0x0000000140000000",
]


def test_each_reserved_line_is_an_area_on_its_node() -> None:
    found = cma.parse(LOG, SPANS)
    first = 0xF9C00000 // PAGE_SIZE
    second = 0x140000000 // PAGE_SIZE
    assert found == [ZoneSpan(0, "CMA", first, first + 64 * MIB),
                     ZoneSpan(1, "CMA", second, second + 3072 * MIB)]  # fmt: skip


def test_areas_must_add_up_to_cmatotal() -> None:
    whole = f"MemTotal: 6291456 kB\nCmaTotal: {(64 + 3072) * 1024} kB\n"
    assert cma.areas(LOG, whole)[1] == "" and len(cma.areas(LOG, whole)[0]) == 2
    # A log that lost a line (wrapped), or an area in several ranges: none.
    found, why = cma.areas(LOG[:2], whole)
    assert found == [] and "/proc/meminfo counts" in why
    ranges = ["cma: Reserved 3136 MiB in 2 ranges"]
    assert cma.areas(ranges, whole)[0] == []


def test_no_cma_says_so() -> None:
    found, why = cma.areas(LOG, "MemTotal: 1 kB\n")
    assert found == [] and "CmaTotal 0" in why
