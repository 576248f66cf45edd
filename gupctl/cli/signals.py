"""SIGINT, SIGTERM and SIGHUP end every command the same way: as an exception.

By default SIGTERM and SIGHUP kill Python outright, so nothing unwinds: a file
made by `--create` stays, a loop-mounted ext4 stays mounted, a selftest case's
child and a VM's QEMU run on.  Raised as `Interrupted` (a KeyboardInterrupt,
which the library's cleanup paths already expect), the signal unwinds every
`finally` and `with`, closing the gup_test file and so dropping its pins, and
the command exits with the shell's status, 128 + the signal's number.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from gupctl.process import SIGNALS


class Interrupted(KeyboardInterrupt):
    """The command was stopped by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(e: KeyboardInterrupt) -> int:
    """The shell's status for a process that `e` stopped: 128 + the signal."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _raise(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner:
        # A child forked without gupctl.process.fork(): a signal pending in
        # its copy of the interpreter was its parent's to handle.
        return
    # Cleanup must run to its end: a second Ctrl-C or a `kill` repeated by a
    # supervisor would otherwise abort an unmount or an unlink halfway.  A
    # stuck cleanup still yields to SIGKILL.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


_owner = 0  # the pid whose signals raise


@contextmanager
def unwinding() -> Iterator[None]:
    """Within: SIGINT, SIGTERM and SIGHUP raise `Interrupted` in this process;
    children forked by gupctl.process.fork() die of them instead.  The old
    handlers come back on the way out."""
    global _owner
    _owner = os.getpid()
    old = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
