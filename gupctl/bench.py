"""Running the struct gup_test commands: the benchmarks and the basic tests.

Each repeat is one ioctl over the whole buffer; the kernel times the get and
the put phases itself (get_delta_usec, put_delta_usec), so Python's overhead
never enters the numbers.  Threads share the buffer, as the selftest's -j does.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from gupctl import abi, balance, cpus, pagemap, samples, vmstat
from gupctl.device import Device, Repeats
from gupctl.errors import DeviceError, GupctlError, Truncated
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec, size_label
from gupctl.samples import Samples


@dataclass(frozen=True)
class RunSpec:
    """One run: `repeats` ioctls of `command` per thread over `size` bytes."""

    command: abi.Command
    size: int = 128 << 20
    nr_pages_per_call: int = 1  # abi.ALL_PAGES: everything in one call
    repeats: int = 1
    threads: int = 1
    write: bool = True  # FOLL_WRITE, OR'ed with gup_flags
    memory: MemorySpec = field(default_factory=MemorySpec)
    gup_flags: int = 0  # more FOLL_* bits (gupctl.flags), for this kernel's numbering
    cpus: tuple[int, ...] = ()  # thread k bound to cpus[k % len]; (): unbound

    @property
    def foll_flags(self) -> int:
        """The gup_flags the ioctl passes: `gup_flags`, plus FOLL_WRITE with `write`."""
        return self.gup_flags | (abi.FOLL_WRITE if self.write else 0)

    @property
    def label(self) -> str:
        """A short name for progress lines, e.g. 'pin_fast_benchmark 4 MiB n=512'."""
        per_call = abi.per_call_label(self.nr_pages_per_call, self.size // PAGE_SIZE)
        return f"{self.command.name.lower()} {size_label(self.size)} n={per_call}"


def matrix(
    commands: Iterable[abi.Command],
    sizes: Iterable[int],
    per_calls: Iterable[int],
    base: RunSpec | None = None,
) -> list[RunSpec]:
    """The sweep commands x sizes x pages-per-call, every other field from `base`.

    Commands vary slowest, so a sweep's table reads as one block per command.
    """
    base = base or RunSpec(abi.PIN_FAST_BENCHMARK)
    product = itertools.product(commands, sizes, per_calls)
    return [replace(base, command=c, size=s, nr_pages_per_call=n) for c, s, n in product]


@dataclass(frozen=True)
class Stats:
    """Min, median and max of one phase's samples, in µs."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Samples) -> Stats:
        low, median, high, _ = samples.summary(values)
        return cls(low, median, high)


@dataclass(frozen=True)
class RunResult:
    """What a run measured: the table and --json both come from this."""

    command: str
    backing: str
    size: int
    nr_pages: int
    nr_pages_per_call: int
    repeats: int
    threads: int
    write: bool
    get_usec: Samples
    put_usec: Samples
    # The samples are the record; these are derived from them (__post_init__),
    # so that the table, --json, compare and plot all read the same numbers.
    get: Stats = field(init=False)
    put: Stats = field(init=False)
    get_ns_per_page: float = field(init=False)
    put_ns_per_page: float = field(init=False)
    ioctl_ns: float | None = field(init=False)
    balance: vmstat.Balance
    gup_flags: int = 0  # as passed, FOLL_WRITE included
    # Each thread's wall time for its repeats, in ns, measured in-process around
    # the loop: what an ioctl costs gupctl, its own work included.  Empty in
    # files saved before gupctl measured it.
    loop_ns: list[int] = field(default_factory=list)
    # The CPU each thread was bound to (--cpus); empty: the scheduler's choice.
    cpus: list[int] = field(default_factory=list)
    # The folio size that backed most of the buffer after the run (pagemap,
    # kpageflags); None: page frames hidden (not root), or saved before gupctl read it.
    folio_size: int | None = None

    def __post_init__(self) -> None:
        for phase in ("get", "put"):
            values = getattr(self, f"{phase}_usec")
            if not isinstance(values, samples.Samples):  # a list, as tests write them
                values = samples.of(values)
                object.__setattr__(self, f"{phase}_usec", values)
            stats = Stats.of(values)
            object.__setattr__(self, phase, stats)
            object.__setattr__(self, f"{phase}_ns_per_page", stats.median * 1000 / self.nr_pages)
        per_thread = [ns / self.repeats for ns in self.loop_ns]
        mean = sum(per_thread) / len(per_thread) if per_thread else None
        object.__setattr__(self, "ioctl_ns", mean)

    @property
    def pages_per_call(self) -> int:
        """The pages per GUP call in effect: gup_test never asks for more than remain,
        so 'all' (and any count above nr_pages) is nr_pages."""
        return min(self.nr_pages_per_call, self.nr_pages)


def expected_pins(spec: RunSpec, mapping: Mapping | None = None) -> int | None:
    """Pins the run takes (and must release) on the counters' scope: one per
    page per ioctl, pin commands only, the shared zero page left out.

    Only memory that was neither prefaulted nor pinned for write can hold the
    zero page; there the pages are looked up (gupctl/pagemap.py), after the
    run, while the mapping lasts.  None: they could not be (not root).
    """
    if spec.command not in abi.PIN_COMMANDS:
        return 0
    per_ioctl = spec.size // PAGE_SIZE
    if mapping is not None and not spec.memory.prefault and not spec.write:
        try:
            frames = pagemap.frames(mapping.addr, spec.size)
        except GupctlError:
            return None
        per_ioctl = pagemap.pinnable(frames, spec.memory.numa_node)
    return per_ioctl * spec.repeats * spec.threads


