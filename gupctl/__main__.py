"""`python -m gupctl` and the `gupctl` script.

Importing click and the commands is most of gupctl's start-up: Ctrl-C during
it exits as the shell expects (130), not with a traceback.
"""

import errno
import io
import os
import sys


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
    """The CLI, entered so that an interrupt during its imports is no traceback."""
    _standard_fds()
    try:
        from gupctl.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main(prog_name="gupctl")  # not "python -m gupctl" in usage and hints


if __name__ == "__main__":
    entry()
