"""`gupctl pins`: which pages of a process are pinned (GUPCTL_PAGES, kmod only)."""

from __future__ import annotations

import mmap
import os
import re
from typing import Any

import click

from gupctl.cli.options import Number, device_option, json_option


class AddressRange(click.ParamType):
    """START-END in hex, as /proc/PID/maps prints them; page-aligned, START < END."""

    name = "START-END"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"(?:0x)?([0-9a-fA-F]+)-(?:0x)?([0-9a-fA-F]+)", str(value))
        if not m:
            self.fail(f"{value!r} is not START-END in hex (as /proc/PID/maps prints it)")
        start, end = int(m[1], 16), int(m[2], 16)
        if start >= end or start % mmap.PAGESIZE or end % mmap.PAGESIZE:
            self.fail(f"{value!r}: START must be below END, both page-aligned")
        return start, end


def _running(ctx: click.Context, param: click.Parameter, pid: int | None) -> int | None:
    """Refuse a pid with no process before any work."""
    if pid is not None and not os.path.isdir(f"/proc/{pid}"):
        raise click.BadParameter(f"no process {pid} (see ps)", ctx, param)
    return pid


@click.command()
@click.option("--pid", type=Number(1), required=True, callback=_running,
              help="The process to look at.")  # fmt: skip
@click.option("--range", "span", type=AddressRange(),
              help="Only this part of its address space [default: every VMA].")  # fmt: skip
@click.option("--pages", "with_pages", is_flag=True,
              help="List every present page, not only each VMA's sums.")  # fmt: skip
@click.option("--pinned", "pinned_only", is_flag=True,
              help="Only the VMAs and pages that hold pins.")  # fmt: skip
@device_option
@json_option
def pins(pid: int, span: tuple[int, int] | None, with_pages: bool, pinned_only: bool,
         use_json: bool, device: str | None) -> None:  # fmt: skip
    """Which pages of a process are pinned, and how many pins their folios hold.

    For each present page: its frame, node and zone, its folio's order,
    whether folio_maybe_dma_pinned(), the folio's pincount (large folios
    keep one; a small folio's pins are its refcount / 1024), refcount and
    mapcount, summed per VMA.  The query takes no reference, faults nothing
    in and moves no pin counter.  Needs root and gupctl's kmod.
    """
    from gupctl import pins as p
    from gupctl import render
    from gupctl.device import open_device

    start, end = span if span else (None, None)
    with open_device(device) as dev:
        report = p.query(dev, pid, start, end, with_pages)
    if pinned_only:
        report = p.pinned_only(report)
    render.emit(report, use_json)
