"""gupctl's VM serves the host's Python files from guest memory (gupctl/vm/pyimage.py)."""

from __future__ import annotations

import importlib.util
import os

import click
import pytest


@pytest.mark.skipif(not os.environ.get("GUPCTL_IN_VM"), reason="a property of gupctl's VM")
def test_python_files_come_from_the_image_with_their_mtimes() -> None:
    with open("/proc/mounts") as f:
        root = [line.split() for line in f if line.split()[1] == "/"][-1]
    if "lowerdir=/pyimage:/userland:/lower" in root[3]:
        return _foreign_layers()
    assert root[2] == "overlay" and "lowerdir=/pyimage:/lower" in root[3], root
    # Python trusts a .pyc whose header holds its source's mtime: had the image
    # lost them, every guest start would compile what it imports again.
    source = click.__file__
    assert source is not None
    with open(importlib.util.cache_from_source(source), "rb") as f:
        header = f.read(16)
    assert int.from_bytes(header[8:12], "little") == int(os.stat(source).st_mtime) & 0xFFFFFFFF


def _foreign_layers() -> None:
    """Another architecture's guest (gupctl/vm/userland.py): its image holds
    gupctl._loop built for it, over the host's, and the Python distributions
    at the host's versions, which every user can read."""
    from gupctl import _loop  # type: ignore[attr-defined]
    from gupctl.vm import userland

    with open(_loop.__file__, "rb") as f:
        header = f.read(20)
    assert header[:4] == b"\x7fELF"
    assert _loop.lib.gupctl_stats is not None
    assert click.__file__ is not None and click.__file__.startswith(userland.SITE), click.__file__
    assert os.stat(click.__file__).st_mode & 0o004
