"""Where gup_test implementations differ, each difference triggered and checked.

gupctl's kmod, and the in-kernel gup_test of 6.12 and of 7.3, answer some
requests differently.  FACTS says what each should answer, read from its
source (mm/gup_test.c of each release, kmod/gupctl_*.c); these tests make the
requests and check the answers against the pin counters of the VM's
memory-only node.  An implementation without an entry fails: its facts must
be looked up before it is tested.
"""

from __future__ import annotations

import errno
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DEVICES, oracle_counters

from gupctl import abi, longterm, release
from gupctl.device import Device
from gupctl.errors import DeviceError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec


@dataclass(frozen=True)
class Facts:
    #: PIN_LONGTERM_TEST_* state per open file (else one global set).
    per_file: bool
    #: errno for addr + size past 2^64, or None: accepted, nothing pinned.
    wrapped_errno: int | None
    #: errno for START while this file's pins are held.
    busy_errno: int
    #: errno when GUP's first call faults, or None: success, size 0 back.
    fault_errno: int | None


FACTS = {
    # kmod/: gupctl_check_range() (gupctl_main.c), struct gupctl_file (gupctl.h),
    # and gupctl_gup_test() (gupctl_gup.c) returning the first GUP call's errno.
    "kmod": Facts(
        per_file=True, wrapped_errno=errno.EINVAL, busy_errno=errno.EBUSY, fault_errno=errno.EFAULT
    ),
    # 6.12 mm/gup_test.c: static pin_longterm_test_pages; the loop bound
    # addr < gup->addr + gup->size is false at once for a wrapped range.
    # __gup_test_ioctl() breaks on nr <= 0 and returns 0 with size 0.
    "6.12": Facts(per_file=False, wrapped_errno=None, busy_errno=errno.EINVAL, fault_errno=None),
    # 7.3 mm/gup_test.c: struct gup_test_data in file->private_data;
    # e8ae6fd67021 "mm/gup_test: reject wrapped user ranges".
    "7.3": Facts(
        per_file=True, wrapped_errno=errno.EINVAL, busy_errno=errno.EINVAL, fault_errno=None
    ),
}


def implementation() -> str:
    if Path("/sys/module/gupctl").exists():
        return "kmod"
    major, minor, _ = release.version()
    return f"{major}.{minor}"


@pytest.fixture(scope="module")
def facts() -> Facts:
    impl = implementation()
    if impl not in FACTS:
        pytest.fail(f"no FACTS for gup_test {impl}: read its mm/gup_test.c and add them")
    return FACTS[impl]


@pytest.fixture(scope="module")
def path() -> str:
    return next(d for d in DEVICES if os.path.exists(d))


def _outstanding(node: int | None) -> int:
    acquired, released = oracle_counters(node)
    return acquired - released


def test_longterm_state_per_file_or_global(facts, path, node) -> None:
    pages = 16
    base = _outstanding(node)
    with ExitStack() as stack:
        # Closed whatever happens: held global pins would fail later tests.
        m = stack.enter_context(Mapping(MemorySpec(numa_node=node), pages * PAGE_SIZE))
        a = stack.enter_context(Device(path))
        b = stack.enter_context(Device(path))
        longterm.start(a, m.addr, pages * PAGE_SIZE, write=True, fast=False)
        try:
            longterm.start(b, m.addr, pages * PAGE_SIZE, write=True, fast=False)
            second = 0
        except DeviceError as e:
            second = e.errno
        assert second == (0 if facts.per_file else errno.EINVAL)
        assert _outstanding(node) - base == pages * (2 if facts.per_file else 1)
        b.close()
        # Closing b drops b's pins only, or (global state) everyone's.
        assert _outstanding(node) - base == (pages if facts.per_file else 0)
        a.close()
    assert _outstanding(node) == base
    assert longterm.per_file(path) == facts.per_file  # gupctl's probe agrees


def test_start_while_held(facts, path, node) -> None:
    with Mapping(MemorySpec(numa_node=node), PAGE_SIZE) as m, Device(path) as dev:
        longterm.start(dev, m.addr, PAGE_SIZE, write=True, fast=False)
        with pytest.raises(DeviceError) as e:
            longterm.start(dev, m.addr, PAGE_SIZE, write=True, fast=False)
        assert e.value.errno == facts.busy_errno
        longterm.stop(dev)


def test_wrapped_range(facts, path, node) -> None:
    before = oracle_counters(node)
    arg = abi.ffi.new("struct gup_test *")
    arg.addr, arg.size = (1 << 64) - PAGE_SIZE, 2 * PAGE_SIZE
    arg.nr_pages_per_call = 1
    with Device(path) as dev:
        if facts.wrapped_errno is None:
            dev.ioctl(abi.PIN_BASIC_TEST, arg)
            assert arg.size == 0  # the loop never ran: nothing pinned, size 0 back
        else:
            with pytest.raises(DeviceError) as e:
                dev.ioctl(abi.PIN_BASIC_TEST, arg)
            assert e.value.errno == facts.wrapped_errno
    assert oracle_counters(node) == before


@pytest.mark.kmod  # upstream's gup_test WARNs here ("pages[0] is NOT dma-pinned")
def test_zero_page_is_not_pinned_and_no_warn(counted, node) -> None:
    """A read-only pin of untouched private memory meets the shared zero page,
    which GUP does not pin (v6.5, c8070b787519; Debian 6.1 by backport)."""
    data, acquired, released = counted("test", "pin_basic_test", "-W", "--no-prefault",
                                       "-s", "16K", "--no-thp")  # fmt: skip
    (result,) = data
    assert acquired == released == 0
    assert result["balance"]["expected"] == 0 and result["balance"]["exact"]


@pytest.mark.parametrize("command", [["test", "pin_basic_test"],
                                     ["bench", "pin_longterm_benchmark", "-r", "1"]],
                         ids=lambda c: c[1])  # fmt: skip
def test_untouched_thp_read_only(counted, node, command: list[str]) -> None:
    """Read faults on THP memory may map the huge zero page, which GUP pins like
    any folio; FOLL_LONGTERM unshares it first (v6.2).  gupctl's expectation,
    from the page frames after the run, must be what the counters saw."""
    data, acquired, released = counted(*command, "-W", "--no-prefault", "-s", "2M", "--thp")
    (result,) = data
    assert acquired == released == result["balance"]["expected"]
    assert result["balance"]["exact"]
    if "longterm" in command[1] and release.version()[:2] >= (6, 2):
        # 84209e87c696: no zero page of either size stays under a R/O longterm
        # pin, so all 512 pages are real, bound to this node, and pinned.
        assert acquired == 512


def test_first_call_faults(facts, path, node) -> None:
    """GUP faults on the first page (below mmap_min_addr, never mapped)."""
    before = oracle_counters(node)
    arg = abi.ffi.new("struct gup_test *")
    arg.addr, arg.size, arg.nr_pages_per_call = PAGE_SIZE, 2 * PAGE_SIZE, 1
    arg.gup_flags = abi.FOLL_WRITE
    with Device(path) as dev:
        if facts.fault_errno is None:
            dev.ioctl(abi.PIN_BASIC_TEST, arg)
            assert arg.size == 0  # success, and the errno is lost
        else:
            with pytest.raises(DeviceError) as e:
                dev.ioctl(abi.PIN_BASIC_TEST, arg)
            assert e.value.errno == facts.fault_errno
            assert arg.size == 2 * PAGE_SIZE  # a failed command writes nothing back
    assert oracle_counters(node) == before
