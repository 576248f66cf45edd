"""GUPCTL_EXTRACT's ioctl type ('x', kmod/gupctl_extract.h) against the kernels
that have iov_iter_extract_pages(): gup_test's commands are all of type 'g',
and Documentation/userspace-api/ioctl/ioctl-number.rst assigns 'x' to nobody."""

from __future__ import annotations

import re

import pytest
from kernels_facts import source_file

from gupctl import abi

#: The Debian kernels of the matrix from v6.3, where iov_iter_extract_pages() came in.
EXTRACT_SERIES = ("6.12", "7.3")


@pytest.mark.parametrize("series", EXTRACT_SERIES)
def test_gup_test_commands_are_all_type_g(series: str) -> None:
    header = source_file(series, "mm/gup_test.h")
    kinds = set(re.findall(r"_IO[WR]*\('(.)'", header))
    assert kinds == {"g"}, kinds
    assert chr(abi.EXTRACT_TYPE) not in kinds


@pytest.mark.parametrize("series", EXTRACT_SERIES)
def test_extract_type_is_unassigned(series: str) -> None:
    table = source_file(series, "Documentation/userspace-api/ioctl/ioctl-number.rst")
    kind = chr(abi.EXTRACT_TYPE)
    rows = [line for line in table.splitlines()
            if line.startswith((f"'{kind}'", f"0x{abi.EXTRACT_TYPE:02X} "))]  # fmt: skip
    assert not rows, rows
    assert "'g'" in table  # the table is the one meant, with its rows
