"""GUP flags (FOLL_*) by name, with the values of the running kernel.

FOLL_* are kernel-internal and have no ABI: v6.2 renumbered all of them
("mm/gup: move private gup FOLL_ flags to internal.h" turned the #defines of
include/linux/mm.h into an enum in include/linux/mm_types.h, plus a private
enum in mm/internal.h).  Nothing at run time tells which numbering a kernel
uses, so the table is chosen by parsing the release (uname -r).

Sources: v6.2+ from v6.12's include/linux/mm_types.h and mm/internal.h;
before v6.2 from Debian's 6.1 include/linux/mm.h (older kernels are assumed
to match it; FOLL_COW, gone in v6.0, is not offered).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from gupctl.errors import FlagsError

PREFIX = "foll_"


@dataclass(frozen=True)
class _Flag:
    name: str
    value: int
    internal: bool = False  # set by GUP itself: passing it trips a WARN or breaks refcounts
    since: tuple[int, int] = (0, 0)  # first release (major, minor) that has it


# v6.2+: include/linux/mm_types.h, then mm/internal.h from 1 << 16.
_V6_2 = (
    _Flag("write", 1 << 0),
    # Internal for the pin commands (FOLL_GET and FOLL_PIN are exclusive) and
    # added by get_user_pages() itself: never useful from userspace.
    _Flag("get", 1 << 1, internal=True),
    _Flag("dump", 1 << 2),
    _Flag("force", 1 << 3),
    _Flag("nowait", 1 << 4),
    _Flag("nofault", 1 << 5),
    _Flag("hwpoison", 1 << 6),
    _Flag("anon", 1 << 7),
    _Flag("longterm", 1 << 8),
    _Flag("split_pmd", 1 << 9),
    _Flag("pci_p2pdma", 1 << 10),
    _Flag("interruptible", 1 << 11),
    # v6.5, d74943a2f3cd "mm/gup: reintroduce FOLL_NUMA as FOLL_HONOR_NUMA_FAULT".
    _Flag("honor_numa_fault", 1 << 12, since=(6, 5)),
    # mm/internal.h INTERNAL_GUP_FLAGS: is_valid_gup_args() WARNs on these.
    _Flag("touch", 1 << 16, internal=True),
    _Flag("tried", 1 << 17, internal=True),
    _Flag("remote", 1 << 18, internal=True),
    _Flag("pin", 1 << 19, internal=True),
    _Flag("fast_only", 1 << 20, internal=True),
    _Flag("unlockable", 1 << 21, internal=True),
    # v6.9, 631426ba1d45 "mm/madvise: make MADV_POPULATE_(READ|WRITE) handle
    # VM_FAULT_RETRY properly".
    _Flag("madv_populate", 1 << 22, internal=True, since=(6, 9)),
)

# Before v6.2: the #defines of include/linux/mm.h (6.1).  The internal ones
# are those v6.2 moved to mm/internal.h, plus FOLL_GET and FOLL_MIGRATION
# (follow_page() only; removed in v6.2).
_V6_1 = (
    _Flag("write", 0x01),
    _Flag("touch", 0x02, internal=True),
    _Flag("get", 0x04, internal=True),
    _Flag("dump", 0x08),
    _Flag("force", 0x10),
    _Flag("nowait", 0x20),
    _Flag("nofault", 0x80),
    _Flag("hwpoison", 0x100),
    _Flag("migration", 0x400, internal=True),
    _Flag("tried", 0x800, internal=True),
    _Flag("remote", 0x2000, internal=True),
    _Flag("anon", 0x8000),
    _Flag("longterm", 0x10000),
    _Flag("split_pmd", 0x20000),
    _Flag("pin", 0x40000, internal=True),
    _Flag("fast_only", 0x80000, internal=True),
)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of `release` (default: the running kernel's uname -r)."""
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise FlagsError(f"cannot tell the kernel version from release {release!r}", [])
    return int(m.group(1)), int(m.group(2))


def _flags(release: str | None) -> tuple[_Flag, ...]:
    version = kernel_version(release)
    if version < (6, 2):
        return _V6_1
    return tuple(f for f in _V6_2 if version >= f.since)


def table(release: str | None = None) -> dict[str, int]:
    """All FOLL_* flags of `release` (default: this kernel): lower-case name -> value."""
    return {f.name: f.value for f in _flags(release)}


def internal(release: str | None = None) -> frozenset[str]:
    """The names GUP sets itself; parse() refuses them unless allow_internal."""
    return frozenset(f.name for f in _flags(release) if f.internal)


#: Internal names per numbering: "6.2" (v6.2 and later) and "6.1" (before v6.2).
INTERNAL = {"6.2": internal("6.12"), "6.1": internal("6.1")}


def parse(spec: str, release: str | None = None, allow_internal: bool = False) -> int:
    """The value of `spec`: comma-separated names (foll_ prefix optional) or numbers.

    Raises FlagsError naming the valid flags for an unknown name, and for an
    internal one (or a number holding internal bits) unless `allow_internal`.
    """
    known = table(release)
    hidden = internal(release)
    value = 0
    for word in (w.strip() for w in spec.split(",")):
        if not word:
            continue
        name = word.lower()
        name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
        if name in known:
            bits = known[name]
        else:
            try:
                bits = int(word, 0)
            except ValueError:
                raise FlagsError(f"unknown GUP flag {word!r}", offered(release)) from None
            if bits < 0 or bits >= 1 << 32:
                raise FlagsError(f"GUP flags {word!r} do not fit 32 bits", offered(release))
        refused = [n for n in hidden if known[n] & bits]
        if refused and not allow_internal:
            raise FlagsError(
                f"{word!r} sets internal GUP flags ({', '.join(sorted(refused))})",
                offered(release),
                internal=True,
            )
        value |= bits
    return value


def offered(release: str | None = None) -> list[str]:
    """The names parse() accepts without allow_internal, in bit order."""
    hidden = internal(release)
    return [n for n in table(release) if n not in hidden]


def names(value: int, release: str | None = None) -> list[str]:
    """`value` as flag names in bit order; bits no flag has appear as one hex number."""
    out: list[str] = []
    rest = value
    for name, bits in table(release).items():
        if value & bits:
            out.append(name)
            rest &= ~bits
    if rest:
        out.append(f"{rest:#x}")
    return out
