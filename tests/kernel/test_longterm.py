"""gupctl longterm on a real kernel: pins held and released exactly, R/O pins see later writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import oracle_counters

PAGES_1M = (1 << 20) // 4096


def test_start_pins_exactly_then_releases(counted, gupctl, node) -> None:
    if node is None:
        pytest.fail("exact balance needs a memory-only node: run in gupctl's VM")
    data, acquired, released = counted("longterm", "start", "--hold", "0")
    assert acquired == released == PAGES_1M
    assert data["pinned_pages"] == data["acquired_while_held"] == PAGES_1M
    b = data["balance"]
    assert (b["acquired"], b["released"], b["exact"]) == (PAGES_1M, PAGES_1M, True)


def test_rerun_is_not_busy(counted, gupctl, node) -> None:
    """The pins of one run are gone when the next starts (no EBUSY, no EINVAL)."""
    for args in (["--write"], ["--fast"], []):
        _, acquired, released = counted("longterm", "start", "--hold", "0", *args)
        assert acquired == released == PAGES_1M


@pytest.mark.parametrize(
    "args",
    [["--fast"], [], ["--shared"], ["--write"], ["--thp", "--size", "2M"],
     ["--hugetlb", "--size", "2M"], ["--hugetlb", "--size", "2M", "--fast"]],
    ids=lambda a: "".join(a) or "slow",
)  # fmt: skip
def test_read_only_pin_sees_later_writes(counted, gupctl, node, args: list[str]) -> None:
    data, acquired, released = counted("longterm", "read", *args)
    pages = data["nr_pages"]
    assert data["matched"] == pages and data["mismatched"] == 0
    assert acquired == released == pages
    assert data["balance"]["exact"]


def test_shared_tmpfs_file_write_pin(counted, gupctl, node) -> None:
    path = Path("/dev/shm") / f"gupctl-longterm-{os.getpid()}"  # tmpfs in the VM
    data, acquired, released = counted("longterm", "start", "--hold", "0", "--write",
                                        "--file", str(path), "--create", "--shared")  # fmt: skip
    assert data["backing"] == "file-shared" and data["write"]
    assert acquired == released == PAGES_1M
    assert not path.exists()


def test_stop_on_a_fresh_file_is_harmless(gupctl, node) -> None:
    before = oracle_counters(node)
    assert gupctl("longterm", "stop").stdout == ""
    assert oracle_counters(node) == before


def test_table_output(gupctl) -> None:
    ran = gupctl("longterm", "start", "--hold", "0", "--size", "64K")
    assert "exact" in ran.stdout and "MISMATCH" not in ran.stdout
    assert "pinned 16 pages" in ran.stderr
    assert "reliable" in gupctl("longterm", "read", "--size", "64K").stdout