def run(device: Device, spec: RunSpec, check_balance: bool = False,
        gate: AbstractContextManager[object] | None = None,
        folio: bool = False) -> RunResult:  # fmt: skip
    """Map the memory, issue the ioctls, and measure the pin balance around them,
    holding `gate` around those two (the selftest's cases pin one at a time);
    with `folio`, read which folio size backed the buffer (a pass over its
    pagemap: the CLI's tables show it, the selftest's cases need not pay for it).

    balance.measure() counts on a memory-only node (spec.memory.numa_node) as
    root; elsewhere, with `check_balance`, between control windows that must
    stay quiet, the ioctls repeated when others' pins disturbed them (the
    samples are the last attempt's); without it the balance is for show.
    """
    # The calling thread is thread 0, bound while it maps and prefaults (the
    # memory is touched where it will be pinned) and while it issues, not
    # around balance.measure(): that wakes every CPU of the process.
    first = cpus.for_thread(spec.cpus, 0)
    with contextlib.ExitStack() as unmap:
        with cpus.bound(first):  # the mapping is closed on any way out, as `with` would
            mapping = unmap.enter_context(Mapping(spec.memory, spec.size))

        def issue() -> list[Repeats]:
            with cpus.bound(first):
                measured, error = _issue_all(device, spec, mapping)
            if error is not None:
                raise error
            return measured

        with gate or contextlib.nullcontext():
            measured, pins = balance.measure(
                issue, lambda: expected_pins(spec, mapping), spec.memory.numa_node, check_balance
            )
        backed = folio_size(mapping) if folio else None
    gets, puts = samples.new(), samples.new()
    for r in measured:  # a memcpy per thread
        gets.extend(r.get_usec)
        puts.extend(r.put_usec)
    return RunResult(
        command=spec.command.name.lower(),
        backing=spec.memory.describe(),
        size=spec.size,
        nr_pages=spec.size // PAGE_SIZE,
        nr_pages_per_call=spec.nr_pages_per_call,
        repeats=spec.repeats,
        threads=spec.threads,
        write=spec.write,
        get_usec=gets,
        put_usec=puts,
        balance=pins,
        gup_flags=spec.foll_flags,
        loop_ns=[r.loop_ns for r in measured],
        cpus=cpus.per_thread(spec.cpus, spec.threads),
        folio_size=backed,
    )


def folio_size(mapping: Mapping) -> int | None:
    """The folio size that backs the most bytes of `mapping`; None where page
    frames are hidden (not root) or nothing is mapped."""
    try:
        sizes = pagemap.folio_sizes(mapping.addr, mapping.size)
    except GupctlError:
        return None
    return max(sizes, key=lambda s: (sizes[s], s)) if sizes else None


def _issue_all(
    device: Device, spec: RunSpec, mapping: Mapping
) -> tuple[list[Repeats], GupctlError | None]:
    """Run every thread's repeats; a failing thread stops, and the first error
    is returned once all threads have ended."""
    measured: list[Repeats] = []  # list.append is atomic under the GIL
    errors: list[GupctlError] = []
    stop = threading.Event()

    def worker(index: int = 0) -> None:
        try:
            with cpus.bound(cpus.for_thread(spec.cpus, index) if index else None):
                measured.append(_repeat(device, spec, mapping, stop.is_set))
        except GupctlError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, spec.threads)]
    for t in threads:
        t.start()
    try:
        worker()  # the calling thread is worker number one
    except BaseException:  # a signal (cli/signals.py): the others stop before the unmap
        stop.set()
        raise
    finally:
        for t in threads:
            t.join()
    return measured, (errors[0] if errors else None)


def _repeat(device: Device, spec: RunSpec, mapping: Mapping,
            stop: Callable[[], bool]) -> Repeats:  # fmt: skip
    """One thread's ioctls, through Device.repeat: its loop runs in C, because
    under emulation each Python statement costs about what a one-page ioctl does."""
    arg: Any = abi.ffi.new("struct gup_test *")
    arg.addr = mapping.addr
    arg.nr_pages_per_call = spec.nr_pages_per_call
    arg.gup_flags = spec.foll_flags
    write = bool(spec.foll_flags & abi.FOLL_WRITE)
    name = spec.command.name.lower()
    try:
        measured = device.repeat(spec.command, arg, spec.size, spec.repeats, stop)
    except DeviceError as e:
        # Where GUP's first call faults, mm/gup_test.c answers success with
        # size 0 and kmod/gupctl_gup.c answers that call's -EFAULT: one diagnosis.
        if e.errno != errno.EFAULT:
            raise
        raise Truncated(name, spec.size, 0, spec.memory.describe(), write) from None
    if arg.size != spec.size:
        raise Truncated(name, spec.size, int(arg.size), spec.memory.describe(), write)
    return measured
