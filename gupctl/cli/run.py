"""`gupctl bench` and `gupctl test`: the struct gup_test commands."""

from __future__ import annotations

import sys
from typing import Any

import click

from gupctl.cli.options import (
    PagesPerCall,
    Size,
    device_option,
    gup_flags_option,
    json_option,
    memory_options,
)

BENCH_NAMES = ("gup_fast_benchmark", "pin_fast_benchmark", "pin_longterm_benchmark")
TEST_NAMES = ("gup_basic_test", "pin_basic_test")


def _run_options(f: Any) -> Any:
    opts = [
        click.option("-s", "--size", type=Size(), default="128M", show_default=True,
                     help="Bytes to pin per ioctl."),
        click.option("-n", "--nr-pages-per-call", type=PagesPerCall(), default="1",
                     show_default=True, help="Pages per GUP call, or 'all'."),
        click.option("-r", "--repeats", type=click.IntRange(1), default=1, show_default=True),
        click.option("-j", "--threads", type=click.IntRange(1), default=1, show_default=True,
                     help="Threads issuing ioctls on the same buffer in parallel."),
        click.option("-w/-W", "--write/--read-only", default=True, show_default=True,
                     help="Pass FOLL_WRITE, or not (OR'ed with --gup-flags)."),
        click.option("--check-balance", is_flag=True,
                     help="Exit 1 unless the pins acquired and released match exactly."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return gup_flags_option(memory_options(device_option(json_option(f))))


def _execute(
    names: tuple[str, ...], check_balance: bool, use_json: bool, device: str | None, **kw: Any
) -> None:
    from gupctl import abi, bench, render
    from gupctl.device import open_device

    specs = [bench.RunSpec(command=abi.BY_NAME[n], **kw) for n in names]
    with open_device(device) as dev:
        results = [bench.run(dev, s) for s in specs]
    render.emit(results, use_json)
    scopes = {r.balance.scope for r in results}
    if "system" in scopes:
        render.warn(
            "pin balance measured system-wide: other pin users move these counters "
            "too; --numa-node N on a node holding only this memory makes it exact"
        )
    if check_balance and not all(r.balance.exact for r in results):
        bad = [r.command for r in results if not r.balance.exact]
        render.error(f"pin balance mismatch in {', '.join(bad)} (see the balance table)")
        sys.exit(1)


@click.command()
@click.argument("commands", nargs=-1, type=click.Choice(BENCH_NAMES))
@_run_options
def bench(commands: tuple[str, ...], **kw: Any) -> None:
    """Run gup_test benchmarks (default: pin_fast_benchmark) and report timings and pin balance."""
    _execute(commands or ("pin_fast_benchmark",), **kw)


@click.command()
@click.argument("commands", nargs=-1, type=click.Choice(TEST_NAMES))
@_run_options
def test(commands: tuple[str, ...], **kw: Any) -> None:
    """Run GUP_BASIC_TEST and PIN_BASIC_TEST (default: both); fails on any imbalance."""
    kw["check_balance"] = True
    _execute(commands or TEST_NAMES, **kw)
