"""CPU lists and binding a thread to a CPU (sched_setaffinity).

`gupctl bench --cpus` binds thread k to the k-th CPU of its list.  Under
QEMU's TCG, where gupctl's own VM and CI run, upstream's gup_test took up to
twice as long free to move as bound to one CPU, in some processes and not
others (README, Performance): binding takes that out of a comparison.  The
list is spelt as the kernel spells cpulists
(Documentation/admin-guide/cputopology.rst): 1, 0,2 or 0-3,6.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from gupctl.errors import CpuError


def parse(text: str) -> tuple[int, ...] | None:
    """'0-2,5' as (0, 1, 2, 5), in the order written, repeats kept (two threads
    may share a CPU on purpose); None if `text` is no CPU list."""
    cpus: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not _number(low) or (dash and not _number(high)):
            return None
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last - first >= MAX_CPUS:
            return None
        cpus += range(first, last + 1)
    return tuple(cpus)


#: CONFIG_NR_CPUS is at most 8192 (arch/x86/Kconfig): a wider range is a typo.
MAX_CPUS = 8192


def _number(text: str) -> bool:
    return text.isascii() and text.isdecimal()


def format_list(cpus: set[int] | tuple[int, ...]) -> str:
    """(0, 1, 2, 5) as '0-2,5', as the kernel writes a cpulist."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu != run[-1] + 1:
            parts.append(_span(run))
            run = []
        run.append(cpu)
    return ",".join(parts + ([_span(run)] if run else []))


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def allowed() -> set[int]:
    """The CPUs this thread may run on (its affinity: cpuset and taskset included)."""
    return os.sched_getaffinity(0)


def for_thread(cpus: tuple[int, ...], index: int) -> int | None:
    """The CPU of thread `index` (0 is the calling thread), or None: unbound."""
    return cpus[index % len(cpus)] if cpus else None


def per_thread(cpus: tuple[int, ...], threads: int) -> list[int]:
    """Each thread's CPU, in thread order; empty when unbound."""
    return [cpu for k in range(threads) if (cpu := for_thread(cpus, k)) is not None]


def label(each: Sequence[int]) -> str:
    """Each thread's CPU as tables and plots show a bound run: '@1,0'; '' unbound."""
    return f"@{','.join(map(str, each))}" if each else ""


@contextmanager
def bound(cpu: int | None) -> Iterator[None]:
    """The calling thread bound to `cpu` (None: as it is) while the block runs;
    sched_setaffinity(0) binds a thread, not its process."""
    if cpu is None:
        yield
        return
    before = allowed()
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        raise CpuError(f"cannot bind a thread to CPU {cpu}", e.errno) from None
    except (OverflowError, ValueError):  # past what a cpu_set_t can hold
        raise CpuError(f"cannot bind a thread to CPU {cpu}", errno.EINVAL) from None
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
