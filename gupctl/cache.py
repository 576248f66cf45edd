"""gupctl's cache: one directory, one way to put things into it.

Every artefact gupctl makes (kmod builds, kernels, initramfs images, unpacked
Debian packages, build roots) is named by a key over what went into it and
built by `entry()`: under an exclusive lock, in a scratch directory beside
the entry, renamed into place only when complete.  Two gupctl runs asking
for the same entry build it once; an interrupted build leaves no entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gupctl.errors import EnvError


def cache_dir() -> Path:
    """$GUPCTL_CACHE, else $XDG_CACHE_HOME/gupctl, else ~/.cache/gupctl;
    EnvError (naming the variable) for a place gupctl cannot use."""
    explicit = os.environ.get("GUPCTL_CACHE")
    if explicit:
        return _usable("GUPCTL_CACHE", explicit, Path(explicit))
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return _usable("XDG_CACHE_HOME", base, Path(base) / "gupctl")
    return Path.home() / ".cache" / "gupctl"


#: Characters a cache path cannot hold: QEMU's -drive and -virtfs split
#: options at commas, and the guest's kernel command line at white space.
_UNSAFE = frozenset(",") | frozenset(chr(c) for c in (*range(0x21), 0x7F))


def _usable(variable: str, value: str, path: Path) -> Path:
    """`path` (from `variable`) if the cache can live there."""
    if not path.is_absolute():
        raise EnvError(variable, value, "is not an absolute path", "cache")
    if _UNSAFE & set(str(path)):
        problem = "holds a comma, white space or a control character, which QEMU cannot take"
        raise EnvError(variable, value, problem, "cache")
    existing = _nearest(path)
    if not existing.is_dir():
        raise EnvError(variable, value, f"cannot be a directory ({existing} is not one)", "cache")
    return path


def _nearest(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (at worst /)."""
    return next(p for p in (path, *path.parents) if os.path.lexists(p))


def _source() -> tuple[str, str]:
    """The variable the cache's place came from, and its value."""
    for variable in ("GUPCTL_CACHE", "XDG_CACHE_HOME", "HOME"):
        if os.environ.get(variable):
            return variable, os.environ[variable]
    return "HOME", str(Path.home())


def writable(path: Path) -> None:
    """EnvError (naming the variable behind the cache) unless `path`, in the
    cache, can be made and written: checked before a build, not after it."""
    existing = _nearest(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        variable, value = _source()
        raise EnvError(variable, value, f"leaves no writable cache ({existing})", "cache")


def key(parts: Iterable[str | bytes]) -> str:
    """16 hex digits of sha256 over `parts`, each kept apart from the next."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:16]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing)."""
    writable(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def entry(
    kind: str,
    name: str,
    make: Callable[[Path], None],
    complete: Callable[[Path], bool] | None = None,
) -> Path:
    """The cache entry `kind`/`name`, made by `make(scratch)` if it is missing.

    `make` fills the empty directory it is given; on success the directory
    becomes the entry, on any exception it is removed.  `complete(entry)`
    says whether an existing entry is whole (default: it exists).
    """
    is_whole = complete or Path.exists
    dest = cache_dir() / kind / name
    if is_whole(dest):
        return dest
    with locked(dest.parent / f".{name}.lock"):
        if is_whole(dest):
            return dest  # another gupctl made it while we waited
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
        try:
            make(scratch)
            shutil.rmtree(dest, ignore_errors=True)  # an incomplete leftover
            scratch.rename(dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest
