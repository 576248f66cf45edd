"""Kernel facts that gupctl keeps in tables, and the real kernels to check them against.

These tests read the headers and sources of every Debian kernel in the test
matrix (tests/run.py KMOD_KERNELS): headers as the kmod sees them (this
machine's, or those in the kernel's build root) and Debian's linux-source
tarballs for what headers leave out (mm/internal.h).  They fetch what is
missing into gupctl's cache, so they run after the kmod builds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gupctl import cache
from gupctl.vm import build, debian, resolve

#: The Debian kernels of the test matrix, by series.
SERIES = ("6.1", "6.12", "7.3")


def headers_common(series: str) -> Path:
    """linux-headers-<abi>-common of the kernel `series` resolves to: include/ lives there."""
    k = resolve.find(series)
    root = k.buildroot or Path("/")
    stem = k.release.removesuffix("-amd64")
    path = root / "usr" / "src" / f"linux-headers-{stem}-common"
    if not path.is_dir():
        pytest.fail(f"no {path} for {k.release}")
    return path


def source_file(series: str, relpath: str) -> str:
    """`relpath` from Debian's linux-source-`series`, extracted once into the cache."""
    tarball = debian.source_tarball(series)
    name = cache.key([build.source_identity(tarball), relpath])

    def make(scratch: Path) -> None:
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(scratch), "--strip-components=1",
                        "--wildcards", f"*/{relpath}"], check=True)  # fmt: skip

    return (cache.entry("facts", name, make) / relpath).read_text()


def selftests_dir(series: str) -> Path:
    """tools/testing/selftests/{mm,vm}/ of Debian's linux-source-`series` (vm/
    before v6.3; whichever the tarball has), extracted once into the cache."""
    tarball = debian.source_tarball(series)
    name = cache.key([build.source_identity(tarball), "selftests/mm+vm"])

    def make(scratch: Path) -> None:
        # One of the two is absent from every tarball: tar exits 2 for it.
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(scratch), "--strip-components=1",
                        "--wildcards", "*/tools/testing/selftests/mm/*",
                        "*/tools/testing/selftests/vm/*"], capture_output=True)  # fmt: skip
        if not any((scratch / "tools/testing/selftests" / d).is_dir() for d in ("mm", "vm")):
            raise RuntimeError(f"no tools/testing/selftests/mm or vm in {tarball}")

    return cache.entry("facts", name, make) / "tools" / "testing" / "selftests"
