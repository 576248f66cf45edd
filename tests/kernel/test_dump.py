"""gupctl dump on a real kernel: the pages it reports are the ones dmesg shows, pins balance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import oracle_counters

from gupctl import kmsg

THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _dump(gupctl, node, *args: str) -> tuple[dict, int, int, list[str]]:
    """Run `gupctl dump --json`; also the node's pin deltas and the kernel log
    lines it caused (read from /dev/kmsg on our own, not through gupctl)."""
    log = kmsg.KernelLog()
    try:
        before = oracle_counters(node)
        data = gupctl("dump", "--json", *args).json()
        after = oracle_counters(node)
        return data, after[0] - before[0], after[1] - before[1], log.read_new()
    finally:
        log.close()


def test_pin_two_small_pages(gupctl, node) -> None:
    data, acquired, released, log = _dump(gupctl, node, "0", "19", "--pin", "--size", "1M")
    pages = data["pages"]
    assert [p["index"] for p in pages] == [0, 19] and data["missing"] == []
    assert all(p["refcount"] >= 1 for p in pages)
    assert all(p["pfn"] > 0 for p in pages), "pfn 0 is no page of ours: a field not parsed"
    assert pages[1]["pfn"] != pages[0]["pfn"]
    assert pages[1]["user_addr"] - pages[0]["user_addr"] == 19 * 4096
    # dmesg, read on its own, holds the same pages under the same headers.
    text = "\n".join(log)
    for p in pages:
        assert f"---- page #{p['index']}, " in text and f"pfn:{p['pfn']:#x}" in text
    if node is None:
        pytest.fail("exact balance needs a memory-only node: run in gupctl's VM")
    assert acquired == released == 256
    assert data["balance"]["exact"] and data["balance"]["expected"] == 256


def test_thp_pages_are_consecutive_in_one_folio(gupctl, node) -> None:
    if "[never]" in THP_ENABLED.read_text():
        pytest.skip("THP is disabled on this kernel")
    data, acquired, released, _ = _dump(gupctl, node, "--thp", "--size", "2M", "0", "1", "--pin")
    first, second = data["pages"]
    assert first["order"] == second["order"] == 9
    assert second["pfn"] == first["pfn"] + 1
    assert first["pincount"] >= 1
    assert acquired == released == 512


def test_get_moves_no_pin_counter(gupctl, node) -> None:
    data, acquired, released, _ = _dump(gupctl, node, "3", "--get")
    assert data["call"] == "get_user_pages" and data["size"] == 4 * 4096
    assert [p["index"] for p in data["pages"]] == [3]
    assert (acquired, released) == (0, 0)


def test_gup_flags_are_this_kernels_numbers(gupctl, node, tmp_path) -> None:
    """longterm only with a pin, and anon refuses a file: both need the right bit values."""
    data, acquired, released, _ = _dump(gupctl, node, "0", "--pin", "--gup-flags",
                                        "longterm,write")  # fmt: skip
    assert data["gup_flag_names"] == ["write", "longterm"]
    assert acquired == released == 1
    path = Path("/dev/shm") / f"gupctl-dump-{os.getpid()}"
    ran = gupctl("dump", "0", "--file", str(path), "--create", "--shared", "--gup-flags", "anon",
                 check=False)  # fmt: skip
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert not path.exists()
    gupctl("dump", "0", "--gup-flags", "anon")  # anonymous memory: fine


def test_internal_flag_refused_before_the_kernel_sees_it(gupctl) -> None:
    with kmsg.KernelLog() as log:
        ran = gupctl("dump", "0", "--pin", "--gup-flags", "pin", check=False)
        assert ran.returncode == 1 and "--force-flags" in ran.stderr
        assert not [line for line in log.read_new() if "---- page #" in line]
