"""The selftest runner: each case in a child process with a time limit.

A case that hangs or crashes marks itself failed and the run goes on (a child
stuck in the kernel may not die; it is left behind and reported).  Around each
case the runner reads the kernel log: a WARN, BUG, oops or "gup_test failure"
fails the case whatever its own verdict.  Cases of the gup matrix overlap two
at a time (overlaps()): one maps and prefaults while the other pins.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

from gupctl import kmsg, process
from gupctl.numa import bind_task
from gupctl.selftest.cases import Case
from gupctl.selftest.execute import run_case
from gupctl.selftest.outcome import Env, Outcome
from gupctl.vmstat import Balance


@dataclass
class CaseResult:
    """One case's verdict, as KTAP, JUnit and --json report it."""

    name: str
    status: str  # "pass", "fail", "skip", "xfail" (a failure upstream expects)
    reason: str
    seconds: float
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class Report:
    """The whole run; `counts` and `exit_code` derive from `results` (see of())."""

    kernel: str
    device: str
    node: int | None
    results: list[CaseResult]
    counts: dict[str, int]
    exit_code: int  # kselftest's: 0 pass, 1 any failure, 4 everything skipped
    #: The whole run's pins, where the cases' own counts are not exact
    #: (selftest() says how); None where every case judged its own.
    balance: Balance | None = None

    @classmethod
    def of(cls, kernel: str, device: str, node: int | None, results: list[CaseResult],
           balance: Balance | None = None) -> Report:  # fmt: skip
        counts = {"pass": 0, "fail": 0, "skip": 0, "xfail": 0}
        for r in results:
            counts[r.status] += 1
        code = 1 if counts["fail"] else 4 if results and counts["skip"] == len(results) else 0
        if balance is not None and not run_balanced(balance):
            code = 1
        return cls(kernel, device, node, results, counts, code, balance)


def run_balanced(b: Balance) -> bool:
    """The whole run gave back every pin it took: as many pins outstanding after
    it as before, with nothing pinned or unpinned in the control windows."""
    return b.outstanding_after == b.outstanding_before and b.quiet


def _child(case: Case, env: Env, wfd: int) -> None:
    """Runs in the forked child: never returns."""
    code = 0
    try:
        if env.node is not None:
            bind_task(env.node)  # page cache and anon memory alike land on the node
        outcome = run_case(case, env)
    except Exception as e:  # the runner reports it; nothing escapes a child
        outcome = Outcome("fail", f"{type(e).__name__}: {e}")
    try:
        os.write(wfd, json.dumps(asdict(outcome), default=str).encode())
    except OSError:
        code = 1
    os._exit(code)


def _wait(pid: int, rfd: int, timeout: float) -> Outcome:
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([rfd], [], [], max(left, 0))
        if not ready:
            _kill_group(pid)
            reaped = _reap(pid, 5)
            note = "" if reaped else "; the child did not die (stuck in the kernel?)"
            return Outcome("fail", f"timed out after {timeout:g} s{note}")
        data = os.read(rfd, 65536)
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"status {os.WEXITSTATUS(status)}")  # fmt: skip
        return Outcome("fail", f"the case's process died ({how}) without a verdict")
    return Outcome(**json.loads(b"".join(chunks)))


def _kill_group(pid: int) -> None:
    """SIGKILL the case `pid` and every process it forked (a COW sharer)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _reap(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
        time.sleep(0.05)
    return False


#: Cases in flight at once.  Cases that may overlap (overlaps()) map and
#: prefault their memory beside the case before them, the part of a case that
#: costs most under emulation, and take their pins only once that case has
#: given its own back (Env.pinning): each case's pin counts stay its own.
WIDTH = 2


def overlaps(case: Case) -> bool:
    """Whether `case` may run beside another: the gup matrix, but for hugetlb,
    whose pool on the node holds one case's pages (qemu.Machine)."""
    return case.kind == "gup" and case.params.get("memory") != "hugetlb"


@dataclass
class _Running:
    """A case's forked process, and the kernel-log problems read while it ran."""

    case: Case
    pid: int
    rfd: int
    start: float
    problems: list[str] = field(default_factory=list)


