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


def cache_dir() -> Path:
    """$GUPCTL_CACHE, else $XDG_CACHE_HOME/gupctl, else ~/.cache/gupctl."""
    explicit = os.environ.get("GUPCTL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gupctl"


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
