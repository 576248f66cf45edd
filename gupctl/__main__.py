"""`python -m gupctl` and the `gupctl` script.

Importing click and the commands is most of gupctl's start-up.  Until a
command runs under cli/signals.py's handlers, SIGINT has its default action,
set first thing here: Ctrl-C during start-up ends the process by the signal,
as the shell expects (130), with no traceback and nothing yet to undo.
Python's own handler would raise KeyboardInterrupt wherever start-up was,
this module's class bodies included.  (Before this line, CPython's runpy
may still be looking for the module: a traceback of frozen frames only.)
"""

# _signal, not signal: the latter builds its IntEnums first, which takes long
# enough under emulation for a Ctrl-C to land in it.
import _signal

_signal.signal(_signal.SIGINT, _signal.SIG_DFL)

import errno  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


class ClosedStdout(io.TextIOBase):
    """sys.stdout where the caller closed it (>&-): writing data fails as on a
    closed descriptor (EBADF), which the CLI reports in one line."""

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def fileno(self) -> int:
        return 1  # /dev/null now (see _standard_fds)


def _standard_fds() -> None:
    """Fill closed fds 0-2 with /dev/null: otherwise the next file gupctl opens
    (the gup_test device) would become a child's stdin or stdout.  Writing data
    to a closed stdout still fails (ClosedStdout); a closed stderr loses only
    diagnostics (render._line)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            if os.open(os.devnull, os.O_RDWR) != fd:  # the lowest free fd: this one
                raise RuntimeError("fds 0-2 changed while filling them") from None
            if fd == 1:
                sys.stdout = ClosedStdout()


def entry() -> None:
    """The CLI (SIGINT is the default until a command runs: see above)."""
    _standard_fds()
    from gupctl.cli import main

    main(prog_name="gupctl")  # not "python -m gupctl" in usage and hints


if __name__ == "__main__":
    entry()
