"""The tables of `gupctl pins`: pins per VMA, and each present page."""

from __future__ import annotations

from gupctl.memory import PAGE_SIZE, size_label
from gupctl.pins import Page, PinsReport
from gupctl.render.table import Table


def tables(r: PinsReport) -> list[Table]:
    """The VMA summary, then each present page if the report has them."""
    return [_vmas(r)] + ([_pages(r.pages)] if r.pages else [])


def _title(r: PinsReport) -> str:
    where = "every VMA" if r.start is None else f"{r.start:x}-{r.end:x}"
    return (f"pins of pid {r.pid} ({r.comm}), {where}: {r.pinned} pinned pages, "
            f"{r.pins} pins")  # fmt: skip


def _vmas(r: PinsReport) -> Table:
    t = Table(title=_title(r))
    cols = ("range", "perms", "mapping", "size", "present", "pinned", "pins")
    for col in cols:
        t.add_column(col, justify="left" if col in ("range", "perms", "mapping") else "right")
    for v in r.vmas:
        t.add_row(f"{v.start:x}-{v.end:x}", v.perms, v.name or "[anon]",
                  size_label(v.pages * PAGE_SIZE), str(v.present), str(v.pinned),
                  str(v.pins))  # fmt: skip
    return t


def _pages(pages: list[Page]) -> Table:
    t = Table(title="present pages (order, pincount, refcount: the folio's; "
              "mapcount: the page's)")  # fmt: skip
    cols = ("address", "pfn", "node", "zone", "order", "pinned", "pincount", "refcount",
            "mapcount")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col in ("address", "zone", "pinned") else "right")
    for p in pages:
        t.add_row(f"{p.addr:x}", f"{p.pfn:#x}", str(p.node), p.zone, str(p.order),
                  "yes" if p.pinned else "no", "-" if p.pincount is None else str(p.pincount),
                  str(p.refcount), str(p.mapcount))  # fmt: skip
    return t
