"""Time to a process's first gup_test ioctl, read from strace's log.

Start-up is the time from execve to the first ioctl: what the user waits for
before the kernel is asked anything.  A wall time to exit only bounds it.
"""

from __future__ import annotations

import re

#: The argv prefix: every thread, absolute timestamps, and (--seccomp-bpf)
#: stops at execve and ioctl only, so the rest runs untraced.  Python makes
#: an ioctl (TCGETS) per file it opens, so each import costs one stop.
ARGV = ["strace", "-f", "--seccomp-bpf", "-q", "-ttt", "-e", "trace=execve,ioctl"]
#: An ioctl of gup_test's type, 'g' (mm/gup_test.h), as strace prints one it
#: cannot name: ioctl(3, _IOC(_IOC_READ|_IOC_WRITE, 0x67, 0x2, 0x60), ...
GUP_IOCTL = re.compile(r"ioctl\(\d+, _IOC\([^,]*, 0x67,")
EXECVE_OK = re.compile(r"execve\(.* = 0$")


def span(log: str) -> float:
    """Seconds from the first successful execve to the first ioctl of
    gup_test's type, else to the first exit, in `strace -f -ttt` output."""
    events = [line.split(None, 2) for line in log.splitlines()]
    start = next(float(t) for _, t, call in events if EXECVE_OK.match(call))
    end = next((float(t) for _, t, call in events if GUP_IOCTL.match(call)), None)
    if end is None:
        end = next(float(t) for _, t, call in events if call.startswith("+++ exited"))
    return end - start
