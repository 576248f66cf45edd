"""What every selftest case is given (Env) and what it returns (Outcome)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from gupctl import vmstat
from gupctl.errors import MappingError
from gupctl.memory import MemorySpec, hugetlb_page_size
from gupctl.selftest import resources


@dataclass(frozen=True)
class Env:
    """What every case may use: set up once by the runner."""

    device: str
    size: int
    node: int | None
    release: str
    ext4_dir: str | None
    tmpfs_dir: str = "/dev/shm"
    #: Each case's pin counts are exact: a memory-only node, and stat_refresh
    #: (root).  Elsewhere they are not judged per case; selftest() checks the
    #: whole run's balance between quiet control windows instead.
    exact_counts: bool = True
    #: Why ext4_dir is None: the step of making one that failed.
    no_ext4: str = ""
    #: Why there is no swap, where making one failed (resources.scratch_swap()).
    no_swap: str = ""
    #: The file whose flock overlapping cases hold around their pins
    #: (runner.py); None: cases run one at a time.
    pin_lock: str | None = None

    @contextlib.contextmanager
    def pinning(self) -> Iterator[None]:
        """Held around a case's pins and their count: no other case pins meanwhile."""
        if self.pin_lock is None:
            yield
            return
        fd = os.open(self.pin_lock, os.O_RDONLY | os.O_CLOEXEC)  # a flock of this case's own
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


@dataclass
class Outcome:
    status: str  # "pass", "fail", "skip", "xfail" (a failure upstream expects)
    reason: str = ""
    details: dict[str, object] = field(default_factory=dict)


def skip_if_no_hugepages(e: MappingError, spec: MemorySpec, length: int,
                         node: int | None) -> Outcome:  # fmt: skip
    """A skip when the pool of huge pages is what is missing (fewer free than
    `length` bytes need, in node `node`'s pool where the case is bound there);
    anything else (an EINVAL for a size the pool has, say) stays the case's
    failure."""
    if spec.hugetlb and e.errno == errno.ENOSYS:  # hugetlb_page_size(): no hugetlb at all
        return Outcome("skip", "HugeTLB is unavailable")  # upstream's words
    if not spec.hugetlb or e.errno not in (errno.ENOMEM, errno.EINVAL, errno.ENOSPC):
        raise e
    size = spec.hugetlb_size or hugetlb_page_size()
    pool = resources.hugepages_root(node) / f"hugepages-{size // 1024}kB"
    try:
        with open(f"{pool}/free_hugepages") as f:
            free = int(f.read())
    except OSError:
        return Outcome("skip", f"no pool of {size // 1024} kB huge pages ({e})")
    if free * size < length:
        return Outcome("skip", f"{free} free {size // 1024} kB huge pages, {length} bytes "
                       f"needed ({pool}/nr_hugepages)")  # fmt: skip
    raise e


def judged_pins(before: vmstat.PinCounters, env: Env, pinned: int,
                details: dict[str, object] | None = None) -> Outcome:  # fmt: skip
    """A pass if the pins taken since `before` on `env.node` all went back and
    were `pinned` or more, else a failure; a pass unjudged where the counts
    are not judged per case (Env.exact_counts).  Not an exact count: when
    GUP-fast finds a folio it may not pin longterm, it drops the pin it took
    and the slow path pins again, so the counters can move by more."""
    details = dict(details or {})
    if not env.exact_counts:
        return Outcome("pass", details=details)
    b = vmstat.Balance.between(before, vmstat.snapshot(env.node), pinned)
    details["balance"] = vars(b)
    if b.acquired == b.released >= pinned and b.outstanding_after == b.outstanding_before:
        return Outcome("pass", details=details)
    return Outcome("fail", f"pin balance on {b.scope}: at least {pinned} pinned, acquired "
                   f"{b.acquired}, released {b.released}, outstanding {b.outstanding_before} "
                   f"-> {b.outstanding_after}", details)  # fmt: skip
