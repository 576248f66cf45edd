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
    assert root[2] == "overlay" and "lowerdir=/pyimage:/lower" in root[3], root
    # Python trusts a .pyc whose header holds its source's mtime: had the image
    # lost them, every guest start would compile what it imports again.
    source = click.__file__
    assert source is not None
    with open(importlib.util.cache_from_source(source), "rb") as f:
        header = f.read(16)
    assert int.from_bytes(header[8:12], "little") == int(os.stat(source).st_mtime) & 0xFFFFFFFF
