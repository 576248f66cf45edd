"""gupctl/syscalls.py's numbers against each architecture's system call table
in Debian's linux-source (6.12 and 7.3: the generic table is scripts/
syscall.tbl from v6.11 on)."""

from __future__ import annotations

import pytest
from kernels_facts import source_file

from gupctl.syscalls import NUMBERS

#: machine -> the table that numbers its system calls, and the ABIs of its rows.
TABLES = {
    "x86_64": ("arch/x86/entry/syscalls/syscall_64.tbl", {"common", "64"}),
    "i686": ("arch/x86/entry/syscalls/syscall_32.tbl", {"i386"}),
    "aarch64": ("scripts/syscall.tbl", {"common", "64"}),
    "riscv64": ("scripts/syscall.tbl", {"common", "64"}),
    "ppc64le": ("arch/powerpc/kernel/syscalls/syscall.tbl", {"common", "64", "nospu"}),
    "s390x": ("arch/s390/kernel/syscalls/syscall.tbl", {"common", "64"}),
}


def table(text: str, abis: set[str]) -> dict[str, int]:
    """A syscall.tbl's name -> number, for the rows of `abis`."""
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[1] in abis:
            found[fields[2]] = int(fields[0])
    return found


@pytest.mark.parametrize("series", ["6.12", "7.3"])
@pytest.mark.parametrize("machine", list(TABLES))
def test_numbers_are_the_kernels(series: str, machine: str) -> None:
    path, abis = TABLES[machine]
    theirs = table(source_file(series, path), abis)
    ours = {name: by[machine] for name, by in NUMBERS.items() if machine in by}
    assert ours, f"syscalls.py has nothing for {machine}"
    assert ours == {name: theirs.get(name) for name in ours}


def test_the_parser_reads_a_table() -> None:
    text = "# comment\n235\tcommon\tmbind\tsys_mbind\n274\ti386\tmbind\tsys_mbind\n"
    assert table(text, {"common"}) == {"mbind": 235}
    assert table(text, {"i386"}) == {"mbind": 274}
