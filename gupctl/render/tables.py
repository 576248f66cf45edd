"""rich tables of gupctl's results, one function per result type (render.emit)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rich.text import Text

from gupctl import abi, cpus
from gupctl.memory import PAGE_SIZE, size_label
from gupctl.render.table import Table

if TYPE_CHECKING:
    from gupctl.abi_report import AbiReport
    from gupctl.bench import RunResult
    from gupctl.check import CheckResult
    from gupctl.dump import DumpResult
    from gupctl.longterm import HoldResult, ReadResult
    from gupctl.results import Comparison, PhaseChange, RunKey
    from gupctl.vmstat import Balance, PinCounters


def _is(data: Any, module: str, name: str) -> bool:
    """isinstance(data, module.name) without importing `module` to ask: an
    instance can exist only once its module is imported.  Importing every
    result's module here (the doctor's pulls in the whole VM package) would
    cost every command's start-up, which in a TCG guest over 9p is seconds."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(data, getattr(mod, name))


def of(data: Any) -> list[Table]:
    """The tables that show `data`, a result or a list of results."""
    if _is(data, "gupctl.abi_report", "AbiReport"):
        return _abi(data)
    if _is(data, "gupctl.results", "Comparison"):
        return _comparison(data)
    if _is(data, "gupctl.doctor", "Report"):
        from gupctl.render import doctor

        return [doctor.table(data)]
    if _is(data, "gupctl.module", "ModuleStatus"):
        from gupctl.render import kmod

        return [kmod.status(data)]
    if _is(data, "gupctl.install", "Installed"):
        from gupctl.render import kmod

        return [kmod.installed(data)]
    items = data if isinstance(data, list) else [data]
    if items and _is(items[0], "gupctl.bench", "RunResult"):
        return [_runs(items), _balances(items)]
    if items and _is(items[0], "gupctl.vmstat", "PinCounters"):
        return [_counters(items)]
    if items and _is(items[0], "gupctl.extract", "ExtractResult"):
        from gupctl.render import extract

        return [extract.table(items)]
    if _is(data, "gupctl.check", "CheckResult"):
        return [_check(data)]
    if _is(data, "gupctl.pins", "PinsReport"):
        from gupctl.render import pins

        return pins.tables(data)
    if _is(data, "gupctl.dump", "DumpResult"):
        return [_dump(data), _balance_table([(data.call, data.balance)])]
    if _is(data, "gupctl.longterm", "HoldResult"):
        return [_hold(data), _balance_table([("longterm pin", data.balance)])]
    if _is(data, "gupctl.longterm", "ReadResult"):
        return [_read(data), _balance_table([("longterm pin", data.balance)])]
    raise TypeError(f"nothing renders {type(data).__name__}")


def _check(r: CheckResult) -> Table:
    t = Table(title=f"pins of `{' '.join(r.command)}`'s memory ({r.scope}: nr_foll_pin_* "
              "deltas)")  # fmt: skip
    cols = ("exit", "seconds", "acquired", "released", "outstanding at exit",
            "outstanding after settling", "verdict")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col == "verdict" else "right")
    verdict = {"leak": "LEAK"}.get(r.verdict, r.verdict) + ("" if r.exact else ", not exact")
    t.add_row(str(r.returncode), f"{r.seconds:.3f}", str(r.acquired), str(r.released),
              str(r.outstanding_at_exit), f"{r.outstanding} ({r.settle_seconds:.1f} s)",
              verdict)  # fmt: skip
    return t


def _abi(r: AbiReport) -> list[Table]:
    abi = r.machine if r.abi == r.machine else f"{r.machine} = {r.abi}"
    whose = ", this process" if r.this_process else ""
    cmds = Table(title=f"gup_test commands ({abi}, {r.encoding} encoding, "
                 f"__u64 aligned {r.u64_alignment}{whose})")  # fmt: skip
    for col in ("command", "nr", "macro", "argument", "number"):
        cmds.add_column(col, justify="right" if col in ("nr", "number") else "left")
    for c in r.commands:
        cmds.add_row(c.name, str(c.nr), c.direction, c.arg or "-", f"{c.number:#010x}")
    tables = [cmds]
    for s in r.structs:
        t = Table(title=f"{s.name}: {s.size} bytes, aligned {s.alignment}")
        for col in ("field", "offset", "size"):
            t.add_column(col, justify="left" if col == "field" else "right")
        for f in s.fields:
            t.add_row(f.name, str(f.offset), str(f.size))
        tables.append(t)
    return tables


