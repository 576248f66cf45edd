"""Bytecode for another architecture's guest, compiled on this machine.

The foreign guest's Python (gupctl/vm/userland.py) would otherwise compile
every module it imports, at every start, under TCG: Debian's packages come
unpacked, not installed (py3compile never ran), the distributions pip put
together carry the host's bytecode, and the guest may write none.  Bytecode
is the same on every architecture for one CPython version, so Debian's own
build of that version for this machine (the same suite's, unpacked into the
cache and run with its own loader and C library) compiles it all here.  Each
.pyc names its source as the guest sees it (compileall's -s and -p) and
holds that source's mtime and size, which the guest sees unchanged.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from gupctl import cache
from gupctl.errors import VmError
from gupctl.vm.arch import ARCHES
from gupctl.vm.debian import MIRROR, unpacked


def interpreter(python: str, suite: str) -> list[str]:
    """argv that runs Debian's pythonX.Y (`python`) of `suite` for this machine, here."""
    dpkg = next((a.dpkg for a in ARCHES.values() if a.machine_name == platform.machine()), None)
    if dpkg is None:
        raise VmError(f"gupctl knows no Debian architecture for {platform.machine()}", "usage")
    include = f"python{python}-minimal,libpython{python}-stdlib"

    def make(scratch: Path) -> None:
        unpacked(dpkg, suite, include, scratch / "root", f"Debian's python{python}")

    key = cache.key([suite, include, dpkg, MIRROR])
    root = cache.entry("userland", f"{dpkg}-python{python}-{key}", make) / "root"
    # bookworm's packages are not merged into /usr: look in both.
    loader = next(iter(sorted([*root.glob("lib*/ld-linux*.so*"),
                               *root.glob("usr/lib*/ld-linux*.so*")])), None)  # fmt: skip
    if loader is None:
        raise VmError(f"no dynamic loader in {root}", "archive")
    libs = [str(root / d / f"{platform.machine()}-linux-gnu") for d in ("lib", "usr/lib")]
    return [str(loader), "--library-path", ":".join(libs),
            str(root / "usr" / "bin" / f"python{python}")]  # fmt: skip


#: The interpreter's environment: none of this process's PYTHON* variables
#: (a PYTHONPATH of the host's 3.11 modules, PYTHONDONTWRITEBYTECODE).
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def compile_tree(python: list[str], tree: Path, inside: str) -> None:
    """Compile every module under `tree`, which the guest sees at `inside`.
    One process: compileall's workers (-j) would start the interpreter
    without the loader interpreter() runs it with."""
    argv = [*python, "-m", "compileall", "-q", "-s", str(tree), "-p", inside, str(tree)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    # compileall exits 1 for a module that does not compile (lib2to3's test
    # data, Python 2 files in packages' tests): those the guest never imports.
    if proc.returncode not in (0, 1):
        raise VmError(f"compiling {tree} for the guest failed", "build", proc.stdout + proc.stderr)


def compile_package(python: list[str], package: Path, tag: str) -> dict[Path, Path]:
    """Bytecode of every module of `package` (the host's gupctl), compiled into
    the cache: {where the guest finds it: the file} (cached by every source's
    path, size and mtime)."""
    sources = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    parts: list[str | bytes] = [*python, tag]
    for src in sources:
        st = src.stat()
        parts.append(f"{src}\0{st.st_size}\0{st.st_mtime_ns}")

    def make(scratch: Path) -> None:
        script = ("import py_compile, sys\n"
                  "for src, dest in zip(sys.argv[1::2], sys.argv[2::2]):\n"
                  "    py_compile.compile(src, dest, doraise=True)\n")  # fmt: skip
        pairs = [str(x) for src in sources for x in (src, scratch / _relative(src, package, tag))]
        proc = subprocess.run([*python, "-c", script, *pairs], capture_output=True, text=True,
                              env=ENV)  # fmt: skip
        if proc.returncode != 0:
            raise VmError(f"compiling {package} for the guest failed", "build", proc.stderr)

    entry = cache.entry("bytecode", f"{tag}-{cache.key(parts)}", make)
    return {src.parent / "__pycache__" / f"{src.stem}.{tag}.pyc":
            entry / _relative(src, package, tag) for src in sources}  # fmt: skip


def _relative(src: Path, package: Path, tag: str) -> Path:
    """Where compile_package() keeps `src`'s bytecode, under its entry."""
    return src.parent.relative_to(package.parent) / f"{src.stem}.{tag}.pyc"
