"""The pin balance of any workload: what `gupctl check -- CMD` measures.

CMD runs with its memory bound to a memory-only NUMA node: set_mempolicy(
MPOL_BIND) in the child between fork() and exec(), which exec keeps and
CMD's own children inherit.  Every pin of its memory, by whatever path the
kernel takes it (O_DIRECT through iov_iter_extract_pages(), io_uring's
registered buffers, RDMA, VFIO, gup_test), then moves that node's
nr_foll_pin_acquired and nr_foll_pin_released, as long as the page sits on
that node: a FOLL_LONGTERM pin of a page in ZONE_MOVABLE moves it elsewhere
first, and page cache already resident on another node is counted there.
On gupctl's VM the node has no ZONE_MOVABLE and nothing else allocates on
it; on other machines, other tasks' memory may fall back onto it.

What is outstanding when CMD exits can still be released by kernel work that
outlives it: io_uring tears its rings down in a workqueue, and the last
holder of an mm may be a /proc reader.  So the count is read again until it
is zero or `settle` seconds have passed; whatever is outstanding then is a
leak (a pin whose owner, such as an fd a surviving child keeps, lives on).

The node's counters are the node's, not CMD's: another process's pins there
(a second `gupctl check`, say) would be credited to CMD, and the release of
pins someone held before CMD started would hide CMD's own leak.  So gupctl
watches the node for a control window before CMD and one after settling,
and judges only when both were still and nobody held pins on the node when
CMD started; otherwise the verdict is "inconclusive", with the reason.  A
leak is still called one when the windows were still: pins held before can
only hide outstanding pins, never add them.
"""

from __future__ import annotations

import errno
import subprocess
import time
from dataclasses import dataclass, field

from gupctl import numa, process, vmstat
from gupctl.errors import GupctlError

SETTLE_SECONDS = 10.0
#: The control windows before CMD and after settling, as --check-balance's.
WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class CheckResult:
    """What `gupctl check` reports: its table and --json both come from this."""

    command: list[str]
    returncode: int  # CMD's; negative: the signal that ended it
    scope: str  # the node counted, e.g. "node1"
    seconds: float  # CMD's life
    acquired: int  # over CMD's life and the settling after it
    released: int
    outstanding_at_exit: int
    outstanding: int  # after settling; below 0: pins taken before CMD released during it
    settle_seconds: float  # how long settling took
    leaked: bool  # pins outstanding once CMD is gone and the kernel's work settled
    # Whether the node holds memory only: on a node with CPUs other processes'
    # pins count too, and the balance is CMD's plus theirs.
    exact: bool = True
    held_before: int = 0  # pins outstanding on the node when CMD started: others'
    # Pins taken or released on the node in the window before CMD, and in the
    # one after settling: others' work, which the deltas would credit to CMD.
    moved_before: int = 0
    moved_after: int = 0

    # Derived (__post_init__), so that the table and --json say the same.
    verdict: str = field(init=False)  # "balanced", "leak" or "inconclusive"
    reason: str = field(init=False)  # why it is inconclusive; "" otherwise

    def __post_init__(self) -> None:
        verdict, reason = "balanced", ""
        moved = self.moved_before or self.moved_after
        if moved:
            when = "before CMD" if self.moved_before else "after it settled"
            verdict = "inconclusive"
            reason = (f"{moved} pins were taken or released on {self.scope} in the "
                      f"{WINDOW_SECONDS:g} s {when}: another process pins memory "
                      "there")  # fmt: skip
        elif self.leaked:
            verdict = "leak"
        elif self.held_before > 0:
            verdict = "inconclusive"
            reason = (f"{self.held_before} pins were held on {self.scope} when CMD started: "
                      "their release during CMD would hide a leak of its own")  # fmt: skip
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "reason", reason)


def check(command: list[str], node: int, settle: float = SETTLE_SECONDS,
          stdout: int | None = None) -> CheckResult:  # fmt: skip
    """Run `command` bound to `node` (its stdout to the fd `stdout`, if given)
    and account for every pin of its memory."""
    window = vmstat.snapshot(node)
    time.sleep(WINDOW_SECONDS)
    before = vmstat.snapshot(node)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(command, stdout=stdout, preexec_fn=lambda: numa.bind_task(node))
    except OSError as e:
        raise GupctlError(f"cannot run {command[0]}", e.errno or errno.ENOEXEC) from None
    except subprocess.SubprocessError as e:  # preexec_fn: the node binding failed
        raise GupctlError(f"cannot bind {command[0]} to node {node}: {e}") from None
    try:
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # a signal (cli/signals.py) ended the wait
            process.kill_tree(proc.pid)  # CMD's children too: a shell's `sleep`
            proc.wait()
    ended = time.monotonic()
    at_exit = vmstat.snapshot(node)
    after = at_exit
    while after.outstanding - before.outstanding > 0 and time.monotonic() - ended < settle:
        time.sleep(0.05)
        after = vmstat.snapshot(node)
    outstanding = after.outstanding - before.outstanding
    time.sleep(WINDOW_SECONDS)
    later = vmstat.snapshot(node)
    return CheckResult(
        command=command, returncode=returncode, scope=after.scope, seconds=ended - start,
        acquired=after.nr_foll_pin_acquired - before.nr_foll_pin_acquired,
        released=after.nr_foll_pin_released - before.nr_foll_pin_released,
        outstanding_at_exit=at_exit.outstanding - before.outstanding, outstanding=outstanding,
        settle_seconds=time.monotonic() - ended, leaked=outstanding > 0,
        exact=node in numa.memory_only_nodes(), held_before=before.outstanding,
        moved_before=_moved(window, before), moved_after=_moved(after, later),
    )  # fmt: skip


def _moved(a: vmstat.PinCounters, b: vmstat.PinCounters) -> int:
    """Pins taken and released on the node between readings `a` and `b`."""
    return (b.nr_foll_pin_acquired - a.nr_foll_pin_acquired
            + b.nr_foll_pin_released - a.nr_foll_pin_released)  # fmt: skip
