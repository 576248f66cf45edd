"""output.write_file: regular files replaced whole, anything else written in
place or refused, never replaced (plot -o, selftest --junit, bench --save)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gupctl import output
from gupctl.errors import ResultsError


def test_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old and longer\n")
    output.write_file(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left


def test_symlink_to_a_file_keeps_the_link(tmp_path: Path) -> None:
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_text("old")
    link.symlink_to(target)
    output.write_file(str(link), "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_symlink_to_a_device_is_written_through(tmp_path: Path) -> None:
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    output.write_file(str(link), "x")
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


@pytest.mark.parametrize("where, code", [("fifo", errno.ENXIO), ("dir", errno.EISDIR),
                                         ("full", errno.ENOSPC)])  # fmt: skip
def test_not_a_regular_file_is_refused_and_kept(tmp_path: Path, where: str, code: int) -> None:
    path = {"fifo": tmp_path / "fifo", "dir": tmp_path, "full": Path("/dev/full")}[where]
    if where == "fifo":
        os.mkfifo(path)
    kind = stat.S_IFMT(os.stat(path).st_mode)
    with pytest.raises(ResultsError) as e:
        output.write_file(str(path), "x")
    assert e.value.errno == code
    assert stat.S_IFMT(os.stat(path).st_mode) == kind  # still a fifo, dir, device


def test_fifo_with_a_reader_gets_the_data(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    code = f"from gupctl import output; output.write_file({str(fifo)!r}, 'through')"
    for _ in range(100):  # until cat has it open
        ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if ran.returncode == 0:
            break
    assert ran.returncode == 0, ran.stderr
    assert reader.communicate(timeout=10)[0] == b"through"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dev_stdout_is_written_not_replaced() -> None:
    """As root, a rename over /dev/stdout would replace the system's symlink."""
    code = "from gupctl import output; output.write_file('/dev/stdout', 'to stdout\\n')"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, "to stdout\n"), ran.stderr
    assert os.path.islink("/dev/stdout")
