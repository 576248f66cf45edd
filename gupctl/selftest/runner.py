"""The selftest runner: each case in a child process with a time limit.

A case that hangs or crashes marks itself failed and the run goes on (a child
stuck in the kernel may not die; it is left behind and reported).  Around each
case the runner reads the kernel log: a WARN, BUG, oops or "gup_test failure"
fails the case whatever its own verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

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
    status: str  # "pass", "fail", "skip"
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
        counts = {"pass": 0, "fail": 0, "skip": 0}
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


def run_one(case: Case, env: Env, timeout: float, log: kmsg.KernelLog | None) -> CaseResult:
    """Fork, run `case` in the child, and judge it with the kernel log too."""
    if log:
        log.read_new()
    start = time.monotonic()
    rfd, wfd = os.pipe()
    pid = process.fork()
    if pid == 0:
        os.close(rfd)
        os.setpgid(0, 0)  # the case and any child it forks: one group to kill
        _child(case, env, wfd)
    with contextlib.suppress(ProcessLookupError):  # a case that is already over
        os.setpgid(pid, pid)  # both sides set it: whichever runs first wins the race
    os.close(wfd)
    try:
        outcome = _wait(pid, rfd, timeout)
    except BaseException:  # SIGINT/SIGTERM (gupctl/cli/signals.py): no case outlives us
        _kill_group(pid)  # its group too: a COW sharer may outlive a reaped case
        # The signal may come after _wait() reaped the case (while it decodes
        # the verdict): then there is nothing left to wait for.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(rfd)
    seconds = round(time.monotonic() - start, 3)
    bad = kmsg.problems(log.read_new()) if log else []
    if bad:
        outcome = Outcome("fail", "kernel log: " + " | ".join(bad[:3]), outcome.details)
    return CaseResult(case.name, outcome.status, outcome.reason, seconds, outcome.details)


def run(cases: list[Case], env: Env, timeout: float = 120,
        progress: Callable[[CaseResult], None] | None = None) -> Report:  # fmt: skip
    """Run `cases` in order; `progress` sees each result as it comes."""
    results = []
    try:
        log: kmsg.KernelLog | None = kmsg.KernelLog()
    except OSError:
        log = None  # no /dev/kmsg access: the VM run's own dmesg check still applies
    try:
        for case in cases:
            result = run_one(case, env, timeout, log)
            results.append(result)
            if progress:
                progress(result)
    finally:
        if log:
            log.close()
    return Report.of(env.release, env.device, env.node, results)
