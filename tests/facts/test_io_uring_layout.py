"""gupctl/io_uring.py's structures (gupctl/_cdefs.py's IO_URING) against each
kernel's own include/uapi/linux/io_uring.h: every member's offset and every
structure's size, as the C compiler lays them out."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from kernels_facts import SERIES, source_file

from gupctl._cdefs import ffi
from gupctl.io_uring import IORING_OP_WRITE_FIXED

STRUCTS = ("io_sqring_offsets", "io_cqring_offsets", "io_uring_params", "io_uring_sqe",
           "io_uring_cqe")  # fmt: skip


def _layout_program() -> tuple[str, list[str]]:
    """A C program printing each size and offset gupctl's declarations give, and their labels."""
    lines, labels = [], []
    for struct in STRUCTS:
        lines.append(f'printf("%zu\\n", sizeof(struct {struct}));')
        labels.append(f"sizeof({struct})")
        for name, _ in ffi.typeof(f"struct {struct}").fields:
            lines.append(f'printf("%zu\\n", offsetof(struct {struct}, {name}));')
            labels.append(f"{struct}.{name}")
    lines.append('printf("%d\\n", (int)IORING_OP_WRITE_FIXED);')
    labels.append("IORING_OP_WRITE_FIXED")
    body = "\n".join(lines)
    program = ("#include <stddef.h>\n#include <stdio.h>\n#include <linux/io_uring.h>\n"
               f"int main(void) {{\n{body}\nreturn 0;\n}}\n")  # fmt: skip
    return program, labels


def _ours(label: str) -> int:
    if label == "IORING_OP_WRITE_FIXED":
        return IORING_OP_WRITE_FIXED
    if label.startswith("sizeof("):
        return int(ffi.sizeof(f"struct {label[7:-1]}"))
    struct, name = label.split(".")
    return int(ffi.offsetof(f"struct {struct}", name))


def _headers(series: str, where: Path) -> str:
    """The kernel's io_uring.h, and the headers of its own it includes
    (linux/io_uring/zcrx.h in 7.x), under `where`/linux; its text."""
    text = source_file(series, "include/uapi/linux/io_uring.h")
    (where / "linux" / "io_uring").mkdir(parents=True)
    (where / "linux" / "io_uring.h").write_text(text)
    for sub in re.findall(r"#include <linux/io_uring/(\w+\.h)>", text):
        (where / "linux" / "io_uring" / sub).write_text(
            source_file(series, f"include/uapi/linux/io_uring/{sub}"))  # fmt: skip
    return text


@pytest.mark.parametrize("series", SERIES)
def test_io_uring_layout_is_the_kernels(series: str, tmp_path) -> None:
    text = _headers(series, tmp_path)
    program, labels = _layout_program()
    if "user_addr" not in text:  # before v6.5 (IORING_SETUP_NO_MMAP) its name was resv2
        program = program.replace("offsets, user_addr)", "offsets, resv2)")
    (tmp_path / "layout.c").write_text(program)
    subprocess.run(["gcc", "-I", str(tmp_path), "-o", str(tmp_path / "layout"),
                    str(tmp_path / "layout.c")], check=True)  # fmt: skip
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True)
    theirs = [int(v) for v in out.stdout.split()]
    wrong = [f"{lbl}: kernel {t}, gupctl {_ours(lbl)}"
             for lbl, t in zip(labels, theirs) if t != _ours(lbl)]  # fmt: skip
    assert len(theirs) == len(labels) and not wrong, wrong
