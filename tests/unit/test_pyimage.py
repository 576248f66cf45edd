"""The guest's Python image (gupctl/vm/pyimage.py), read back by busybox cpio."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import click
import pytest

import gupctl
from gupctl.vm import pyimage


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GUPCTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_files_hold_what_a_command_imports_and_skip_the_rest() -> None:
    found = pyimage.files()
    paths = {p for p, _ in found}
    assert all(p.stat().st_size == st.st_size for p, st in found[:50])
    stdlib = Path(os.path.realpath(sysconfig.get_paths()["stdlib"]))
    for module in (os, click, gupctl):
        assert Path(os.path.realpath(module.__file__ or "")) in paths, module.__name__
    assert stdlib / "json" / "decoder.py" in paths
    assert not [p for p in paths if p.is_relative_to(stdlib / "test")]
    assert not [p for p in paths if ".opt-1.pyc" in p.name or ".opt-2.pyc" in p.name]
    assert all(p.is_absolute() and not p.is_symlink() for p in paths)


def test_unpacked_image_has_each_file_with_its_mode_and_mtime(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    (tree / "pkg" / "__pycache__").mkdir(parents=True)
    one, two = tree / "pkg" / "__init__.py", tree / "pkg" / "__pycache__" / "x.pyc"
    one.write_text("x = 1\n")
    two.write_bytes(b"\0\1\2")
    one.chmod(0o755)
    os.utime(one, (1_600_000_000, 1_600_000_000))
    dest = tmp_path / "image.cpio"
    pyimage.build([(one, one.stat()), (two, two.stat())], dest)
    out = tmp_path / "out"
    out.mkdir()
    busybox = shutil.which("busybox")
    assert busybox, "busybox (busybox-static) is needed"
    # -m: keep the archive's mtimes, as the kernel does (init/initramfs.c)
    subprocess.run([busybox, "cpio", "-i", "-d", "-m"], stdin=dest.open("rb"), cwd=out,
                   check=True, capture_output=True)  # fmt: skip
    root = out / pyimage.ROOT
    got_one = root / one.relative_to("/")
    assert got_one.read_text() == "x = 1\n"
    assert got_one.stat().st_mode & 0o777 == 0o755
    assert got_one.stat().st_mtime == 1_600_000_000  # Python checks .pyc against it
    assert (root / two.relative_to("/")).read_bytes() == b"\0\1\2"


def test_image_is_replaced_when_a_file_changes(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path, cache: Path) -> None:  # fmt: skip
    source = tmp_path / "m.py"
    source.write_text("a = 1\n")
    monkeypatch.setattr(pyimage, "files", lambda: [(source, source.stat())])
    first = pyimage.image()
    assert source.as_posix().encode() in first.read_bytes()
    source.write_text("a = 22\n")
    second = pyimage.image()
    assert second == first  # one image per environment, not one per edit
    assert b"a = 22\n" in second.read_bytes()
    assert len(list((cache / "pyimage").iterdir())) == 2  # the entry and its lock


def test_in_front_of_puts_the_image_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("a = 1\n")
    monkeypatch.setattr(pyimage, "files", lambda: [(source, source.stat())])
    initrd = tmp_path / "initramfs" / "i.cpio.gz"
    initrd.parent.mkdir()
    initrd.write_bytes(b"\x1f\x8b gzip data")
    joined = pyimage.in_front_of(initrd).read_bytes()
    image = pyimage.image().read_bytes()
    assert joined == image + b"\x1f\x8b gzip data"
    assert len(image) % 4 == 0  # the kernel finds the next archive on a 4-byte boundary