def _start(case: Case, env: Env) -> _Running:
    """Fork, and run `case` in the child."""
    rfd, wfd = os.pipe()
    pid = process.fork()
    if pid == 0:
        os.close(rfd)
        os.setpgid(0, 0)  # the case and any child it forks: one group to kill
        _child(case, env, wfd)
    running = _Running(case, pid, rfd, time.monotonic())
    try:
        with contextlib.suppress(ProcessLookupError):  # a case that is already over
            os.setpgid(pid, pid)  # both sides set it: whichever runs first wins the race
    except BaseException:  # a signal before the caller holds it: stopped here
        _stop(running)
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    return running


def _stop(running: _Running) -> None:
    """Kill a case still in flight, and its group: a COW sharer may outlive a
    case that _wait() has reaped already, and then there is nothing to wait for."""
    _kill_group(running.pid)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(running.pid, 0)


def _may_start(case: Case, flight: deque[_Running], width: int) -> bool:
    if not flight:
        return True
    return len(flight) < width and overlaps(case) and all(overlaps(r.case) for r in flight)


def _finish(done: _Running, timeout: float, log: kmsg.KernelLog | None,
            others: list[_Running]) -> CaseResult:  # fmt: skip
    """Wait for the oldest case in flight, and judge it; what the kernel log
    says now, it said while the `others` in flight ran too."""
    outcome = _wait(done.pid, done.rfd, max(done.start + timeout - time.monotonic(), 0))
    bad = kmsg.problems(log.read_new()) if log else []
    for r in others:
        r.problems += bad
    bad = done.problems + bad
    if bad:
        outcome = Outcome("fail", "kernel log: " + " | ".join(bad[:3]), outcome.details)
    seconds = round(time.monotonic() - done.start, 3)
    return CaseResult(done.case.name, outcome.status, outcome.reason, seconds, outcome.details)


def run(cases: list[Case], env: Env, timeout: float = 120,
        progress: Callable[[CaseResult], None] | None = None) -> Report:  # fmt: skip
    """Run `cases` in order, up to WIDTH at once where they may overlap, each
    judged by its verdict and by the kernel log of the time it ran (a problem
    read while two ran fails both); `progress` sees each result as it comes."""
    results: list[CaseResult] = []
    todo, flight = deque(cases), deque[_Running]()
    try:
        log: kmsg.KernelLog | None = kmsg.KernelLog()
    except OSError:
        log = None  # no /dev/kmsg access: the VM run's own dmesg check still applies
    try:
        with _pin_lock(env, any(map(overlaps, cases))) as env:
            if log:
                log.read_new()  # what came before the run is not its to judge
            while todo or flight:
                width = WIDTH if env.pin_lock else 1
                while todo and _may_start(todo[0], flight, width):
                    flight.append(_start(todo.popleft(), env))
                done = flight[0]
                results.append(_finish(done, timeout, log, list(flight)[1:]))
                flight.popleft()
                os.close(done.rfd)
                if progress:
                    progress(results[-1])
    except BaseException:  # SIGINT/SIGTERM (gupctl/cli/signals.py): no case outlives us
        for r in flight:
            _stop(r)
        raise
    finally:
        for r in flight:
            os.close(r.rfd)
        if log:
            log.close()
    return Report.of(env.release, env.device, env.node, results)


@contextlib.contextmanager
def _pin_lock(env: Env, wanted: bool) -> Iterator[Env]:
    """`env` with the lock overlapping cases take around their pins
    (Env.pinning): a memfd that each case opens anew through /proc, so that
    each holds a flock of its own, and that goes with the run.  Without exact
    per-case counts (no memory-only node, or no root to fold the counters),
    cases run one at a time, as the windows around the whole run expect."""
    if not wanted or not env.exact_counts:
        yield env
        return
    fd = os.memfd_create("gupctl-selftest-pins", os.MFD_CLOEXEC)
    try:
        yield replace(env, pin_lock=f"/proc/{os.getpid()}/fd/{fd}")
    finally:
        os.close(fd)
