"""The kmod registers one mmu_notifier per mm and file, not one per START.

Registering a notifier takes mm_take_all_locks(): every anon_vma and
i_mmap_rwsem of the mm, under a global mutex.  A START/STOP loop that did so
each time stalled every rmap walk on the machine.  Oracle: a kprobe on
mm_take_all_locks() (tracefs), whose hit count is the kernel's own.

CI checks the same by cost instead (tests/kernel/test_notifier_walk.py).
Not in CI: arming and removing the kprobe patches kernel text, and once a
7.3 guest under TCG took an int3 Oops in __schedule() right after this test
(TCG and cross-modified code), which ended every test after it.  Run it by
hand in a VM of its own, with tests/kernel's conftest loaded as a plugin:

    gupctl vm --kernel 7.3 -- env PYTHONPATH=tests/kernel \
        python -m pytest -p no:cacheprovider -p conftest tests/manual/test_notifier.py
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import oracle_counters

from gupctl import longterm
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

pytestmark = pytest.mark.kmod  # the notifier is the kmod's

TRACING = Path("/sys/kernel/tracing")
EVENT = "gupctl_take_all_locks"
LOOPS = 50


@pytest.fixture
def take_all_locks_hits() -> Iterator[Callable[[], int]]:
    """A kprobe on mm_take_all_locks(); yields a function reading its hits."""
    if not (TRACING / "kprobe_events").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True)
    _append(TRACING / "kprobe_events", f"p:{EVENT} mm_take_all_locks\n")
    enable = TRACING / "events" / "kprobes" / EVENT / "enable"
    enable.write_text("1")

    def hits() -> int:
        for line in (TRACING / "kprobe_profile").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == EVENT:
                return int(fields[1])
        raise AssertionError(f"{EVENT} is not in kprobe_profile")

    try:
        yield hits
    finally:
        enable.write_text("0")
        _append(TRACING / "kprobe_events", f"-:{EVENT}\n")


def _append(path: Path, line: str) -> None:
    """Append to a tracefs file (open(mode="a") seeks, which tracefs refuses)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _loop(dev: Device, m: Mapping, n: int) -> None:
    for _ in range(n):
        longterm.start(dev, m.addr, PAGE_SIZE, write=True, fast=True)
        longterm.stop(dev)


def test_start_stop_loop_registers_once_per_file(node, take_all_locks_hits) -> None:
    """50 START/STOP pairs on one file: one registration (the first START),
    and the pins balance."""
    device = "/dev/gup_test"
    before = oracle_counters(node)
    with Mapping(MemorySpec(numa_node=node), PAGE_SIZE) as m, Device(device) as dev:
        start_hits = take_all_locks_hits()
        _loop(dev, m, LOOPS)
        loop_hits = take_all_locks_hits() - start_hits
        second = Device(device)  # a second file of the same mm shares the notifier
        try:
            _loop(second, m, LOOPS)
        finally:
            second.close()
        both_hits = take_all_locks_hits() - start_hits
    acquired, released = (a - b for a, b in zip(oracle_counters(node), before, strict=True))
    assert loop_hits <= 1, f"{loop_hits} registrations for {LOOPS} STARTs on one file"
    assert both_hits <= 1, f"{both_hits} registrations for two files of one mm"
    assert acquired == released == 2 * LOOPS
