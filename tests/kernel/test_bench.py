"""gupctl bench on a real kernel: pin counts checked against vmstat read directly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import oracle_counters

MIB = 1 << 20
PAGES_128M = 128 * MIB // 4096


def _bench(gupctl, node, *args: str) -> tuple[list[dict], int, int]:
    before = oracle_counters(node)
    runs = gupctl("bench", "--json", *args).json()
    after = oracle_counters(node)
    return runs, after[0] - before[0], after[1] - before[1]


def test_pin_fast_128m_moves_counters_by_exactly_32768(gupctl, node) -> None:
    if node is None:
        pytest.fail("exact balance needs a memory-only node: run in gupctl's VM")
    runs, acquired, released = _bench(gupctl, node, "pin_fast_benchmark", "--size", "128M")
    assert (acquired, released) == (PAGES_128M, PAGES_128M)
    (run,) = runs
    assert run["size"] == 128 * MIB and run["nr_pages"] == PAGES_128M
    b = run["balance"]
    assert (b["acquired"], b["released"], b["exact"]) == (PAGES_128M, PAGES_128M, True)
    assert b["outstanding_before"] == b["outstanding_after"]
    assert run["get_usec"][0] > 0


def test_gup_fast_moves_neither_counter(gupctl, node) -> None:
    runs, acquired, released = _bench(gupctl, node, "gup_fast_benchmark", "--size", "64M")
    assert (acquired, released) == (0, 0)
    assert runs[0]["balance"]["expected"] == 0 and runs[0]["balance"]["exact"]


@pytest.mark.parametrize("per_call", ["1", "512", "123", "all"])
@pytest.mark.parametrize("command", ["pin_fast_benchmark", "pin_longterm_benchmark"])
def test_pages_per_call_all_pins_counted(gupctl, node, command: str, per_call: str) -> None:
    runs, acquired, released = _bench(gupctl, node, command, "-s", "32M", "-n", per_call)
    assert acquired == released == 32 * MIB // 4096
    assert runs[0]["balance"]["exact"]


def test_threads_and_repeats_multiply(gupctl, node) -> None:
    runs, acquired, released = _bench(gupctl, node, "pin_fast_benchmark", "-s", "16M", "-r",
                                      "3", "-j", "2", "-n", "all")  # fmt: skip
    assert acquired == released == 16 * MIB // 4096 * 6
    assert len(runs[0]["get_usec"]) == 6


@pytest.mark.parametrize(
    "backing",
    [
        ["--thp"],
        ["--no-thp"],
        ["--shared"],
        ["--read-only"],
        ["--hugetlb", "--size", "32M"],
        ["--hugetlb", "--shared", "--size", "32M"],
    ],
    ids=lambda b: "".join(b),
)
def test_backings_count_per_4k_subpage(gupctl, node, backing: list[str]) -> None:
    args = ["pin_fast_benchmark", "-n", "all", "--size", "64M", *backing]
    size = 32 * MIB if "--hugetlb" in backing else 64 * MIB
    runs, acquired, released = _bench(gupctl, node, *args)
    assert acquired == released == size // 4096
    assert runs[0]["size"] == size


def test_tmpfs_file_shared_and_removed(gupctl, node) -> None:
    path = Path("/dev/shm") / f"gupctl-test-{os.getpid()}"  # tmpfs in the VM
    runs, acquired, released = _bench(gupctl, node, "pin_longterm_benchmark", "--file",
                                      str(path), "--create", "--shared", "-s", "8M")  # fmt: skip
    assert acquired == released == 8 * MIB // 4096
    assert runs[0]["backing"] == "file-shared"
    assert not path.exists()


def test_table_output_shows_balance(gupctl) -> None:
    out = gupctl("bench", "gup_fast_benchmark", "pin_fast_benchmark", "-s", "4M").stdout
    assert "pin_fast_benchmark" in out and "exact" in out and "MISMATCH" not in out


def test_check_balance_passes(gupctl) -> None:
    gupctl("bench", "pin_longterm_benchmark", "-s", "8M", "--check-balance")
