"""GUP flags (FOLL_*) by name, with the values of the running kernel.

FOLL_* are kernel-internal and have no ABI: v6.3 renumbered all of them
(2c2241081f7d, "mm/gup: move private gup FOLL_ flags to internal.h", turned
the #defines of include/linux/mm.h into an enum in include/linux/mm_types.h,
plus a private enum in mm/internal.h).  Nothing at run time tells which
numbering a kernel uses, so the table is chosen by the release (uname -r).

Sources: v6.3+ from include/linux/mm_types.h and mm/internal.h; before v6.3
from include/linux/mm.h.  tests/facts/ checks both tables against the
headers and sources of every kernel gupctl is tested on (6.1, 6.12, 7.3).
v6.2 is the old numbering plus PCI_P2PDMA and INTERRUPTIBLE; older kernels
are assumed to match 6.1 (FOLL_COW, gone in v6.0, is not offered).
"""

from __future__ import annotations

from dataclasses import dataclass

from gupctl import release as _release
from gupctl.errors import FlagsError

PREFIX = "foll_"


@dataclass(frozen=True)
class _Flag:
    name: str
    value: int
    internal: bool = False  # set by GUP itself: passing it trips a WARN or breaks refcounts
    since: tuple[int, int] = (0, 0)  # first release (major, minor) that has it


# v6.3+: include/linux/mm_types.h, then mm/internal.h from 1 << 16.
_V6_3 = (
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

# Before v6.3: the #defines of include/linux/mm.h (6.1).  The internal ones
# are those v6.3 moved to mm/internal.h, plus FOLL_GET and FOLL_MIGRATION
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
    # v6.2, "mm/gup: allow FOLL_PCI_P2PDMA" and "mm/gup: introduce
    # FOLL_INTERRUPTIBLE": the last flags added in the old numbering.
    _Flag("pci_p2pdma", 0x100000, since=(6, 2)),
    _Flag("interruptible", 0x200000, since=(6, 2)),
)


def _flags(release: str | None) -> tuple[_Flag, ...]:
    version = _release.version(release)[:2]
    chosen = _V6_1 if version < (6, 3) else _V6_3
    return tuple(f for f in chosen if version >= f.since)


def table(release: str | None = None) -> dict[str, int]:
    """All FOLL_* flags of `release` (default: this kernel): lower-case name -> value."""
    return {f.name: f.value for f in _flags(release)}


def internal(release: str | None = None) -> frozenset[str]:
    """The names GUP sets itself; parse() refuses them unless allow_internal."""
    return frozenset(f.name for f in _flags(release) if f.internal)


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
