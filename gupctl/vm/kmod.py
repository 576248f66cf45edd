"""Building kmod/ for a guest kernel, cached outside the repo by kernel and sources."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gupctl.errors import VmError
from gupctl.vm.kernel import Kernel


def cache_dir() -> Path:
    """$GUPCTL_CACHE, else $XDG_CACHE_HOME/gupctl, else ~/.cache/gupctl."""
    explicit = os.environ.get("GUPCTL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gupctl"


def source_dir() -> Path:
    """kmod/ of this checkout, or $GUPCTL_KMOD_DIR."""
    explicit = os.environ.get("GUPCTL_KMOD_DIR")
    path = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "kmod"
    if not (path / "Kbuild").exists():
        raise VmError(
            f"kmod sources not found at {path}: run from a gupctl checkout or set GUPCTL_KMOD_DIR",
            "build",
        )
    return path


def _sources(src: Path) -> list[Path]:
    return sorted(
        p
        for p in src.iterdir()
        if p.is_file() and p.suffix in (".c", ".h", "") and p.name != ".gitignore"
    )


def build(kernel: Kernel) -> Path:
    """gupctl.ko built against `kernel`'s headers; rebuilt only when sources change."""
    src = source_dir()
    if kernel.builtin_only:
        raise VmError(f"kernel {kernel.release} has gup_test built in and takes no modules: "
                      "pass --no-kmod", "usage")  # fmt: skip
    if not (kernel.build / "Makefile").exists():
        raise VmError(
            f"no headers for {kernel.release} at {kernel.build} (Debian: "
            f"linux-headers-{kernel.release})",
            "kernel",
        )
    digest = hashlib.sha256(kernel.release.encode())
    for path in _sources(src):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    dest = cache_dir() / "kmod" / f"{kernel.release}-{digest.hexdigest()[:16]}"
    if (dest / "gupctl.ko").exists():
        return dest / "gupctl.ko"
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    try:
        for path in _sources(src):
            shutil.copy2(path, work / path.name)
        proc = subprocess.run(
            ["make", "-C", str(work), f"KDIR={kernel.build}"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise VmError(
                f"building kmod against {kernel.release} failed", "build", proc.stdout + proc.stderr
            )
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest / "gupctl.ko"
