"""The guest's Python from guest memory: the host's Python files in a cpio.

The guest sees the host's root over 9p.  Under TCG each 9p request is a round
trip through emulated virtio and QEMU, and with cache=loose the guest still
makes one to open and one to close every file, and one per directory it
lists: a Python start opens a few dozen files, `gupctl bench` about two
hundred, pytest more.  This module packs the files Python imports (the
standard library, and the installed distributions gupctl and the kernel
tests need) into an uncompressed cpio that runner.py puts in front of the
initramfs.  The guest kernel unpacks it into memory at boot (no block
driver, no filesystem module, no decompression under emulation), and
guest-init.sh lays it over the host root as the overlay's top lower layer:
what it holds is read from memory at the same path; what it leaves out is
still found over 9p beneath it.  So leaving a file out only costs time, and
the image holds each file as the host has it, mtime included (Python
checks a .pyc against its source's).

Cached, one image per Python environment, with the key of every packed
file's path, size and mtime beside it: a changed file replaces the image,
and a stale one is never used.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

from gupctl import cache
from gupctl.vm.initramfs import Cpio

#: Where the image's files are unpacked in the guest's initramfs root.
ROOT = "pyimage"
#: Distributions packed with what they require: gupctl itself, and pytest,
#: which the kernel tests run in the guest.  Others are read over 9p.
DISTRIBUTIONS = ("gupctl", "pytest")
#: Standard library directories no gupctl command imports (the test suite
#: alone is 123 MB).
STDLIB_SKIP = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
     "__phello__", "pydoc_data"}
)  # fmt: skip
#: Bytecode for -O and -OO, which the guest never runs.
OPTIMIZED = re.compile(r"\.opt-[12]\.pyc$")


def _walk(top: str, skip: frozenset[str] = frozenset()) -> Iterator[str]:
    """Files under `top`, without the directories named in `skip` or config-*
    (the static library and Makefile the interpreter was built with)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("config-"))
        for name in sorted(filenames):
            if not OPTIMIZED.search(name):
                yield os.path.join(dirpath, name)


def _requires(dist: metadata.Distribution) -> list[str]:
    """The names of what `dist` requires outside any extra."""
    names = []
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        match = re.match(r"[A-Za-z0-9._-]+", req)
        if match:
            names.append(match.group(0))
    return names


def closure(names: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The installed distributions `names` name and everything they require,
    by normalized name; what is not installed (or a marker excluded) is left out."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        todo += _requires(dist)
    return found


def _distribution_files(names: tuple[str, ...] = DISTRIBUTIONS) -> Iterator[str]:
    """The installed files of `names` and of everything they require."""
    for dist in closure(names).values():
        base = os.path.realpath(str(dist.locate_file("")))
        for f in dist.files or []:
            yield os.path.normpath(os.path.join(base, f))


def files() -> list[tuple[Path, os.stat_result]]:
    """Every file the image holds, with its stat: absolute, regular (not a
    symlink), readable.  Their directories are the real ones (symlinks
    resolved), as the guest finds them under the overlay.  Stat once here:
    the key and the archive use the same result (3,000 files and more)."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    own = os.path.realpath(Path(__file__).parents[1])  # a checkout, or installed
    found: dict[str, os.stat_result] = {}
    for path in (*_walk(stdlib, STDLIB_SKIP), *_distribution_files(), *_walk(own)):
        try:
            st = os.lstat(path)
        except OSError:
            continue  # RECORD names a file that is gone: read over 9p, or not at all
        if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
            found[path] = st
    return [(Path(p), found[p]) for p in sorted(found)]


def _parents(path: Path, made: set[str], archive: Cpio) -> None:
    for parent in reversed(path.parents[:-1]):  # '/' itself is the image's root
        name = f"{ROOT}{parent}"
        if name not in made:
            # A layer() path may exist only in the guest.
            mtime = int(parent.stat().st_mtime) if parent.exists() else 0
            archive.dir(name, mtime=mtime)
            made.add(name)


def build(paths: list[tuple[Path, os.stat_result]], dest: Path) -> None:
    """Write the cpio of `paths` (absolute, with their stat) under ROOT to `dest`."""
    archive = Cpio()
    made = {ROOT}
    archive.dir(ROOT)
    for path, st in paths:
        _parents(path, made, archive)
        archive.file(f"{ROOT}{path}", path.read_bytes(), stat.S_IMODE(st.st_mode),
                     int(st.st_mtime))  # fmt: skip
    dest.write_bytes(archive.finish())


def _whole(want: str) -> Callable[[Path], bool]:
    """cache.entry's test of an entry that is replaced, not kept beside its
    successor, when what went into it changes: its `key` file says `want`."""

    def whole(entry: Path) -> bool:
        try:
            return (entry / "key").read_text() == want
        except OSError:
            return False

    return whole


def image() -> Path:
    """The cached image of this environment's Python files (made here if
    missing or stale).  One per environment, replaced when a file changes:
    gupctl's own modules change with every edit in a checkout."""
    paths = files()
    parts: list[str | bytes] = [sys.version, Path(__file__).read_bytes()]
    for path, st in paths:
        parts.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}")
    want = cache.key(parts)

    def make(scratch: Path) -> None:
        build(paths, scratch / "image.cpio")
        (scratch / "key").write_text(want)

    name = f"{sys.implementation.cache_tag}-{cache.key([sys.prefix])}"
    return cache.entry("pyimage", name, make, _whole(want)) / "image.cpio"


def in_front_of(initrd: Path, img: Path | None = None) -> Path:
    """`initrd` with this environment's image (or the image `img`) in front
    (the guest kernel unpacks one archive after the other), cached per
    initramfs and image, and replaced with the image."""
    img = img or image()
    key_file = img.parent / "key"
    want = key_file.read_text() if key_file.exists() else img.parent.name

    def make(scratch: Path) -> None:
        with open(scratch / "initrd", "wb") as out:
            for part in (img, initrd):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        (scratch / "key").write_text(want)

    name = f"{initrd.parent.name}-{img.parent.name}"
    return cache.entry("initrd", name, make, _whole(want)) / "initrd"


def layer(files: dict[Path, Path]) -> Path:
    """A cpio that shows each host file `files[at]` at the guest path `at`
    (absolute), over everything beneath it: for a guest of another
    architecture, its own build of a file the host's tree has in its place
    (gupctl._loop).  Cached by the files' paths and contents."""
    parts: list[str | bytes] = [Path(__file__).read_bytes()]
    for at, src in sorted(files.items()):
        parts += [str(at), src.read_bytes()]
    want = cache.key(parts)

    def make(scratch: Path) -> None:
        archive = Cpio()
        made = {ROOT}
        archive.dir(ROOT)
        for at, src in sorted(files.items()):
            _parents(at, made, archive)
            archive.file(f"{ROOT}{at}", src.read_bytes(), stat.S_IMODE(src.stat().st_mode),
                         int(src.stat().st_mtime))  # fmt: skip
        (scratch / "image.cpio").write_bytes(archive.finish())

    return cache.entry("pyimage", f"layer-{want}", make) / "image.cpio"
