"""A userland for a guest of another architecture, put together on this one.

On x86_64 the guest runs the host's own root (gupctl/vm/runner.py).  For
another architecture nothing of the host's runs there, and nothing of that
architecture runs here (no binfmt_misc), so the userland is assembled
without running any of it:

- Debian's packages (Python, a shell, the tools the selftest calls, busybox
  for the initramfs), unpacked for that architecture by `mmdebstrap
  --variant=extract`: apt resolves the closure, dpkg-deb unpacks it, no
  maintainer script runs.  The guest lays this root over the host's, so its
  /usr/bin/python3 and /bin/sh are that architecture's, and the host's
  paths (a checkout, the cache) are still there.
- The Python distributions gupctl and its tests import, at the versions the
  host has installed, from PyPI for that architecture's CPython (`pip install
  --target --platform`): only cffi's backend is native; the rest is the same
  pure Python the host runs.
- gupctl's own C extension (gupctl._loop), cross-compiled against that
  Python's headers (the limited API) with the kmod's cross toolchain.

Each is cached, keyed by what went into it.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gupctl import cache
from gupctl.errors import VmError
from gupctl.vm import bytecode, pyimage
from gupctl.vm.arch import Arch
from gupctl.vm.debian import SUITES as ARCHIVES
from gupctl.vm.debian import first_served, unpacked

#: The suites a foreign userland may come from, in order.
SUITES = ("trixie", "bookworm")
#: What the guest runs: Python and a shell and its tools; what gupctl and the
#: selftest call (mkfs.ext4, losetup, mkswap, swapon, mount, modprobe, fio);
#: busybox, the initramfs's; Python's headers, which gupctl._loop builds against.
PACKAGES = ("python3", "dash", "coreutils", "grep", "sed", "findutils", "libc-bin",
            "util-linux", "mount", "e2fsprogs", "kmod", "procps", "fio", "busybox-static",
            "libpython3-dev", "strace")  # fmt: skip
#: The distributions the guest imports: gupctl's requirements, and what the
#: kernel tests import (pytest, junitparser).
DISTRIBUTIONS = ("gupctl", "pytest", "junitparser")
#: The guest's interpreter.
PYTHON = "/usr/bin/python3"
#: manylinux platform tags pip may take a wheel of, per uname -m.
PLATFORMS = ("manylinux_2_17_{m}", "manylinux2014_{m}", "linux_{m}")


def root(arch: Arch) -> Path:
    """Debian's packages for `arch`, unpacked (cached): from SUITES in turn,
    the next where the archive lists what it does not serve (here, trixie's
    point releases for ppc64el and s390x answer 404)."""
    return first_served(
        SUITES,
        lambda suite: _root(arch, suite),
        f"Debian's archive does not serve {{}}'s {arch.dpkg} packages it lists",
    )


def busybox(userland: Path) -> Path:
    """The userland's static busybox: /usr/bin's (trixie) or /bin's (bookworm)."""
    found = [p for p in (userland / "usr/bin/busybox", userland / "bin/busybox") if p.exists()]
    return found[0] if found else userland / "usr/bin/busybox"


def suite_of(userland: Path) -> str:
    """The suite root() took `userland` from."""
    return (userland.parent / "suite").read_text()


def _root(arch: Arch, suite: str) -> Path:
    include = ",".join(PACKAGES)
    sources = [f"deb {ARCHIVES[suite]} {suite} main"]

    def make(scratch: Path) -> None:
        unpacked(arch.dpkg, suite, include, scratch / "root", f"a {suite} {arch.dpkg} userland")
        # What py3compile would have compiled, had the packages been installed.
        python = python_version(scratch / "root")
        for tree in (f"/usr/lib/python{python}", "/usr/lib/python3/dist-packages"):
            bytecode.compile_tree(bytecode.interpreter(python, suite), scratch / "root" / tree[1:],
                                  tree)  # fmt: skip
        (scratch / "suite").write_text(suite)

    key = cache.key([suite, include, arch.dpkg, *sources, "bytecode 2"])
    return cache.entry("userland", f"{arch.dpkg}-{key}", make) / "root"


def python_version(userland: Path) -> str:
    """The X.Y of the userland's python3 (its /usr/lib/pythonX.Y)."""
    found = sorted(p.name[6:] for p in (userland / "usr" / "lib").glob("python3.*")
                   if re.fullmatch(r"python3\.\d+", p.name))  # fmt: skip
    if not found:
        raise VmError(f"the userland at {userland} has no Python", "archive")
    return found[-1]


def pinned() -> list[str]:
    """NAME==VERSION of every installed distribution DISTRIBUTIONS need,
    gupctl itself excepted (the guest imports the host's)."""
    found = pyimage.closure(DISTRIBUTIONS)
    return sorted(f"{n}=={d.version}" for n, d in found.items() if n != "gupctl")


def site(arch: Arch, python: str, suite: str) -> Path:
    """The wheels of pinned() for `arch`'s CPython `python`, installed into a
    directory the guest puts on its PYTHONPATH (cached)."""
    wanted = pinned()
    platforms = [f"--platform={p.format(m=arch.machine_name)}" for p in PLATFORMS]

    def make(scratch: Path) -> None:
        argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--implementation=cp",
                f"--python-version={python}", *platforms, "--target", str(scratch / "site"),
                *wanted]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise VmError(f"installing gupctl's requirements for {arch.name} failed: {last}",
                          "archive", proc.stderr)  # fmt: skip
        bytecode.compile_tree(bytecode.interpreter(python, suite), scratch / "site", SITE)

    key = cache.key([arch.machine_name, python, suite, *wanted, "bytecode 2"])
    return cache.entry("site", f"{arch.machine_name}-{python}-{key}", make) / "site"


