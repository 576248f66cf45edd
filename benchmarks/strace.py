"""Time to a process's first gup_test ioctl, read from strace's log.

Start-up is the time from execve to the first ioctl: what the user waits for
before the kernel is asked anything.  A wall time to exit only bounds it.
Tracing costs too: a stop at each traced syscall, and python makes an ioctl
(TCGETS) per file it opens, so the more a command imports, the more it pays.
"""

from __future__ import annotations

import re

#: The argv prefix: every thread and child, absolute timestamps, and
#: (--seccomp-bpf) stops at execve and ioctl only, so the rest runs untraced.
#: Add "-o FILE": only then does each line begin with the PID.
ARGV = ["strace", "-f", "--seccomp-bpf", "-q", "-ttt", "-e", "trace=execve,ioctl"]
#: An ioctl of gup_test's type, 'g' (mm/gup_test.h), as strace prints one it
#: cannot name: ioctl(3, _IOC(_IOC_READ|_IOC_WRITE, 0x67, 0x2, 0x60), ...
GUP_IOCTL = re.compile(r"ioctl\(\d+, _IOC\([^,]*, 0x67,")
EXECVE_OK = re.compile(r"execve\(.* = 0$")
LINE = re.compile(r"(\d+) +(\d+\.\d+) (.*)")
EXIT = re.compile(r"\+\+\+ (exited with|killed by) ")


def span(log: str) -> float:
    """Seconds from the first successful execve to the first ioctl of
    gup_test's type in any thread or child (a selftest case runs in one),
    else to the exit of the process that exec'd, in the output of
    `strace -f -o FILE -ttt` (PID, time, event on each line)."""
    lines = [LINE.match(line) for line in log.splitlines() if line.strip()]
    if not all(lines):
        raise ValueError("not `strace -f -o FILE -ttt` output: a line without PID and time")
    events = [m.groups() for m in lines if m]
    start = next(((pid, float(t)) for pid, t, call in events if EXECVE_OK.match(call)), None)
    if start is None:
        raise ValueError("strace saw no successful execve")
    end = next((float(t) for _, t, call in events if GUP_IOCTL.match(call)), None)
    if end is None:
        end = next((float(t) for pid, t, call in events if pid == start[0] and EXIT.match(call)),
                   None)  # fmt: skip
    if end is None:
        raise ValueError(f"strace saw neither a gup_test ioctl nor the exit of {start[0]}")
    return end - start[1]
