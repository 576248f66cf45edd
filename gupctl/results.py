"""Saved benchmark results (`gupctl bench --save`), and comparing two of them.

A saved file is one JSON document, `SavedResults`: where and when the runs
were made, and every RunResult exactly as `gupctl bench --json` prints it.

Comparing pairs the runs of two files that measured the same thing, and says
for the get and the put phase whether B differs from A by more than the
run-to-run noise (see `beyond_noise`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

from gupctl import __version__, output, samples
from gupctl.bench import RunResult, Stats
from gupctl.errors import ResultsError
from gupctl.samples import Samples
from gupctl.vmstat import Balance

FORMAT = "gupctl-bench/1"
NEEDS_REPEATS = "n/a: needs -r 2+"


@dataclass(frozen=True)
class SavedResults:
    """The document `--save` writes: the runs, and the machine and kernel they ran on."""

    format: str
    gupctl: str
    kernel: str  # uname -r
    machine: str  # uname -m
    hostname: str
    date: str  # ISO 8601, UTC
    device: str  # the gup_test file used
    results: list[RunResult]


def document(results: list[RunResult], device: str) -> SavedResults:
    """A document for `results`, stamped with this machine, kernel and the time now."""
    uname = platform.uname()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return SavedResults(FORMAT, __version__, uname.release, uname.machine, socket.gethostname(),
                        now.isoformat().replace("+00:00", "Z"), device, list(results))  # fmt: skip


def save(doc: SavedResults, path: str) -> None:
    """Write `doc` to `path` as JSON; a reader never sees a half-written file."""
    output.write_file(path, output.dumps(doc) + "\n")


def load(path: str) -> SavedResults:
    """Read a document written by `save`; ResultsError says what is wrong with it."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError as e:
        raise ResultsError(f"{path} does not exist", path, "missing", e.errno) from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})", path,
                           "json") from e  # fmt: skip
    except OSError as e:
        what, err = f"cannot read {path}", e.errno
        raise ResultsError(what, path, "unreadable", err) from e
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ResultsError(f"{path} is not JSON ({e})", path, "json") from e
    except RecursionError as e:  # json recurses per nesting level
        raise ResultsError(f"{path} nests too deeply to be results", path, "json") from e
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:
        what = f"{path} is not a {FORMAT} document (format: {found!r})"
        raise ResultsError(what, path, "format")
    try:
        meta = {k: str(data[k]) for k in ("gupctl", "kernel", "machine", "hostname", "date",
                                           "device")}  # fmt: skip
        runs = [_run(d) for d in data["results"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ResultsError(f"{path} has a missing or malformed field ({e})", path, "fields") from e
    return SavedResults(format=FORMAT, results=runs, **meta)


def _no_constant(name: str) -> float:
    # json accepts NaN and Infinity, which no timing can be: a verdict on
    # them would be meaningless.
    raise ValueError(f"{name} is not a number a benchmark measures")


_INTS = ("size", "nr_pages", "nr_pages_per_call", "repeats", "threads", "gup_flags")


def _run(d: dict[str, Any]) -> RunResult:
    """One RunResult from its JSON; fields a later gupctl adds are ignored."""
    names = {f.name for f in dataclasses.fields(RunResult) if f.init}
    kw = {k: v for k, v in d.items() if k in names}
    kw["balance"] = Balance(**d["balance"])
    for name in _INTS:
        if not isinstance(kw.get(name, 0), int) or isinstance(kw.get(name), bool):
            raise ValueError(f"{name} is not an integer")
    for name in ("get_usec", "put_usec"):
        values = kw[name]
        if not isinstance(values, list) or not values or any(isinstance(v, bool) for v in values):
            raise ValueError(f"{name} is not a list of timings")
        try:  # the kernel's µs are unsigned integers
            kw[name] = samples.of(values)
        except (OverflowError, TypeError) as e:
            raise ValueError(f"{name} is not a list of timings") from e
    loop_ns = kw.get("loop_ns", [])
    if not isinstance(loop_ns, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in loop_ns
    ):
        raise ValueError("loop_ns is not a list of times")
    bound = kw.get("cpus", [])
    if not isinstance(bound, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in bound
    ):
        raise ValueError("cpus is not a list of CPU numbers")
    if bound and len(bound) != kw["threads"]:
        raise ValueError("cpus does not name one CPU per thread")
    for name in ("size", "nr_pages", "nr_pages_per_call", "repeats", "threads"):
        if kw[name] < 1:
            raise ValueError(f"{name} is not positive")
    # The statistics in the file are not read: RunResult derives them from
    # the samples, so that compare and plot read the same numbers.
    return RunResult(**kw)


@dataclass(frozen=True)
class RunKey:
    """What makes two runs comparable: everything but the repeats (and --gup-flags)."""

    command: str
    backing: str
    size: int
    pages_per_call: int  # in effect: 'all' is nr_pages
    threads: int
    write: bool

    @classmethod
    def of(cls, r: RunResult) -> RunKey:
        return cls(r.command, r.backing, r.size, r.pages_per_call, r.threads, r.write)


@dataclass(frozen=True)
class PhaseChange:
    """One phase (get or put) of a matched pair: medians in µs, ratio B/A, and the verdict."""

    median_a: float
    median_b: float
    ratio: float | None  # None when A's median is 0
    beyond_noise: bool | None  # None: fewer than 2 samples on a side
    verdict: str  # "faster", "slower", "within noise" or NEEDS_REPEATS


@dataclass(frozen=True)
class Pair:
    """A run of A and the run of B that measured the same thing."""

    key: RunKey
    repeats_a: int
    repeats_b: int
    get: PhaseChange
    put: PhaseChange
    # Each side's thread binding (--cpus): not in the key, as binding is how a
    # run was taken, not what it measured; compare says when they differ.
    cpus_a: list[int] = field(default_factory=list)
    cpus_b: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """`gupctl compare A B`: the matched pairs, and the runs only one side has."""

    a: str
    b: str
    kernel_a: str
    kernel_b: str
    pairs: list[Pair]
    only_in_a: list[RunKey]
    only_in_b: list[RunKey]


def beyond_noise(a: Samples, b: Samples) -> bool | None:
    """Whether samples `b` differ from samples `a` by more than run-to-run noise.

    The rule: a difference counts only when each run's median lies outside the
    other run's min..max range, i.e. B's median is below A's fastest sample or
    above A's slowest, and A's median likewise against B's.  Overlapping ranges
    are noise.  It needs at least 2 samples a side (repeats x threads); with
    fewer there is no range to judge by, and the answer is None.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    sa, sb = Stats.of(a), Stats.of(b)
    return not (sa.min <= sb.median <= sa.max) and not (sb.min <= sa.median <= sb.max)


def _phase(a: Samples, b: Samples) -> PhaseChange:
    med_a, med_b = Stats.of(a).median, Stats.of(b).median
    beyond = beyond_noise(a, b)
    if beyond is None:
        verdict = NEEDS_REPEATS
    elif beyond:
        verdict = "faster" if med_b < med_a else "slower"
    else:
        verdict = "within noise"
    return PhaseChange(med_a, med_b, med_b / med_a if med_a else None, beyond, verdict)


def compare(a: SavedResults, b: SavedResults, label_a: str, label_b: str) -> Comparison:
    """Pair the runs of `a` and `b` by RunKey, in A's order.

    A key that occurs more than once on a side (the same run saved twice) pairs
    its n-th occurrence in A with its n-th in B; the rest are one side's only.
    """
    pending: dict[RunKey, list[RunResult]] = {}
    for r in b.results:
        pending.setdefault(RunKey.of(r), []).append(r)
    pairs, only_a = [], []
    for ra in a.results:
        key = RunKey.of(ra)
        if not pending.get(key):
            only_a.append(key)
            continue
        rb = pending[key].pop(0)
        pairs.append(Pair(key, ra.repeats, rb.repeats, _phase(ra.get_usec, rb.get_usec),
                          _phase(ra.put_usec, rb.put_usec), ra.cpus, rb.cpus))  # fmt: skip
    # Identity, not equality: two equal runs in B are still two runs.
    left = {id(r) for rs in pending.values() for r in rs}
    only_b = [RunKey.of(r) for r in b.results if id(r) in left]
    return Comparison(label_a, label_b, a.kernel, b.kernel, pairs, only_a, only_b)
