"""Kernel lockdown (security/lockdown/lockdown.c), as /sys/kernel/security says.

Under `integrity` or `confidentiality`, debugfs refuses to open files that
have write permission or ioctls (LOCKDOWN_DEBUGFS, v5.4), so the in-kernel
gup_test answers EPERM; modules must be signed (LOCKDOWN_MODULE_SIGNATURE).
gupctl's kmod serves the same ABI on /dev/gup_test, which lockdown allows.
"""

from __future__ import annotations

import re
from pathlib import Path

LOCKDOWN = Path("/sys/kernel/security/lockdown")
LEVELS = ("none", "integrity", "confidentiality")


def level(path: Path = LOCKDOWN) -> str | None:
    """The active level ("none", "integrity", "confidentiality"), or None where
    the kernel has no lockdown LSM or securityfs is not mounted."""
    try:
        text = path.read_text()
    except OSError:
        return None
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else None


def restricts_debugfs(current: str | None) -> bool:
    """Whether `current` makes debugfs refuse gup_test (and requires signed modules)."""
    return current in ("integrity", "confidentiality")
