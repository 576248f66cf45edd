"""Kernel releases (uname -r) as versions: the one parser gupctl has."""

from __future__ import annotations

import os
import re

from gupctl.errors import GupctlError

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def version(release: str | None = None) -> tuple[int, int, int]:
    """(major, minor, patch) of `release` (default: the running kernel's).

    Debian's "6.1.0-56-amd64" is 6.1.0: its ABI number, not the stable
    patch level, which such a release does not show.
    """
    release = release or os.uname().release
    m = _VERSION.match(release)
    if not m:
        raise GupctlError(f"cannot tell the kernel version from release {release!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def sort_key(release: str) -> tuple[int, ...]:
    """Every number in `release`, in order: sorts "6.1.0-9" before "6.1.0-56"."""
    return tuple(int(x) for x in re.findall(r"\d+", release))


def matches(release: str, spec: str) -> bool:
    """Whether `spec` names `release`: the release itself, or a series such as
    "7.3" or "6.1.0" that the release continues with a "." or "-" ("6.1"
    matches "6.1.0-56-amd64" but not "6.12.117+deb12-amd64")."""
    return release == spec or re.match(re.escape(spec) + r"[.+-]", release) is not None
