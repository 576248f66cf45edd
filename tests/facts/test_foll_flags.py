"""gupctl/flags.py's FOLL_* tables against each matrix kernel's own definitions.

Before v6.3 the flags are #defines in include/linux/mm.h; from v6.3
(2c2241081f7d) the public ones are an enum in include/linux/mm_types.h and
the internal ones an enum in mm/internal.h, where INTERNAL_GUP_FLAGS lists
what is_valid_gup_args() WARNs on.
"""

from __future__ import annotations

import re

import pytest
from kernels_facts import SERIES, headers_common, source_file

from gupctl import flags
from gupctl.vm import resolve

_DEFINE = re.compile(r"^#define\s+FOLL_(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", re.MULTILINE)
_ENUM = re.compile(r"^\s*FOLL_(\w+)\s*=\s*1\s*<<\s*(\d+)\s*,", re.MULTILINE)
_INTERNAL = re.compile(r"#define\s+INTERNAL_GUP_FLAGS\s*\(([^)]*)\)")


def kernel_flags(series: str) -> tuple[dict[str, int], set[str]]:
    """All FOLL_* of `series` (lower-case name -> value), and the internal names."""
    include = headers_common(series) / "include" / "linux"
    mm = (include / "mm.h").read_text()
    old = {n.lower(): int(v, 0) for n, v in _DEFINE.findall(mm)}
    if old:
        return old, set()  # before v6.3 the header does not say which are internal
    mm_types = (include / "mm_types.h").read_text()
    public = {n.lower(): 1 << int(b) for n, b in _ENUM.findall(mm_types)}
    internal_h = source_file(series, "mm/internal.h")
    private = {n.lower(): 1 << int(b) for n, b in _ENUM.findall(internal_h)}
    m = _INTERNAL.search(internal_h)
    assert m, "mm/internal.h has no INTERNAL_GUP_FLAGS"
    listed = {n.lower() for n in re.findall(r"FOLL_(\w+)", m.group(1))}
    return {**public, **private}, listed


@pytest.mark.parametrize("series", SERIES)
def test_table_is_the_kernels(series: str) -> None:
    release = resolve.find(series).release
    values, _ = kernel_flags(series)
    # FOLL_COW (gone in v6.0) is not offered; everything else must match exactly.
    assert flags.table(release) == values


@pytest.mark.parametrize("series", [s for s in SERIES if s != "6.1"])
def test_internal_names_are_the_kernels(series: str) -> None:
    release = resolve.find(series).release
    _, listed = kernel_flags(series)
    # FOLL_GET is public in mm_types.h, but the pin commands may not take it
    # and get_user_pages() sets it itself: gupctl treats it as internal too.
    assert flags.internal(release) == listed | {"get"}
