"""Parsers of /proc/zoneinfo (gupctl.pagemap) and the per-page arithmetic of
gupctl.pins, on text and records shaped as the kernel writes them."""

from __future__ import annotations

from gupctl import pagemap, pins

# /proc/zoneinfo of the VM booted with movablecore=512M (abridged, 6.12).
ZONEINFO = """\
Node 0, zone    DMA32
  pages free     441303
        spanned  520160
        present  520160
  start_pfn:           4096
Node 1, zone   Normal
  pages free     127637
        spanned  393216
        present  393216
  start_pfn:           1048576
Node 1, zone  Movable
  pages free     89355
        spanned  131072
        present  131072
  start_pfn:           1441792
Node 1, zone   Device
  pages free     0
        spanned  0
        present  0
"""


def test_zone_spans() -> None:
    spans = pagemap.zone_spans(ZONEINFO)
    assert [(z.node, z.zone, z.start, z.end) for z in spans] == [
        (0, "DMA32", 4096, 524256), (1, "Normal", 1048576, 1441792),
        (1, "Movable", 1441792, 1572864)]  # fmt: skip
    assert pagemap.zone_of(1441791, spans).zone == "Normal"  # type: ignore[union-attr]
    assert pagemap.zone_of(1441792, spans).zone == "Movable"  # type: ignore[union-attr]
    assert pagemap.zone_of(1572864, spans) is None
    assert pagemap.node_of(5000, spans) == 0 and pagemap.node_of(3000, spans) is None


def test_folio_sizes_count_heads_and_their_tails() -> None:
    head, tail = 1 << pagemap.KPF_COMPOUND_HEAD, 1 << pagemap.KPF_COMPOUND_TAIL
    # A 4-page folio, a base page, a 4-page folio's last two pages (the range
    # starts inside it elsewhere), a folio split across frames: a 2-page
    # folio and a tail alone.
    # (Absent pages are left out before: folio_sizes() passes present frames.)
    mapped = [100, 101, 102, 103, 7, 202, 203, 300, 301, 500]
    flags = {100: head, 101: tail, 102: tail, 103: tail, 7: 0, 202: tail, 203: tail,
             300: head, 301: tail, 500: tail}  # fmt: skip
    page = pagemap.PAGE_SIZE
    assert pagemap.folio_runs(mapped, flags) == {4 * page: 4 * page, page: 2 * page,
                                                          2 * page: 4 * page}  # fmt: skip


def _page(pfn: int, order: int, pincount: int | None, refcount: int) -> pins.Page:
    return pins.Page(addr=pfn << 12, pfn=pfn, zone="Normal", node=1, order=order,
                     pinned=bool(pincount) or refcount >= 1024, pincount=pincount,
                     refcount=refcount, mapcount=1)  # fmt: skip


def test_folio_and_its_pins() -> None:
    thp = _page(0x148A05, 9, 512, 513)
    assert thp.folio == 0x148A00 and thp.folio_pins == 512
    small = _page(0x1234, 0, None, 1 + 2 * pins.GUP_PIN_COUNTING_BIAS)
    assert small.folio == 0x1234 and small.folio_pins == 2
    assert _page(0x1235, 0, None, 3).folio_pins == 0


def test_pinned_only_keeps_what_holds_pins() -> None:
    busy = pins.Vma(0x1000, 0x3000, "rw-p", "", pages=2, present=2, pinned=2, pins=2)
    idle = pins.Vma(0x5000, 0x6000, "r--p", "/lib/x", pages=1, present=1)
    pages = [_page(1, 0, None, 1025), _page(2, 0, None, 1025), _page(5, 0, None, 2)]
    report = pins.PinsReport(7, "x", None, None, 2, 2, [busy, idle], pages)
    only = pins.pinned_only(report)
    assert only.vmas == [busy] and [p.pfn for p in only.pages] == [1, 2]
    assert (only.pinned, only.pins) == (2, 2)