def _runs(results: list[RunResult]) -> Table:
    t = Table(title="gup_test timings, measured by the kernel")
    for col in ("command", "backing", "size", "folio", "pages/call", "rep×thr", "mode"):
        t.add_column(col, justify="left" if col in ("command", "backing", "mode") else "right")
    for col in ("get µs min/med/max", "put µs min/med/max", "ns/page get/put", "µs/ioctl"):
        t.add_column(col, justify="right")
    for r in results:
        per_call = abi.per_call_label(r.nr_pages_per_call, r.nr_pages)
        t.add_row(
            r.command, r.backing, size_label(r.size),
            "-" if r.folio_size is None else size_label(r.folio_size), per_call,
            " ".join(filter(None, (f"{r.repeats}×{r.threads}", cpus.label(r.cpus)))),
            "write" if r.write else "read",
            f"{r.get.min:g} / {r.get.median:g} / {r.get.max:g}",
            f"{r.put.min:g} / {r.put.median:g} / {r.put.max:g}",
            f"{_per_page(r.get_ns_per_page, r.nr_pages)} / "
            f"{_per_page(r.put_ns_per_page, r.nr_pages)}",
            "-" if r.ioctl_ns is None else f"{r.ioctl_ns / 1000:.2f}",
        )  # fmt: skip
    t.caption = (
        "folio: the folio size backing most of the buffer (- : frames hidden, not "
        "root); µs/ioctl: gupctl's own wall time per repeat and thread, its loop "
        "included"
    ) + ("; @: each thread's CPU (--cpus)" if any(r.cpus for r in results) else "")
    return t


def _per_page(ns: float, nr_pages: int) -> str:
    """ns per page to the kernel clock's resolution: gup_test times a call in
    whole µs, so below 10,000 pages a decimal of a ns is noise."""
    return f"{ns:.1f}" if nr_pages >= 10_000 else f"{ns:.0f}"


def _balances(results: list[RunResult]) -> Table:
    return _balance_table([(r.command, r.balance) for r in results])


def _counters(counters: list[PinCounters]) -> Table:
    refreshed = all(c.refreshed for c in counters)
    note = "" if refreshed else " (not refreshed: per-CPU batches may be pending)"
    t = Table(title=f"FOLL_PIN accounting{note}")
    for col in ("scope", "nr_foll_pin_acquired", "nr_foll_pin_released", "outstanding"):
        t.add_column(col, justify="left" if col == "scope" else "right")
    for c in counters:
        t.add_row(
            c.scope, str(c.nr_foll_pin_acquired), str(c.nr_foll_pin_released), str(c.outstanding)
        )
    return t


def _balance_table(rows: list[tuple[str, Balance]]) -> Table:
    # Control windows (balance.measure): what moved in them, and the bound.
    windowed = any(b.window_seconds for _, b in rows)
    t = Table(title="pin balance (nr_foll_pin_* deltas)")
    cols = ["what", "scope", "expected", "acquired", "released", "outstanding"]
    cols += ["windows", "others' pins", "bound"] if windowed else []
    for col in (*cols, "balance"):
        t.add_column(col, justify="left" if col in ("what", "scope", "balance") else "right")
    for what, b in rows:
        # expected None: the pages may be the zero page and could not be looked up.
        expected = "?" if b.expected is None else str(b.expected)
        cells = [what, b.scope, expected, str(b.acquired), str(b.released),
                 f"{b.outstanding_before}→{b.outstanding_after}"]  # fmt: skip
        if windowed:
            cells += [f"2×{b.window_seconds:.1f} s", _others(b), f"+{b.bound}"]
        t.add_row(*cells, b.verdict)
    return t


def _others(b: Balance) -> str:
    if not b.window_seconds:
        return "-"
    moved = f"{b.background_acquired}/{b.background_released}"
    return moved if b.quiet else f"{moved} ({b.background_per_second:.1f}/s)"


