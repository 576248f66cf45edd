"""gupctl bench on a real kernel: pin counts checked against vmstat read directly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import oracle_counters

MIB = 1 << 20
#: The running kernel's page size: 4K on x86_64, 16K on arm64-16k, 64K on ppc64el.
PAGE = os.sysconf("SC_PAGE_SIZE")
PAGES_128M = 128 * MIB // PAGE


def test_pin_fast_128m_moves_counters_by_exactly_its_pages(counted, exact) -> None:
    runs, acquired, released = counted("bench", "pin_fast_benchmark", "--size", "128M")
    assert (acquired, released) == (PAGES_128M, PAGES_128M)
    (run,) = runs
    assert run["size"] == 128 * MIB and run["nr_pages"] == PAGES_128M
    b = run["balance"]
    assert (b["acquired"], b["released"], b["exact"]) == (PAGES_128M, PAGES_128M, exact)
    assert b["outstanding_before"] == b["outstanding_after"]
    assert run["get_usec"][0] > 0


def test_gup_fast_moves_neither_counter(counted, exact) -> None:
    runs, acquired, released = counted("bench", "gup_fast_benchmark", "--size", "64M")
    assert (acquired, released) == (0, 0)
    assert runs[0]["balance"]["expected"] == 0 and runs[0]["balance"]["exact"] == exact


@pytest.mark.parametrize("per_call", ["1", "512", "123", "all"])
@pytest.mark.parametrize("command", ["pin_fast_benchmark", "pin_longterm_benchmark"])
def test_pages_per_call_all_pins_counted(counted, exact, command: str, per_call: str) -> None:
    runs, acquired, released = counted("bench", command, "-s", "32M", "-n", per_call)
    assert acquired == released == 32 * MIB // PAGE
    assert runs[0]["balance"]["exact"] == exact


def test_threads_and_repeats_multiply(counted, gupctl, node) -> None:
    runs, acquired, released = counted("bench", "pin_fast_benchmark", "-s", "16M", "-r",
                                      "3", "-j", "2", "-n", "all")  # fmt: skip
    assert acquired == released == 16 * MIB // PAGE * 6
    assert len(runs[0]["get_usec"]) == 6


def test_loop_time_holds_the_kernels_time(counted, gupctl, node) -> None:
    """Each thread's in-process loop time (loop_ns) covers its repeats' get and
    put phases as the kernel timed them (whole µs, truncated), and no more
    than the whole process took; ioctl_ns is their mean per repeat."""
    repeats, threads = 2000, 2
    start = time.monotonic_ns()
    runs, acquired, released = counted("bench", "pin_fast_benchmark", "-s", str(PAGE), "-r",
                                      str(repeats), "-j", str(threads))  # fmt: skip
    wall = time.monotonic_ns() - start
    assert acquired == released == repeats * threads
    (run,) = runs
    loops, gets, puts = run["loop_ns"], run["get_usec"], run["put_usec"]
    assert len(loops) == threads and len(gets) == len(puts) == repeats * threads
    for i, loop_ns in enumerate(loops):  # samples are in the threads' order
        kernel_us = sum(gets[i * repeats : (i + 1) * repeats]) + sum(
            puts[i * repeats : (i + 1) * repeats]
        )
        assert kernel_us * 1000 <= loop_ns < wall
    assert run["ioctl_ns"] == pytest.approx(sum(loops) / threads / repeats)


def test_cpus_bind_each_thread(node, tmp_path) -> None:
    """--cpus binds thread k to the k-th CPU of the list: the kernel says so in
    /proc/PID/task/*/status while the threads run, the JSON names them, and the
    pins still balance exactly."""
    allowed = sorted(os.sched_getaffinity(0))
    assert len(allowed) >= 2, f"gupctl's VM has two CPUs, this one {allowed}"
    want, repeats = [allowed[-1], allowed[0]], 200_000
    argv = [sys.executable, "-m", "gupctl", "bench", "pin_fast_benchmark", "-s", str(PAGE), "-r",
            str(repeats), "-j", "2", "--cpus", f"{want[0]},{want[1]}", "--json"]  # fmt: skip
    before = oracle_counters(node)
    # Output to files, not pipes: the JSON of 400,000 samples would fill a
    # pipe that nobody reads while the test polls.
    out_file, err_file = tmp_path / "out.json", tmp_path / "err"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
    seen: set[str] = set()  # every thread's allowed CPUs, as the kernel lists them
    main: set[str] = set()  # the main thread's (tid == pid), which is thread 0
    while proc.poll() is None:
        for status in Path(f"/proc/{proc.pid}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:  # the thread ended
                continue
            allowed_now = re.findall(r"^Cpus_allowed_list:\s*(\S+)$", text, re.M)
            seen.update(allowed_now)
            if status.parent.name == str(proc.pid):
                main.update(allowed_now)
        time.sleep(0.01)
    after = oracle_counters(node)
    assert proc.returncode == 0, err_file.read_text()
    (run,) = json.loads(out_file.read_text())
    assert run["cpus"] == want and run["threads"] == 2
    assert {str(cpu) for cpu in want} <= seen, f"threads' CPUs seen: {seen}"
    assert str(want[0]) in main and str(want[1]) not in main, f"main thread's: {main}"
    assert after[0] - before[0] == after[1] - before[1] == repeats * 2


@pytest.mark.parametrize(
    "backing",
    [
        ["--thp"],
        ["--no-thp"],
        ["--shared"],
        ["--read-only"],
        pytest.param(["--hugetlb", "--size", "32M"], marks=pytest.mark.huge),
        pytest.param(["--hugetlb", "--shared", "--size", "32M"], marks=pytest.mark.huge),
    ],
    ids=lambda b: "".join(b),
)
def test_backings_count_per_base_page(counted, gupctl, node, backing: list[str]) -> None:
    args = ["pin_fast_benchmark", "-n", "all", "--size", "64M", *backing]
    size = 32 * MIB if "--hugetlb" in backing else 64 * MIB
    runs, acquired, released = counted("bench", *args)
    assert acquired == released == size // PAGE
    assert runs[0]["size"] == size


def test_tmpfs_file_shared_and_removed(counted, gupctl, node) -> None:
    path = Path("/dev/shm") / f"gupctl-test-{os.getpid()}"  # tmpfs in the VM
    runs, acquired, released = counted("bench", "pin_longterm_benchmark", "--file",
                                      str(path), "--create", "--shared", "-s", "8M")  # fmt: skip
    assert acquired == released == 8 * MIB // PAGE
    assert runs[0]["backing"] == "file-shared"
    assert not path.exists()


def test_table_output_shows_balance(gupctl, exact) -> None:
    out = gupctl("bench", "gup_fast_benchmark", "pin_fast_benchmark", "-s", "4M").stdout
    label = "exact" if exact else "approx"
    assert "pin_fast_benchmark" in out and label in out and "MISMATCH" not in out


def test_check_balance_passes(gupctl) -> None:
    gupctl("bench", "pin_longterm_benchmark", "-s", "8M", "--check-balance")


def test_sweep_saved_compared_and_plotted(counted, gupctl, node, exact, tmp_path) -> None:
    """A sweep saved twice, then compared and plotted: run counts, pairs, series, and
    every run's pin balance; the timings themselves are never judged."""
    a, b, svg = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "p.svg"
    runs, acquired, released = counted("bench", "pin_fast_benchmark", "gup_fast_benchmark",
                                       "-s", "4M,8M", "-n", "1,all", "-r", "2",
                                       "--save", str(a))  # fmt: skip
    assert len(runs) == 8  # 2 commands x 2 sizes x 2 pages-per-call
    for run in runs:
        pins = run["nr_pages"] * 2 if run["command"] == "pin_fast_benchmark" else 0
        bal = run["balance"]
        assert (bal["expected"], bal["acquired"], bal["released"]) == (pins, pins, pins), run
        assert (bal["exact"], bal["scope"]) == (exact, f"node{node}" if exact else "system")
    assert acquired == released == (4 + 8) * MIB // PAGE * 2 * 2
    saved = json.loads(a.read_text())
    assert saved["format"] == "gupctl-bench/1" and saved["results"] == runs
    assert saved["kernel"] == os.uname().release

    runs_b, acquired, released = counted("bench", "pin_fast_benchmark", "-s", "4M,8M", "-n",
                                         "1,all,512", "-r", "3", "--save", str(b))  # fmt: skip
    assert len(runs_b) == 6 and all(r["balance"]["exact"] == exact for r in runs_b)
    assert acquired == released == (4 + 8) * MIB // PAGE * 3 * 3

    cmp = gupctl("compare", str(a), str(b), "--json").json()
    assert len(cmp["pairs"]) == 4  # pin_fast at 4M and 8M, n=1 and all; repeats differ
    assert len(cmp["only_in_a"]) == 4 and len(cmp["only_in_b"]) == 2  # gup_fast; n=512
    for pair in cmp["pairs"]:
        for phase in (pair["get"], pair["put"]):
            assert phase["beyond_noise"] in (True, False)  # -r 2 and 3: judged, whichever way
            assert phase["verdict"] in ("faster", "slower", "within noise")
    assert "without a match" in gupctl("compare", str(a), str(b)).stdout  # the table, exit 0

    gupctl("plot", str(a), str(b), "-o", str(svg))
    root = ET.parse(svg).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    series = root.findall(".//s:g[@class='series']", ns)
    assert len(series) == 4 + 2  # a: 2 commands x 2 sizes; b: 1 command x 2 sizes
    assert len(root.findall(".//s:path[@class='get']", ns)) == 6
    assert len(root.findall(".//s:path[@class='put']", ns)) == 6
