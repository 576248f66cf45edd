"""The table of `gupctl extract`: what iov_iter_extract_pages() did per iterator."""

from __future__ import annotations

from gupctl.extract import ExtractResult
from gupctl.memory import size_label
from gupctl.render.table import Table


def _check(r: ExtractResult) -> str:
    """Each oracle that disagrees, or 'ok'."""
    bad = r.disagreements()
    return "BAD " + ",".join(bad) if bad else "ok"


def table(results: list[ExtractResult]) -> Table:
    t = Table(title="iov_iter_extract_pages(): this kernel beside the v6.3 rules and the "
              "2022 proposal (pin: FOLL_PIN, unpin after; get: a ref; list: neither)")  # fmt: skip
    cols = (
        "iterator",
        "direction",
        "size",
        "extracted",
        "offset",
        "pages",
        "calls",
        "will_pin",
        "this kernel",
        "v6.3",
        "2022",
        "pinned",
        "acquired/released",
        "check",
    )
    for col in cols:
        left = col in ("iterator", "direction", "this kernel", "v6.3", "2022", "check")
        t.add_column(col, justify="left" if left else "right")
    for r in results:
        t.add_row(
            r.iter_type, f"ITER_{r.direction.upper()}", size_label(r.size),
            size_label(r.extracted), str(r.offset), str(r.nr_pages), str(r.nr_calls),
            "true" if r.will_pin else "false", r.retention, r.merged, r.proposed,
            str(r.nr_pinned), f"{r.balance.acquired}/{r.balance.released}", _check(r),
        )  # fmt: skip
    return t
