"""Transparent huge pages: the anonymous THP sizes this kernel offers, and
which of them a fault may allocate (/sys/kernel/mm/transparent_hugepage,
Documentation/admin-guide/mm/transhuge.rst).

Since v6.8 (19eaf44954df, "mm: thp: support allocation of anonymous
multi-size THP") each size from two pages up to the PMD size has its own
`hugepages-<size>kB/enabled` knob: always, madvise, never, or inherit (the
top-level `enabled`).  Before it there is one size, the PMD size, and one
knob.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gupctl.errors import MappingError

ROOT = Path("/sys/kernel/mm/transparent_hugepage")


def available(root: Path = ROOT) -> bool:
    """Whether this kernel has THP (CONFIG_TRANSPARENT_HUGEPAGE): its sysfs directory."""
    return root.is_dir()


def pmd_size(root: Path = ROOT) -> int:
    """The PMD-sized THP size, for aligning THP mappings."""
    try:
        return int((root / "hpage_pmd_size").read_text())
    except (OSError, ValueError):
        return 2 << 20


def sizes(root: Path = ROOT) -> list[int]:
    """The anonymous THP sizes this kernel can allocate, smallest first: the
    mTHP sizes of hugepages-*kB (v6.8), else the PMD size alone; none without THP."""
    if not available(root):
        return []
    # Anonymous sizes have an `enabled` knob (shmem-only ones, shmem_enabled),
    # as the selftests' __thp_supported_orders() reads them.
    return sorted(_knobs(root)) or [pmd_size(root)]


def spelled(sizes_: list[int]) -> str:
    """Sizes as --thp-size takes them: '16K, 32K, 2048K'."""
    return ", ".join(f"{s >> 10}K" for s in sizes_)


def _knobs(root: Path) -> dict[int, Path]:
    """Each per-size `enabled` knob (v6.8), by the size in bytes."""
    return {int(d.name.removeprefix("hugepages-").removesuffix("kB")) * 1024: d / "enabled"
            for d in root.glob("hugepages-*kB") if (d / "enabled").exists()}  # fmt: skip


def setting(knob: Path) -> str:
    """The bracketed choice of a THP knob: '[madvise]' in 'always [madvise] never'."""
    text = knob.read_text()
    return text[text.index("[") + 1 : text.index("]")]


@contextmanager
def allowed(wanted: list[int], root: Path = ROOT) -> Iterator[None]:
    """Each THP size in `wanted` allowed where a mapping asks for it: a size
    set to `never` (Debian's default for every mTHP size) is set to `madvise`
    for the block, then back.  cow.c sets each size to `always` around its
    own runs; `madvise` reaches only mappings that ask (MADV_HUGEPAGE), so the
    other cases keep the system's policy.  Without root they stay as they are
    and the cases that need them skip, as cow.c's do."""
    knobs = _knobs(root)
    with _changes() as change:
        for size in wanted:
            if size in knobs:
                with contextlib.suppress(OSError, MappingError):
                    if setting(knobs[size]) == "never":
                        change(knobs[size], "madvise")
        yield


@contextmanager
def only(size: int, root: Path = ROOT) -> Iterator[None]:
    """Anonymous THP of `size` alone for the block, as cow.c's per-size runs
    set it: `size` for MADV_HUGEPAGE mappings only (madvise), every other
    size never.  Each knob changed is put back as it was on the way out, an
    exception or a signal (gupctl's handlers raise one) included.  Raises
    MappingError for a size the kernel does not list, or a knob that needs
    changing and cannot be (not root)."""
    knobs, offered = _knobs(root), sizes(root)
    if size not in offered:
        raise MappingError(f"no {size >> 10}K THP size here (sizes: "
                           f"{spelled(offered) or 'none: no THP'})", errno.EINVAL,
                           "thp")  # fmt: skip
    top = root / "enabled"
    with _changes() as change:
        for other, knob in knobs.items():
            if other != size and setting(knob) != "never":
                change(knob, "never")
        # Before v6.8 (no per-size knobs) the top-level knob is the PMD size's.
        # madvise, not always: then only mappings that ask get the size, and
        # the kernel's per-size fault counters count the run's folios alone.
        own = knobs.get(size, top)
        if setting(own) != "madvise":
            change(own, "madvise")
        yield


@contextmanager
def _changes() -> Iterator[Callable[[Path, str], None]]:
    """A `change(knob, value)` for the block: each knob written, then restored
    (last changed, first restored) however the block ends."""
    done: list[tuple[Path, str]] = []

    def change(knob: Path, value: str) -> None:
        old = setting(knob)
        try:
            knob.write_text(value)
        except OSError as e:
            raise MappingError(f"cannot set {knob} to {value} (it says {old})", e.errno,
                               "thp") from None  # fmt: skip
        done.append((knob, old))

    try:
        yield change
    finally:
        for knob, old in reversed(done):
            with contextlib.suppress(OSError):
                knob.write_text(old)
