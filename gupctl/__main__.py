"""`python -m gupctl` and the `gupctl` script.

Importing click and the commands is most of gupctl's start-up: Ctrl-C during
it exits as the shell expects (130), not with a traceback.
"""

import sys


def entry() -> None:
    """The CLI, entered so that an interrupt during its imports is no traceback."""
    try:
        from gupctl.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main(prog_name="gupctl")  # not "python -m gupctl" in usage and hints


if __name__ == "__main__":
    entry()
