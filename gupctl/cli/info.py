"""`gupctl abi` and `gupctl vmstat`: what this machine uses and counts."""

from __future__ import annotations

import click

from gupctl.cli.options import json_option


@click.command()
@click.option(
    "--machine",
    help="Show another ABI's numbers and layouts: its uname -m (i686, ppc64le, ...) or "
    "ABI name (x32, mipsn32, arm-oabi, ...).",
)
@json_option
def abi(machine: str | None, use_json: bool) -> None:
    """The gup_test command numbers and struct layouts this machine uses (or another ABI's)."""
    from gupctl import abi_report, render

    render.emit(abi_report.report(machine), use_json)


@click.command()
@json_option
def vmstat(use_json: bool) -> None:
    """nr_foll_pin_acquired, nr_foll_pin_released and outstanding, system-wide and per node."""
    from gupctl import render
    from gupctl import vmstat as vmstat_mod

    counters = vmstat_mod.snapshot_all()
    if not counters[0].refreshed:
        render.warn(
            "could not write /proc/sys/vm/stat_refresh (root needed): "
            "values may lag by the per-CPU batches"
        )
    render.emit(counters, use_json)
