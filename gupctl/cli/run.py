"""`gupctl bench` and `gupctl test`: the struct gup_test commands."""

from __future__ import annotations

import sys
from typing import Any

import click

from gupctl.cli.options import (
    MAX_REPEATS,
    MAX_THREADS,
    CpuList,
    Number,
    PagesPerCall,
    Size,
    device_option,
    gup_flags_option,
    json_option,
    memory_options,
    output_file,
)


class ListOf(click.ParamType):
    """Comma-separated values of another type, e.g. 4M,128M: a sweep over them."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = f"{inner.name}[,{inner.name}...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[Any, ...]:
        if isinstance(value, tuple):
            return value
        return tuple(self.inner.convert(v, param, ctx) for v in str(value).split(","))


BENCH_NAMES = ("gup_fast_benchmark", "pin_fast_benchmark", "pin_longterm_benchmark")
TEST_NAMES = ("gup_basic_test", "pin_basic_test")


def _run_options(f: Any) -> Any:
    opts = [
        click.option("-s", "--size", "sizes", type=ListOf(Size()), default="128M",
                     show_default=True, help="Bytes to pin per ioctl; a list sweeps them."),
        click.option("-n", "--nr-pages-per-call", "per_calls", type=ListOf(PagesPerCall()),
                     default="1", show_default=True,
                     help="Pages per GUP call, or 'all'; a list sweeps them."),
        click.option("-r", "--repeats", type=Number(1, MAX_REPEATS), default=1,
                     show_default=True),
        click.option("-j", "--threads", type=Number(1, MAX_THREADS), default=1,
                     show_default=True,
                     help="Threads issuing ioctls on the same buffer in parallel."),
        click.option("--cpus", type=CpuList(), default=(), metavar="LIST",
                     help="Bind thread k to the k-th CPU of LIST (1, 0,2 or 0-3), cycling: "
                     "under emulation (TCG) placement alone can double a time."),
        click.option("-w/-W", "--write/--read-only", default=True, show_default=True,
                     help="Pass FOLL_WRITE, or not (OR'ed with --gup-flags)."),
        click.option("--check-balance", is_flag=True,
                     help="Exit 1 unless the pins acquired and released match exactly."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return gup_flags_option(memory_options(device_option(json_option(f))))


def _execute(names: tuple[str, ...], check_balance: bool, use_json: bool, device: str | None,
             sizes: tuple[int, ...], per_calls: tuple[int, ...], save: str | None = None,
             **kw: Any) -> None:  # fmt: skip
    from gupctl import abi, balance, bench, render, vmstat
    from gupctl.device import open_device

    commands = [abi.BY_NAME[n] for n in names]
    if len(kw["cpus"]) > kw["threads"]:  # taskset's set would use them all: say it
        render.warn(f"--cpus names {len(kw['cpus'])} CPUs and -j runs {kw['threads']} "
                    f"thread(s): only the first {kw['threads']} are used")  # fmt: skip
    specs = bench.matrix(commands, sizes, per_calls, bench.RunSpec(commands[0], **kw))
    with open_device(device) as dev, render.progress([s.label for s in specs]) as step:
        if check_balance and not vmstat.can_refresh():
            wait = balance.settle_seconds()
            render.warn(f"not root: /proc/sys/vm/stat_refresh needs root, so each pin count "
                        f"waits {wait:g} s (2 x vm.stat_interval + 1 s) for the kernel's "
                        "vmstat_update to fold its per-CPU counters")  # fmt: skip
        results = []
        for spec in specs:
            results.append(bench.run(dev, spec, check_balance, folio=True))
            step()
    render.emit(results, use_json)
    if save:
        from gupctl import results as saved

        saved.save(saved.document(results, dev.path), save)
    render.balance_notes([r.balance for r in results])
    unknown = [r.command for r in results if r.balance.expected is None]
    if check_balance and unknown:
        render.error(f"pin balance of {', '.join(unknown)} cannot be checked: the memory may "
                     "hold the shared zero page, and telling needs root (pagemap); run as "
                     "root, or drop --no-prefault or -W")  # fmt: skip
        sys.exit(1)
    if check_balance and not all(r.balance.exact for r in results):
        bad = [r.command for r in results if r.balance.verdict == "MISMATCH"]
        if bad:
            render.error(f"pin balance mismatch in {', '.join(bad)} (see the balance table)")
        else:
            noisy = [r.command for r in results if not r.balance.exact]
            render.error(f"pin balance of {', '.join(noisy)} not exact: other pin users moved "
                         "the counters in every attempt (see the balance table); run on a "
                         "quieter system, or with --numa-node N on a memory-only node")  # fmt: skip
        sys.exit(1)


@click.command()
@click.argument("commands", nargs=-1, type=click.Choice(BENCH_NAMES))
@_run_options
@click.option(
    "--save",
    metavar="FILE",
    callback=output_file,
    help="Also write the runs to FILE as JSON, for `gupctl compare` and `gupctl plot`.",
)
def bench(commands: tuple[str, ...], **kw: Any) -> None:
    """Run gup_test benchmarks (default: pin_fast_benchmark) and report timings and pin balance.

    -s and -n take comma-separated lists: every command runs at every size and
    pages-per-call (4M,128M and 1,512,all make six runs per command).
    """
    _execute(commands or ("pin_fast_benchmark",), **kw)


@click.command()
@click.argument("commands", nargs=-1, type=click.Choice(TEST_NAMES))
@_run_options
def test(commands: tuple[str, ...], **kw: Any) -> None:
    """Run GUP_BASIC_TEST and PIN_BASIC_TEST (default: both); fails on any imbalance."""
    kw["check_balance"] = True
    _execute(commands or TEST_NAMES, **kw)