#: `gupctl` on the guest's PATH: the host's entry point is a script for the
#: host's interpreter.
WRAPPER = f'#!/bin/sh\nexec {PYTHON} -m gupctl "$@"\n'
WRAPPER_AT = Path("/usr/local/bin/gupctl")


def wrapper() -> Path:
    """WRAPPER in a file, to put at WRAPPER_AT in the guest (cached)."""

    def make(scratch: Path) -> None:
        (scratch / "gupctl").write_text(WRAPPER)
        (scratch / "gupctl").chmod(0o755)

    return cache.entry("site", f"bin-{cache.key([WRAPPER])}", make) / "gupctl"


def loop_extension(arch: Arch, toolchain: Path, userland: Path, python: str) -> Path:
    """gupctl._loop for `arch`: cffi's C source of gupctl/_loop_build.py,
    cross-compiled in `toolchain` (a root with `arch`'s cross compiler:
    debian.cross_buildroot()) against the Python headers of `userland`, for
    the limited API as setup.py builds it (cached)."""
    from gupctl import _loop_build
    from gupctl.vm import kmod

    header = kmod.source_dir() / "gup_test.h"
    builder = Path(_loop_build.__file__).read_bytes()
    build = kmod.CHROOT_DIR

    def make(scratch: Path) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its "generating ..."
            _loop_build.ffibuilder.emit_c_code(str(scratch / "_loop.c"))
        (scratch / "gup_test.h").write_bytes(header.read_bytes())
        # Python.h, and after the cross C library's own headers, the
        # multiarch pyconfig.h that python3.X/pyconfig.h includes.
        include = [f"-I{SYSROOT}/usr/include/python{python}", "-idirafter",
                   f"{SYSROOT}/usr/include"]  # fmt: skip
        cc = [f"{arch.triplet}-gcc", "-shared", "-fPIC", "-O2", "-Wall", *include,
              f"-I{build}", "-o", f"{build}/{EXTENSION}", f"{build}/_loop.c"]  # fmt: skip
        argv = kmod.in_root(toolchain, [(scratch, build), (userland, SYSROOT)], cc)
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise VmError(f"cross-compiling gupctl._loop for {arch.name} failed: "
                          f"{kmod.first_error(proc.stderr)}", "build", proc.stderr)  # fmt: skip

    key = cache.key([arch.triplet, python, str(toolchain), builder, header.read_bytes()])
    return cache.entry("loop", f"{arch.machine_name}-{key}", make) / EXTENSION


#: Where loop_extension()'s toolchain root sees the userland (a directory
#: debian.cross_buildroot() makes; the build is at kmod.CHROOT_DIR).
SYSROOT = "/gupctl-sysroot"
#: The file name setup.py gives gupctl._loop (the limited API's suffix).
EXTENSION = "_loop.abi3.so"


@dataclass(frozen=True)
class Guest:
    """What a guest of another architecture runs gupctl with."""

    #: The unpacked Debian root, laid over the host's (guest-init.sh).
    root: Path
    #: Its Python's X.Y.
    python: str
    #: Files the guest sees in guest memory (pyimage.layer()), guest path ->
    #: host file: the host's distributions built for it, under SITE, and
    #: gupctl._loop built for it, over the host's own build in the package.
    layer: dict[Path, Path]
    #: Its PYTHONPATH: the directory holding the host's gupctl, and SITE.
    pythonpath: tuple[str, ...]


#: Where the guest finds site(): in guest memory, readable by every user
#: (the cache under root's home is not), and imported without 9p.
SITE = "/opt/gupctl/site"


def prepare(arch: Arch, toolchain: Path) -> Guest:
    """The userland, Python distributions and extension for `arch`, built
    with `toolchain` (a root with its cross compiler), from the cache."""
    userland = root(arch)
    python = python_version(userland)
    package = Path(__file__).resolve().parents[1]
    layer = {
        package / EXTENSION: loop_extension(arch, toolchain, userland, python),
        WRAPPER_AT: wrapper(),
    }
    suite = suite_of(userland)
    built = site(arch, python, suite)
    tag = f"cpython-{python.replace('.', '')}"
    for path in built.rglob("*"):
        # Not the host's bytecode (pip compiled it for this Python, not the guest's).
        if path.is_file() and ("__pycache__" not in path.parts or f".{tag}." in path.name):
            layer[Path(SITE) / path.relative_to(built)] = path
    layer.update(bytecode.compile_package(bytecode.interpreter(python, suite), package, tag))
    return Guest(userland, python, layer, (str(package.parent), SITE))


def command(argv: list[str]) -> list[str]:
    """`argv` as the guest runs it: the host's Python (any python*) becomes the
    guest's, and `gupctl` its `python3 -m gupctl` (the host's entry points
    are scripts for the host's interpreter)."""
    if not argv:
        return argv
    name = Path(argv[0]).name
    if re.fullmatch(r"python(\d+(\.\d+)?)?", name):
        return [PYTHON, *argv[1:]]
    if name == "gupctl":
        return [PYTHON, "-m", "gupctl", *argv[1:]]
    return argv
