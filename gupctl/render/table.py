"""rich's Table, with what the data puts in it made safe for a terminal.

Cells and titles hold fields from files gupctl reads (a saved run's kernel,
hostname or command) and from the kernel; rich strips a few control
characters (BEL, CR) but passes ESC through, so an escape sequence in a
field would reach the terminal raw.  Every table gupctl draws is this one.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table as _RichTable

from gupctl.render import escape


def _safe(value: Any) -> Any:
    return escape(value) if isinstance(value, str) else value


class Table(_RichTable):
    """rich.table.Table whose string title, caption and cells are escaped."""

    def __init__(self, *headers: Any, **kwargs: Any) -> None:
        for key in ("title", "caption"):
            if key in kwargs:
                kwargs[key] = _safe(kwargs[key])
        super().__init__(*headers, **kwargs)

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(_safe(r) for r in renderables), **kwargs)
