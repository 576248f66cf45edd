"""Compiling abi_cross_probe.c for another architecture, and reading it back.

For test_abi_cross.py: each ABI's real compiler lays out kmod/gup_test.h
against that architecture's own uapi headers (linux/ioctl.h is where the
encodings differ), taken from Debian's linux-source tarball.  Nothing is
assembled or linked, so no cross libc or binutils is needed: clang emits
assembly (or LLVM IR where it has no code generator for the target), and for
GCC the compiler proper, cc1, is all that runs.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gupctl import cache

HERE = Path(__file__).parent
KMOD = HERE.parents[1] / "kmod"
PROBE = HERE / "abi_cross_probe.c"
CLANG = "clang-19"  # bookworm's newest (trixie has it too); it targets loongarch64
#: What is taken from the tarball: the generic uapi headers and each arch's.
WANTED = ("*/include/uapi/linux/*", "*/include/uapi/asm-generic/*", "*/arch/*/include/uapi/asm/*")
# `->NAME VALUE` in assembly (`$76` on x86, `#76` on m68k and arm), or in LLVM
# IR as the asm string's operand: `->NAME $0\22", "i"(i32 76)`.
VALUE = re.compile(r'->(\w+) (?:\$0\\22", "i"\(i\d+ |[$#]?)(-?(?:0x[0-9a-fA-F]+|\d+))')


class MissingTool(Exception):
    """A compiler or the kernel source is not installed; `package` provides it."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(f"{what} not found: apt-get install {package}")
        self.package = package


@dataclass(frozen=True)
class Toolchain:
    """How one ABI's compiler is run: `cc` is CLANG or a GNU target triplet."""

    arch: str  # the kernel's arch/ directory
    long_bytes: int  # sizeof(long): proves the flags picked the ABI meant
    cc: str
    flags: tuple[str, ...] = ()
    #: clang knows the ABI's layout but has no code generator for it: read LLVM IR
    ir: bool = False
    package: str = ""  # the Debian package with the compiler, if not the usual one

    def debian_package(self) -> str:
        return self.package or (CLANG if self.cc == CLANG else f"cpp-{self.cc}")


def linux_source() -> Path:
    """$GUPCTL_LINUX_SOURCE, else the newest /usr/src/linux-source-*.tar.xz."""
    explicit = os.environ.get("GUPCTL_LINUX_SOURCE")
    found = sorted(glob.glob("/usr/src/linux-source-*.tar.xz"), key=_version)
    if not explicit and not found:
        raise MissingTool("/usr/src/linux-source-*.tar.xz", "linux-source-6.12")
    return Path(explicit or found[-1])


def _version(path: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", Path(path).name)]


def uapi_headers(tarball: Path) -> Path:
    """The tarball's uapi headers, extracted once into gupctl's cache, with the
    wrappers `make headers_install` adds (below)."""
    st = tarball.stat()
    key = cache.key([str(tarball.resolve()), str(st.st_size), str(st.st_mtime_ns), *WANTED])
    name = tarball.name.removesuffix(".tar.xz")

    def make(scratch: Path) -> None:
        subprocess.run(["tar", "-xJf", str(tarball), "-C", str(scratch), "--strip-components=1",
                        "--wildcards", *WANTED], check=True)  # fmt: skip
        _install_wrappers(scratch)

    return cache.entry("uapi", f"{name}-{key}", make)


def _install_wrappers(root: Path) -> None:
    # headers_install gives every arch each mandatory-y header of
    # include/uapi/asm-generic/Kbuild it lacks as `#include <asm-generic/X>`
    # (asm/ioctl.h is such a wrapper on all but five arches).  It also drops
    # `#include <linux/compiler_types.h>` (an empty stub here) and unifdefs
    # with -D__EXPORTED_HEADERS__ (passed to the compiler instead).
    kbuild = (root / "include/uapi/asm-generic/Kbuild").read_text()
    mandatory = re.findall(r"^mandatory-y \+= (\S+)", kbuild, re.M)
    for arch in (root / "arch").iterdir():
        wrappers = root / "wrappers" / arch.name / "asm"
        wrappers.mkdir(parents=True)
        for header in mandatory:
            if not (arch / "include/uapi/asm" / header).exists():
                (wrappers / header).write_text(f"#include <asm-generic/{header}>\n")
    (root / "stub/linux").mkdir(parents=True)
    (root / "stub/linux/compiler_types.h").write_text("")


def compile_probe(tc: Toolchain, uapi: Path, out: Path) -> dict[str, int]:
    """Compile the probe with `tc` against `uapi`; the values it holds, as unsigned 32-bit."""
    includes = [KMOD, uapi / "arch" / tc.arch / "include/uapi", uapi / "wrappers" / tc.arch,
                uapi / "stub", uapi / "include/uapi"]  # fmt: skip
    args = ["-nostdinc", "-ffreestanding", "-D__EXPORTED_HEADERS__", *tc.flags,
            *(f"-I{d}" for d in includes), str(PROBE)]  # fmt: skip
    if tc.cc == CLANG:
        argv = [_which(CLANG, tc), "-S", *(["-emit-llvm"] if tc.ir else []), "-o", str(out), *args]
    else:
        argv = _gcc(tc, args, out)
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stderr}"
    return {k: int(v, 0) & 0xFFFFFFFF for k, v in VALUE.findall(out.read_text())}


def _gcc(tc: Toolchain, args: list[str], out: Path) -> list[str]:
    gcc = shutil.which(f"{tc.cc}-gcc")
    if gcc:
        return [gcc, "-S", "-o", str(out), *args]
    # Debian's cpp-TRIPLET carries cc1 and a driver that only preprocesses:
    # ask it (-###) how it would run cc1 for these flags, and run that with
    # -S instead of -E.  That is all `gcc -S` does.
    cpp = _which(f"{tc.cc}-cpp", tc)
    plan = subprocess.run([cpp, "-###", *args], capture_output=True, text=True).stderr
    cc1 = next(shlex.split(line) for line in plan.splitlines() if "/cc1 " in line)
    return [a for a in cc1 if a != "-E"] + ["-o", str(out)]


def _which(program: str, tc: Toolchain) -> str:
    path = shutil.which(program)
    if not path:
        raise MissingTool(program, tc.debian_package())
    return path
