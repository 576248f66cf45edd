"""gupctl/cpus.py: CPU lists as the kernel spells them, and binding a thread."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from gupctl import cpus
from gupctl.errors import CpuError


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("1", (1,)), ("0,2", (0, 2)), ("0-3", (0, 1, 2, 3)), ("3, 0-1", (3, 0, 1)),
     ("1,1", (1, 1)), ("", None), ("x", None), ("1-", None), ("-1", None), ("2-1", None),
     ("0-99999", None), ("1,,2", None), ("1.5", None), ("\u0663", None), ("99999", (99999,))],
)  # fmt: skip
def test_parse(text: str, parsed: tuple[int, ...] | None) -> None:
    assert cpus.parse(text) == parsed


def test_format_is_the_kernels_cpulist() -> None:
    assert cpus.format_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert cpus.format_list((3,)) == "3" and cpus.format_list(set()) == ""
    assert cpus.parse(cpus.format_list({0, 1, 2, 5})) == (0, 1, 2, 5)


def test_threads_cycle_through_the_list() -> None:
    assert cpus.per_thread((1, 0), 3) == [1, 0, 1] and cpus.per_thread((), 3) == []
    assert [cpus.for_thread((4,), k) for k in range(2)] == [4, 4]
    assert cpus.for_thread((), 0) is None


def test_bound_binds_the_caller_and_the_threads_it_starts_and_restores_it() -> None:
    before = os.sched_getaffinity(0)
    cpu = min(before)
    seen: dict[str, set[int]] = {}

    def other() -> None:
        seen["other"] = os.sched_getaffinity(0)

    with cpus.bound(cpu):
        seen["inside"] = os.sched_getaffinity(0)
        t = threading.Thread(target=other)  # a thread started now inherits the binding
        t.start()
        t.join()
        seen["main"] = os.sched_getaffinity(0)
    assert seen["inside"] == {cpu} == seen["other"] == seen["main"]
    assert os.sched_getaffinity(0) == before
    with cpus.bound(None):
        assert os.sched_getaffinity(0) == before


def test_a_cpu_that_is_not_there_is_one_error() -> None:
    before = os.sched_getaffinity(0)
    missing = max(before) + 4000
    with pytest.raises(CpuError) as info, cpus.bound(missing):
        raise AssertionError("bound to a CPU that does not exist")
    assert f"CPU {missing}" in str(info.value) and info.value.errno == errno.EINVAL
    assert os.sched_getaffinity(0) == before
    with pytest.raises(CpuError), cpus.bound(1 << 40):  # past a cpu_set_t: no OverflowError
        raise AssertionError("bound to a CPU that cannot exist")


def test_label_names_each_thread_cpu_in_order_and_nothing_when_unbound() -> None:
    assert cpus.label([1, 0, 1]) == "@1,0,1"
    assert cpus.label([]) == ""
