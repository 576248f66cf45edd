"""All output: rich tables for people (render/tables.py), JSON for programs, from
the same dataclasses; KTAP and JUnit for the selftest (render/ktap.py).

The render package is the only one that imports rich, and only to draw:
JSON, diagnostics and errors are written without it, because importing rich
costs a command in gupctl's TCG guest about half a second.  Data goes to
stdout, diagnostics to stderr; rich honours NO_COLOR and drops styling when
stdout is not a terminal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gupctl import output

if TYPE_CHECKING:
    from rich.console import Console

    from gupctl.vmstat import Balance


@functools.cache
def console(stderr: bool = False) -> Console:
    """rich's console for stdout (or stderr): tables are wide, so where stdout
    is not a terminal (and $COLUMNS does not say) lay them out for 160 columns,
    not rich's 80."""
    from rich.console import Console

    if stderr:
        return Console(stderr=True, highlight=False, soft_wrap=True)
    return Console(highlight=False, width=width())


#: The narrowest layout a table stays readable in: a narrower $COLUMNS (0, 1)
#: printed nothing, or a character per line.
MIN_WIDTH = 60


def width() -> int | None:
    """Columns for tables: $COLUMNS if it is a number, at least MIN_WIDTH; else
    the terminal's (None: rich asks it), or 160 where stdout is no terminal."""
    text = os.environ.get("COLUMNS", "").strip()
    if text.isascii() and text.isdigit():
        return max(int(text), MIN_WIDTH)
    return None if sys.stdout.isatty() else 160


def as_json(data: Any) -> str:
    """JSON of a dataclass or a list of them."""
    return output.dumps(data)


def emit(data: Any, use_json: bool) -> None:
    """Print `data` as JSON or as its table."""
    if use_json:
        sys.stdout.write(as_json(data) + "\n")
        return
    from gupctl.render import tables

    for table in tables.of(data):
        console().print(table)


def warn(message: str) -> None:
    """A one-line diagnostic on stderr."""
    _line(f"gupctl: {message}")


def error(message: str) -> None:
    _line(f"gupctl: error: {message}")


#: Terminal control characters (C0, DEL, C1), shown as \\xNN: a message quotes
#: file names, fields and arguments that may hold escape sequences.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def escape(text: str) -> str:
    """`text` safe to print: control characters as \\xNN, and what no encoding
    can write (an undecodable file name's surrogates) as \\udcNN."""
    return text.translate(_CONTROL).encode("utf-8", "backslashreplace").decode("utf-8")


def _line(text: str) -> None:
    # A closed or broken stderr (2>&-, a gone reader) loses the line, not the
    # command: its exit status still says it (rich discarded such output too).
    if sys.stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(escape(text) + "\n")
        sys.stderr.flush()


@contextlib.contextmanager
def progress(labels: list[str]) -> Iterator[Callable[[], None]]:
    """Progress through runs named `labels`, on stderr; yields what to call after each run.

    On a terminal a transient bar naming the run under way; elsewhere one line
    per finished run (a log reader still sees a long sweep advance).  A single
    run shows nothing, as before sweeps existed.
    """
    total = len(labels)
    if total < 2:
        yield lambda: None
        return
    if not sys.stderr.isatty():
        done = [0]

        def line() -> None:
            done[0] += 1
            warn(f"run {done[0]}/{total} done: {labels[done[0] - 1]}")

        yield line
        return
    # Here, not at the top: rich.progress is a tenth of rich's modules, and only a
    # sweep on a terminal needs it.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(labels[0], total=total)

        def advance() -> None:
            bar.advance(task)
            finished = int(bar.tasks[0].completed)
            if finished < total:
                bar.update(task, description=labels[finished])

        yield advance


def balance_notes(balances: list[Balance]) -> None:
    """What the balances' readings claim, on stderr: one line per kind."""
    windowed = [b for b in balances if b.window_seconds]
    if any(b.scope == "system" and b.exact for b in windowed):
        shortest = min(b.window_seconds for b in windowed)
        warn("pin balance read system-wide: 'exact' means the counters stood still in "
             f"control windows of at least {shortest:.1f} s before and after the run and moved "
             "by exactly the pins expected during it; another pin user would have had to pin "
             "and unpin only inside the run, as many pages as went uncounted")  # fmt: skip
    bounded = [b for b in balances if b.verdict == "bounded"]
    if bounded:
        rate = max(b.background_per_second for b in bounded)
        warn(f"other pin users moved the counters ({rate:.1f} pins/s in the control windows, "
             f"in each of {max(b.attempts for b in bounded)} attempts): the deltas exceed "
             "the pins expected by at most the bound shown (an estimate: twice that rate "
             "over the run), not exact; a quieter system, or --numa-node N on a memory-only "
             "node, makes them exact")  # fmt: skip
    if any(b.verdict == "approx" for b in balances):
        why = ("read system-wide" if any(b.scope == "system" for b in balances)
               else "not refreshed (stat_refresh needs root)")  # fmt: skip
        warn(f"pin balance {why}: approximate, other pin users move these counters too; "
             "--check-balance checks it between quiet control windows")  # fmt: skip
