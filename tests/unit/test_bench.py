"""bench.run with the kernel's answers injected at the ioctl boundary."""

from __future__ import annotations

import errno
import threading
import time

import pytest

from gupctl import abi, bench
from gupctl._libc import lib
from gupctl.device import Device
from gupctl.errors import Truncated
from gupctl.memory import PAGE_SIZE


class FakeDevice(Device):
    """Answers like the kernel would; `short` bytes short on every call."""

    def __init__(self, short: int = 0) -> None:
        self.path, self.fd, self.short, self.calls = "fake", -1, short, 0

    def prepare(self, command: abi.Command, arg: object = None):  # type: ignore[override]
        return lambda: self.ioctl(command, arg)

    def repeat(self, command: abi.Command, arg: object, size: int, repeats: int,  # type: ignore[override]
               stop=lambda: False):  # fmt: skip
        return self._repeat_in_python(command, arg, size, repeats, stop)

    def ioctl(self, command: abi.Command, arg: object = None) -> None:
        self.calls += 1
        arg.size -= self.short  # type: ignore[attr-defined]
        arg.get_delta_usec, arg.put_delta_usec = 10 * self.calls, 5  # type: ignore[attr-defined]


def test_stats_and_expected_pins() -> None:
    spec = bench.RunSpec(abi.PIN_FAST_BENCHMARK, size=8 * PAGE_SIZE, repeats=3, threads=2)
    result = bench.run(FakeDevice(), spec)
    assert sorted(result.get_usec) == [10, 20, 30, 40, 50, 60]
    assert result.get.min == 10 and result.get.median == 35 and result.get.max == 60
    assert result.balance.expected == 8 * 3 * 2
    assert result.get_ns_per_page == 35 * 1000 / 8
    assert bench.expected_pins(bench.RunSpec(abi.GUP_FAST_BENCHMARK, size=8 * PAGE_SIZE)) == 0


def test_short_size_is_truncation() -> None:
    spec = bench.RunSpec(abi.PIN_LONGTERM_BENCHMARK, size=8 * PAGE_SIZE)
    with pytest.raises(Truncated) as info:
        bench.run(FakeDevice(short=PAGE_SIZE), spec)
    assert (info.value.asked, info.value.got) == (8 * PAGE_SIZE, 7 * PAGE_SIZE)


class FaultingDevice(FakeDevice):
    """The kmod's answer when GUP's first call faults: that call's errno."""

    def ioctl(self, command: abi.Command, arg: object = None) -> None:
        from gupctl.errors import DeviceError

        raise DeviceError(f"{command.name} on fake", errno.EFAULT, "fake", command.name)


def test_first_call_fault_is_truncation_as_upstream_says_it() -> None:
    spec = bench.RunSpec(abi.PIN_BASIC_TEST, size=8 * PAGE_SIZE)
    with pytest.raises(Truncated) as info:
        bench.run(FaultingDevice(), spec)
    assert (info.value.asked, info.value.got) == (8 * PAGE_SIZE, 0)


def test_cffi_calls_release_the_gil() -> None:
    """Two threads each sleeping 0.4 s in C finish together if the GIL is dropped."""
    start = time.monotonic()
    threads = [threading.Thread(target=lib.usleep, args=(400_000,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start < 0.75


def test_c_loop_is_built_and_reports_errno() -> None:
    """The repeat loop in C (gupctl._loop, built by `pip install`) is there and
    turns a failed ioctl into the same typed error as the Python loop."""
    from gupctl import device
    from gupctl.errors import DeviceError

    assert device._loop is not None, "gupctl._loop is not built: pip install -e ."
    dev = Device("/dev/null")
    try:
        arg = abi.ffi.new("struct gup_test *")
        with pytest.raises(DeviceError) as info:
            dev.repeat(abi.PIN_FAST_BENCHMARK, arg, 4096, 10)
        assert info.value.errno == errno.ENOTTY
    finally:
        dev.close()
