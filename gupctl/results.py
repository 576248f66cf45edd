"""Saved benchmark results (`gupctl bench --save`), and comparing two of them.

A saved file is one JSON document, `SavedResults`: where and when the runs
were made, and every RunResult exactly as `gupctl bench --json` prints it.

Comparing pairs the runs of two files that measured the same thing, and says
for the get and the put phase whether B differs from A by more than the
run-to-run noise (see `beyond_noise`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

from gupctl import __version__, output, schema
from gupctl.bench import RunResult, Stats
from gupctl.errors import ResultsError
from gupctl.samples import Samples

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
        raw = _read(path)
        text = raw.decode()
    except FileNotFoundError as e:
        raise ResultsError(f"{path} does not exist", path, "missing", e.errno) from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})", path,
                           "json") from e  # fmt: skip
    except OSError as e:
        what, err = f"cannot read {path}", e.errno
        raise ResultsError(what, path, "unreadable", err) from e
    if len(raw) > MAX_BYTES:
        what = f"{path} is larger than {MAX_BYTES >> 20} MiB, more than any saved run"
        raise ResultsError(what, path, "json")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ResultsError(f"{path} is not JSON ({e})", path, "json") from e
    except RecursionError as e:  # json recurses per nesting level
        raise ResultsError(f"{path} nests too deeply to be results", path, "json") from e
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:
        what = f"{path} is not a {FORMAT} document (format: {schema.shown(found)})"
        raise ResultsError(what, path, "format")
    try:
        missing = next((k for k in (*META, "results") if k not in data), None)
        if missing:
            raise schema.SchemaError(missing, "is missing")
        meta = {k: schema.check(str, data[k], k) for k in META}
        runs = schema.check(list[dict], data["results"], "results")
        results = [_run(d, f"results[{i}]") for i, d in enumerate(runs)]
    except schema.SchemaError as e:
        raise ResultsError(f"{path}: {e}", path, "fields") from e
    return SavedResults(format=FORMAT, results=results, **meta)


#: A saved run of 10 million repeats is about 200 MiB; past this, a file is
#: something else (/dev/zero) and reading it all would exhaust memory.
MAX_BYTES = 256 << 20


def _read(path: str) -> bytes:
    """Up to MAX_BYTES + 1 bytes of `path`.  Opened non-blocking: a fifo nobody
    writes then reads as empty (EOF) instead of waiting for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        os.set_blocking(fd, True)
        return f.read(MAX_BYTES + 1)


META = ("gupctl", "kernel", "machine", "hostname", "date", "device")


def _no_constant(name: str) -> float:
    # json accepts NaN and Infinity, which no timing can be: a verdict on
    # them would be meaningless.
    raise ValueError(f"{name} is not a number a benchmark measures")


def _run(d: dict[str, Any], where: str) -> RunResult:
    """One RunResult from its JSON (schema.build checks each field's type),
    then what the types cannot say: the counts are positive, the samples
    there, one CPU per thread."""
    for name in ("get_usec", "put_usec"):
        if d.get(name) == []:
            raise schema.SchemaError(f"{where}.{name}", "has no samples")
    kw = schema.kwargs(RunResult, d, where)
    for name in ("size", "nr_pages", "nr_pages_per_call", "repeats", "threads"):
        if kw[name] < 1:  # before RunResult divides by them
            raise schema.SchemaError(f"{where}.{name}", "is not positive")
    if any(ns <= 0 for ns in kw.get("loop_ns", [])):
        raise schema.SchemaError(f"{where}.loop_ns", "holds a time that is not positive")
    if kw.get("folio_size") is not None and kw["folio_size"] < 1:
        raise schema.SchemaError(f"{where}.folio_size", "is not a positive size")
    cpus = kw.get("cpus", [])
    if any(cpu < 0 for cpu in cpus):
        raise schema.SchemaError(f"{where}.cpus", "holds a negative CPU number")
    if cpus and len(cpus) != kw["threads"]:
        raise schema.SchemaError(f"{where}.cpus", "does not name one CPU per thread")
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
