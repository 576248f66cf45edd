"""What the selftest sets up once: a scratch ext4 filesystem for gup_longterm's file cases.

gup_longterm.c needs a file on a filesystem with writeback (ext4, xfs, btrfs)
to see R/W longterm pins refused.  Where none is given, a loop-mounted image
in tmpfs serves (root, mkfs.ext4 and loop support needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

IMAGE_MB = 64


def _run(*argv: str) -> str | None:
    """None when `argv` succeeded; else why not, in one line."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return f"{argv[0]} failed: {last}"


@contextmanager
def scratch_ext4(where: str = "/dev/shm") -> Iterator[tuple[str | None, str]]:
    """Yield (the mount point of a fresh ext4 filesystem, "") or (None, why not):
    the step that failed (mkfs.ext4 missing, mkfs or mount failing) and what
    it said.  Everything it created is removed on exit.
    """
    if not shutil.which("mkfs.ext4"):
        yield None, "mkfs.ext4 is not installed (e2fsprogs)"
        return
    work = Path(tempfile.mkdtemp(prefix="gupctl-ext4-", dir=where))
    image, mnt = work / "image", work / "mnt"
    mounted = False
    try:
        with open(image, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        mnt.mkdir()
        # The kernel may have ext4 and loop as modules (Debian): load them.
        _run("modprobe", "-q", "loop")
        _run("modprobe", "-q", "ext4")
        why = _run("mkfs.ext4", "-q", "-F", str(image)) or _run(
            "mount", "-t", "ext4", "-o", "loop", str(image), str(mnt))  # fmt: skip
        mounted = why is None
        yield (str(mnt), "") if mounted else (None, why or "")
    finally:
        # ismount too: a signal during `mount` (cli/signals.py) ends _run with
        # an exception, the mount may be made all the same.
        if mounted or os.path.ismount(mnt):
            _run("umount", str(mnt))
        shutil.rmtree(work, ignore_errors=True)
