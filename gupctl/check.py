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
"""

from __future__ import annotations

import errno
import subprocess
import time
from dataclasses import dataclass

from gupctl import numa, process, vmstat
from gupctl.errors import GupctlError

SETTLE_SECONDS = 10.0


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


def check(command: list[str], node: int, settle: float = SETTLE_SECONDS,
          stdout: int | None = None) -> CheckResult:  # fmt: skip
    """Run `command` bound to `node` (its stdout to the fd `stdout`, if given)
    and account for every pin of its memory."""
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
    return CheckResult(
        command=command, returncode=returncode, scope=after.scope, seconds=ended - start,
        acquired=after.nr_foll_pin_acquired - before.nr_foll_pin_acquired,
        released=after.nr_foll_pin_released - before.nr_foll_pin_released,
        outstanding_at_exit=at_exit.outstanding - before.outstanding, outstanding=outstanding,
        settle_seconds=time.monotonic() - ended, leaked=outstanding > 0,
        exact=node in numa.memory_only_nodes(),
    )  # fmt: skip
