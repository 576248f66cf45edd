"""fork() that a signal cannot catch halfway.

gupctl's CLI turns SIGINT, SIGTERM and SIGHUP into exceptions
(gupctl/cli/signals.py).  Arriving during os.fork(), such a signal's Python
handler can run inside an at-fork hook (logging registers some), where an
exception is printed as "Exception ignored" and dropped, and in the child,
whose copy of the interpreter still has the parent's signal pending.
Blocked across the fork, the signals wait for ordinary code: the parent
handles them after os.fork() returns; the child starts with none pending.
"""

from __future__ import annotations

import os
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def fork() -> int:
    """os.fork(); in the child, SIGINT, SIGTERM and SIGHUP are back to their
    defaults, so a signal kills it instead of unwinding its parent's stack copy."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid
