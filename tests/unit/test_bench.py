"""bench.run with the kernel's answers injected at the ioctl boundary."""

from __future__ import annotations

import errno
import os
import termios
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

    assert device.native is not None, "gupctl._loop is not built: pip install -e ."
    dev = Device("/dev/null")
    try:
        arg = abi.ffi.new("struct gup_test *")
        with pytest.raises(DeviceError) as info:
            dev.repeat(abi.PIN_FAST_BENCHMARK, arg, 4096, 10)
        assert info.value.errno == errno.ENOTTY
    finally:
        dev.close()


class _Fionread(abi.Command):
    """FIONREAD, which a pipe answers with success by writing the bytes it
    holds into the first int of its argument (get_delta_usec's low half): a
    stand-in ioctl the C loop can repeat here."""

    def number(self, encoding=None) -> int:  # type: ignore[no-untyped-def]
        return termios.FIONREAD


def test_c_loop_grows_its_buffers_and_times_itself() -> None:
    """More repeats than one chunk's buffer (MAX_CHUNK): the arrays grow and
    hold one sample per repeat, written by C; the loop's wall time is there."""
    from gupctl import device, samples

    rfd, wfd = os.pipe()
    os.write(wfd, b"x" * 7)
    dev = Device("/dev/null")
    os.dup2(rfd, dev.fd)
    try:
        arg = abi.ffi.new("struct gup_test *")
        arg.put_delta_usec = 3
        repeats = device.MAX_CHUNK * 2 + 5
        command = _Fionread("FIONREAD", 0, abi.Dir.READ, "struct gup_test")
        result = dev.repeat(command, arg, 4096, repeats)
    finally:
        dev.close()
        os.close(rfd)
        os.close(wfd)
    assert isinstance(result.get_usec, samples.Samples)
    assert len(result.get_usec) == len(result.put_usec) == repeats
    assert set(result.get_usec) == {7} and set(result.put_usec) == {3}
    assert result.loop_ns > 0


@pytest.mark.parametrize("values", [[5], [3, 1], [9, 1, 4, 4, 2**40], list(range(1001, 0, -1))])
def test_stats_in_c_match_python(values: list[int]) -> None:
    import statistics

    from gupctl import samples

    assert samples.native is not None
    expected = (min(values), statistics.median(values), max(values), statistics.fmean(values))
    assert samples.summary(samples.of(values)) == pytest.approx(expected)
    with pytest.raises(ValueError):
        samples.summary(samples.new())


def test_ioctl_ns_is_the_mean_thread_loop_per_repeat() -> None:
    spec = bench.RunSpec(abi.PIN_FAST_BENCHMARK, size=8 * PAGE_SIZE, repeats=3, threads=2)
    result = bench.run(FakeDevice(), spec)
    assert len(result.loop_ns) == 2 and all(ns > 0 for ns in result.loop_ns)
    assert result.ioctl_ns == pytest.approx(sum(result.loop_ns) / 2 / 3)


class WhereDevice(FakeDevice):
    """Records, per ioctl, whether the caller's thread issued it and the CPUs it
    could run on (thread idents are reused, so no more than that)."""

    def __init__(self) -> None:
        super().__init__()
        self.where: list[tuple[bool, set[int]]] = []

    def ioctl(self, command: abi.Command, arg: object = None) -> None:
        caller = threading.current_thread() is threading.main_thread()
        self.where.append((caller, os.sched_getaffinity(0)))
        super().ioctl(command, arg)


def test_cpus_bind_each_thread_and_the_caller_comes_back() -> None:
    before = os.sched_getaffinity(0)
    first, second = min(before), max(before)  # the same CPU on a one-CPU machine
    device = WhereDevice()
    spec = bench.RunSpec(abi.PIN_FAST_BENCHMARK, size=PAGE_SIZE, repeats=2, threads=3,
                         cpus=(first, second))  # fmt: skip
    result = bench.run(device, spec)
    assert result.cpus == [first, second, first]
    # thread 0 is the caller; threads 1 and 2 take the list's second and first
    assert [cpus for caller, cpus in device.where if caller] == [{first}] * 2
    others = [cpus for caller, cpus in device.where if not caller]
    assert sorted(others, key=min) == sorted([{second}] * 2 + [{first}] * 2, key=min)
    assert os.sched_getaffinity(0) == before
    unbound = bench.run(WhereDevice(), bench.RunSpec(abi.PIN_FAST_BENCHMARK, size=PAGE_SIZE))
    assert unbound.cpus == []


def test_balance_sees_every_cpu_of_the_process_while_threads_are_bound(monkeypatch) -> None:
    # balance.measure() wakes every CPU the process may use; a binding of the
    # calling thread around it would hide all but one.
    from gupctl import balance

    seen: list[set[int]] = []
    measure = balance.measure

    def spy(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        seen.append(os.sched_getaffinity(0))
        return measure(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(balance, "measure", spy)
    before = os.sched_getaffinity(0)
    spec = bench.RunSpec(abi.PIN_FAST_BENCHMARK, size=PAGE_SIZE, cpus=(min(before),))
    bench.run(WhereDevice(), spec)
    assert seen == [before]