def _dump(r: DumpResult) -> Table:
    flags = "|".join(r.gup_flag_names) or "0"
    t = Table(title=f"dump_page() via {r.call}: {r.backing}, {r.nr_pages} pages, "
              f"gup_flags {flags}")  # fmt: skip
    for col in ("page", "user addr", "pfn", "refcount", "mapcount", "pincount", "order"):
        t.add_column(col, justify="right")
    t.add_column("mapping")
    t.add_column("flags", overflow="fold")
    for p in r.pages:
        t.add_row(
            str(p.index), f"{p.user_addr:#x}", f"{p.pfn:#x}", str(p.refcount), str(p.mapcount),
            _opt(p.pincount), _opt(p.order), p.mapping or "-", "|".join(p.flags),
        )  # fmt: skip
    return t


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _hold(r: HoldResult) -> Table:
    t = Table(title="longterm pin held, then released")
    for col in ("backing", "size", "mode", "pages", "acquired while held", "held s"):
        t.add_column(col, justify="left" if col in ("backing", "mode") else "right")
    mode = ("write" if r.write else "read-only") + (", fast" if r.fast else "")
    t.add_row(r.backing, size_label(r.size), mode, str(r.pinned_pages),
              str(r.acquired_while_held), f"{r.held_seconds:g}")  # fmt: skip
    return t


def _read(r: ReadResult) -> Table:
    t = Table(title="PIN_LONGTERM_TEST_READ after a write through the mapping")
    for col in ("backing", "size", "mode", "pages", "matched", "mismatched", "verdict"):
        t.add_column(col, justify="left" if col in ("backing", "mode", "verdict") else "right")
    mode = ("write" if r.write else "read-only") + (", fast" if r.fast else "")
    verdict = "reliable" if r.ok else f"STALE: pages {r.mismatched_pages}"
    t.add_row(r.backing, size_label(r.size), mode, str(r.nr_pages), str(r.matched),
              str(r.mismatched), verdict)  # fmt: skip
    return t


def _key_cells(k: RunKey) -> list[str]:
    per_call = abi.per_call_label(k.pages_per_call, k.size // PAGE_SIZE)
    mode = "write" if k.write else "read"
    return [k.command, k.backing, size_label(k.size), per_call, mode, str(k.threads)]


_KEY_COLUMNS = ("command", "backing", "size", "pages/call", "mode", "thr")
_VERDICT_STYLE = {"faster": "green", "slower": "red"}


def _change_cells(c: PhaseChange) -> list[str | Text]:
    ratio = "-" if c.ratio is None else f"{c.ratio:.3f}"
    verdict = Text(c.verdict, style=_VERDICT_STYLE.get(c.verdict, ""))
    return [f"{c.median_a:g} / {c.median_b:g}", ratio, verdict]


def _comparison(c: Comparison) -> list[Table]:
    t = Table(
        title=f"B: {c.b} ({c.kernel_b}) against A: {c.a} ({c.kernel_a}), median µs",
        caption="beyond noise: each median lies outside the other run's min..max samples",
    )
    for col in (*_KEY_COLUMNS, "rep A/B"):
        t.add_column(col, justify="left" if col in ("command", "backing", "mode") else "right")
    for phase in ("get", "put"):
        t.add_column(f"{phase} µs A / B", justify="right")
        t.add_column(f"{phase} B/A", justify="right")
        t.add_column(phase)
    for p in c.pairs:
        t.add_row(*_key_cells(p.key), f"{p.repeats_a}/{p.repeats_b}", *_change_cells(p.get),
                  *_change_cells(p.put))  # fmt: skip
    tables = [t]
    if c.only_in_a or c.only_in_b:
        only = Table(title="runs without a match on the other side")
        for col in ("only in", *_KEY_COLUMNS):
            right = col in ("size", "pages/call", "thr")
            only.add_column(col, justify="right" if right else "left")
        for side, keys in (("A", c.only_in_a), ("B", c.only_in_b)):
            for k in keys:
                only.add_row(side, *_key_cells(k))
        tables.append(only)
    return tables
