"""The table of `gupctl doctor`."""

from __future__ import annotations

from rich.text import Text

from gupctl.doctor import Report
from gupctl.render.table import Table

_STYLE = {"ok": "green", "missing": "bold red", "warn": "yellow", "info": "dim"}


def table(r: Report) -> Table:
    """One row per check: what was found and why gupctl needs it, and the fix."""
    if r.ready:
        verdict = f"ready: gupctl can benchmark here with {r.device} (exit status 0)"
    else:
        verdict = "not ready: run the fixes of the missing rows, top to bottom (exit status 1)"
    t = Table(title="gupctl doctor: what gupctl needs, and what this machine has",
              caption=verdict, caption_justify="left")  # fmt: skip
    t.add_column("check")
    t.add_column("needed")
    t.add_column("status")
    t.add_column("found / why", ratio=1)
    t.add_column("fix")
    for c in r.checks:
        found = Text(c.found)
        if c.why:
            found.append(f"\n{c.why}", style="dim")
        t.add_row(c.name, "required" if c.required else "optional",
                  Text(c.status, style=_STYLE.get(c.status, "")), found, c.fix or "-")  # fmt: skip
    return t
