"""The selftest's case list, runner and output formats, without a kernel."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import junitparser
import pytest

from gupctl.selftest import cases, resources, runner
from gupctl.selftest.outcome import Env, Outcome

ENV = Env("/nonexistent", 1 << 20, None, "6.12.0", None)


def test_matrix_covers_run_vmtests_and_more() -> None:
    gup = cases.gup_matrix()
    # {THP, no THP, hugetlb} x 5 commands x {w, r} x {shared, private} x {1, 512, 123, all}
    assert len(gup) == 3 * 5 * 2 * 2 * 4
    assert any(c.name == "pin_fast.thp.shared.write.n512" for c in gup)
    lt = cases.longterm_matrix([2 << 20, 1 << 30])
    # (3 backings + 2 huge page sizes) x {shared, private} x ({R/O, R/W} x {slow, fast} + io_uring)
    assert len(lt) == (3 + 2) * 2 * (2 * 2 + 1)
    assert {"longterm.hugetlb_1g.shared.rw.fast", "longterm.ext4.private.rw.iouring"} <= {
        c.name for c in lt}  # fmt: skip


def test_names_unique_and_ktap_safe() -> None:
    names = [c.name for c in cases.all_cases([2 << 20], movable=True)]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9_.]+", n) for n in names)


def test_movable_cases_only_where_there_is_a_zone_movable() -> None:
    without = {c.name for c in cases.all_cases([2 << 20])}
    with_ = {c.name for c in cases.all_cases([2 << 20], movable=True)}
    extra = with_ - without
    assert without < with_ and len(extra) == 8 + 1
    assert all(n.startswith("placement.") or n.startswith("regress.aa6f8b2593b5.") for n in extra)
    # Each regression case is named after a commit: 12 hex digits.
    regress = [n for n in with_ if n.startswith("regress.")]
    assert len(regress) == 5 and all(re.fullmatch(r"regress\.[0-9a-f]{12}\.[a-z_]+", n)
                                     for n in regress)  # fmt: skip


@pytest.mark.parametrize(
    "backing, shared, write, release, iouring, works",
    [
        ("ext4", True, True, "6.12.117+deb12-amd64", False, False),
        ("ext4", True, True, "6.1.0-56-amd64", False, True),  # before v6.5 nothing refused it
        ("ext4", False, True, "6.12.0", False, True),
        ("ext4", True, False, "6.12.0", False, True),
        ("tmpfs", True, True, "6.12.0", False, True),
        ("hugetlb", True, True, "6.12.0", False, True),
        # io_uring: GUP's rule from v6.5; before, no file pages but shmem's and hugetlbfs'
        ("ext4", False, True, "6.12.0", True, True),
        ("ext4", True, True, "6.12.0", True, False),
        ("ext4", False, True, "6.1.0-56-amd64", True, False),
        ("memfd", True, True, "6.1.0-56-amd64", True, True),
    ],
)
def test_longterm_expectations(backing: str, shared: bool, write: bool, release: str,
                               iouring: bool, works: bool) -> None:  # fmt: skip
    assert cases.longterm_should_work(backing, shared, write, release, iouring) is works


def test_select_patterns() -> None:
    all_ = cases.all_cases([])
    assert {c.kind for c in cases.select(all_, ("cow_*",))} == {"cow"}
    assert cases.select(all_, ()) == all_


def _report(statuses: list[str]) -> runner.Report:
    results = [runner.CaseResult(f"t.{i}", s, "why" if s != "pass" else "", 0.5)
               for i, s in enumerate(statuses)]  # fmt: skip
    return runner.Report.of("6.12.0", "/dev/gup_test", 1, results)


@pytest.mark.parametrize(
    "statuses, code",
    [
        (["pass", "skip"], 0),
        (["pass", "fail", "skip"], 1),
        (["skip", "skip"], 4),
        ([], 0),
        (["pass", "xfail"], 0),
        (["xfail", "fail"], 1),
    ],
)
def test_kselftest_exit_codes(statuses: list[str], code: int) -> None:
    assert _report(statuses).exit_code == code


def test_ktap_lines() -> None:
    from gupctl.render import ktap

    text = "".join(ktap.ktap(_report(["pass", "fail", "skip", "xfail"])))
    assert text.startswith("KTAP version 1\n1..4\n")
    assert "ok 1 t.0\n" in text and "not ok 2 t.1\n" in text and "ok 3 t.2 # SKIP why\n" in text
    assert "ok 4 t.3 # XFAIL why\n" in text
    assert "# t.1: why\n" in text
    assert "# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:0" in text


def test_junit_parses_with_an_independent_parser(tmp_path) -> None:
    from gupctl.render import ktap

    path = tmp_path / "r.xml"
    path.write_bytes(ktap.junit(_report(["pass", "fail", "skip", "xfail"])))
    xml = junitparser.JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.skipped) == (4, 1, 2)
    outcomes = {c.name: [type(r).__name__ for r in c.result] for c in suite}
    assert outcomes == {"t.0": [], "t.1": ["Failure"], "t.2": ["Skipped"], "t.3": ["Skipped"]}
    assert [r.type for r in next(c for c in suite if c.name == "t.3").result] == ["xfail"]


def _one(env: Env, timeout: float) -> runner.CaseResult:
    (result,) = runner.run([cases.Case("x", "gup")], env, timeout).results
    return result


def test_runner_times_out_a_hanging_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_case", lambda case, env: time.sleep(60))
    start = time.monotonic()
    result = _one(ENV, timeout=0.5)
    assert result.status == "fail" and "timed out" in result.reason
    assert time.monotonic() - start < 10


def test_runner_reports_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_case", lambda case, env: os.kill(os.getpid(), 9))
    result = _one(ENV, timeout=10)
    assert result.status == "fail" and "signal 9" in result.reason


def test_runner_passes_the_verdict_through(monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = Outcome("skip", "no hugetlb pages", {"n": 1})
    monkeypatch.setattr(runner, "run_case", lambda case, env: verdict)
    result = _one(ENV, timeout=10)
    assert (result.status, result.reason, result.details) == ("skip", "no hugetlb pages", {"n": 1})


def test_ext4_skip_names_the_missing_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ext4 is a skip that says which step failed, not always "mkfs"."""
    from gupctl.selftest import resources

    monkeypatch.setattr(resources.shutil, "which", lambda name: None)
    with resources.scratch_ext4() as (where, why):
        assert where is None and why == "mkfs.ext4 is not installed (e2fsprogs)"
    assert resources._run("false") == "false failed: exit status 1"
    assert resources._run("ls", "/nonexistent").startswith("ls failed: ls: cannot access")


def _gup_case(name: str, memory: str = "thp") -> cases.Case:
    return cases.Case(name, "gup", {"memory": memory})


def test_runner_overlaps_cases_but_never_their_pins(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:  # fmt: skip
    """Two cases of the gup matrix in flight at once: each prepares beside the
    other, and pins (Env.pinning) alone; results come back in order."""
    log = tmp_path / "log"

    def case(case: cases.Case, env: Env) -> Outcome:
        time.sleep(0.4)  # mapping and prefaulting
        with env.pinning():
            with log.open("a") as f:
                f.write(f"{case.name} in {time.monotonic()}\n")
            time.sleep(0.2)
            with log.open("a") as f:
                f.write(f"{case.name} out {time.monotonic()}\n")
        return Outcome("pass")

    monkeypatch.setattr(runner, "run_case", case)
    env = Env("/nonexistent", 1 << 20, 0, "6.12.0", None)  # exact counts: a node
    names = [f"c{i}" for i in range(4)]
    start = time.monotonic()
    report = runner.run([_gup_case(n) for n in names], env, timeout=30)
    took = time.monotonic() - start
    assert [r.name for r in report.results] == names
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[1] for e in events] == ["in", "out"] * 4  # never two cases pinning at once
    assert took < 4 * 0.6 - 0.4, took  # but their preparations overlapped


def test_runner_runs_hugetlb_and_other_kinds_alone(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:  # fmt: skip
    running = tmp_path / "running"
    running.mkdir()

    def case(case: cases.Case, env: Env) -> Outcome:
        mine = running / case.name
        mine.touch()
        time.sleep(0.2)
        others = [p.name for p in running.iterdir() if p != mine]
        mine.unlink()
        return Outcome("fail" if others else "pass", f"beside {others}")

    monkeypatch.setattr(runner, "run_case", case)
    env = Env("/nonexistent", 1 << 20, 0, "6.12.0", None)
    todo = [_gup_case("a", "hugetlb"), _gup_case("b"), cases.Case("c", "cow"), _gup_case("d")]
    report = runner.run(todo, env, timeout=30)
    assert [r.status for r in report.results[:3]] == ["pass"] * 3, report.results


def test_runner_runs_one_at_a_time_without_exact_counts(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """Without a node (or root), the windows around the whole run count the
    pins, and nothing may pin beside a case: no overlap, and no lock."""
    running = tmp_path / "running"
    running.mkdir()

    def case(case: cases.Case, env: Env) -> Outcome:
        (running / case.name).touch()
        time.sleep(0.2)
        others = [p.name for p in running.iterdir() if p.name != case.name]
        (running / case.name).unlink()
        return Outcome("fail" if others or env.pin_lock else "pass", f"beside {others}")

    monkeypatch.setattr(runner, "run_case", case)
    env = Env("/nonexistent", 1 << 20, None, "6.12.0", None, exact_counts=False)
    report = runner.run([_gup_case("a"), _gup_case("b")], env, timeout=30)
    assert [r.status for r in report.results] == ["pass", "pass"], report.results


def test_list_json_is_each_case_as_defined() -> None:
    """`selftest --list --json`: JSON of the cases (name, kind, what each varies),
    the same cases `--list` names, in the same order."""
    import json
    import subprocess
    import sys

    def run(*args: str) -> str:
        argv = [sys.executable, "-m", "gupctl", "selftest", "--list", *args, "pin_fast.*"]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    data = json.loads(run("--json"))
    assert [c["name"] for c in data] == run().split()
    assert data and all(c["kind"] == "gup" and c["params"]["command"] == "pin_fast" for c in data)


def test_hugetlb_need_is_the_largest_case_per_size() -> None:
    all_ = cases.all_cases([2 << 20, 1 << 30])
    need = cases.hugetlb_need(all_, 128 << 20, 2 << 20)
    # the gup matrix maps 256 MB of 2 MB pages; cow.c's 1 GB cases two pages
    assert need == {2 << 20: 128, 1 << 30: 2}
    # cow.c's two huge pages: one mapped, one for COW or unsharing (hugetlb_setup(2))
    assert cases.hugetlb_need(cases.select(all_, ("cow_ro_pin.*",)), 128 << 20, 2 << 20) == {
        2 << 20: 2, 1 << 30: 2}  # fmt: skip
    assert cases.hugetlb_need(cases.select(all_, ("pin.thp.*",)), 128 << 20, 2 << 20) == {}


def _pool(root: Path, kb: int, nr: int, free: int) -> Path:
    pool = root / f"hugepages-{kb}kB"
    pool.mkdir()
    (pool / "nr_hugepages").write_text(str(nr))
    (pool / "free_hugepages").write_text(str(free))
    return pool


def test_hugetlb_pools_grow_what_is_short_and_set_it_back(tmp_path: Path) -> None:
    short = _pool(tmp_path, 2048, 10, 4)
    enough = _pool(tmp_path, 1048576, 2, 2)
    with resources.hugetlb_pools({2 << 20: 128, 1 << 30: 1, 64 << 10: 3}, tmp_path):
        assert (short / "nr_hugepages").read_text() == str(10 + 128 - 4)
        assert (enough / "nr_hugepages").read_text() == "2"  # not touched
    assert (short / "nr_hugepages").read_text() == "10"
    assert not (tmp_path / "hugepages-64kB").exists()  # no such pool: left to the cases


def test_cow_layouts_are_cow_cs() -> None:
    thp = tuple((4 << 10) << order for order in range(2, 10))  # the VM's: 16 kB to 2 MB
    got = cases.layouts(list(thp), 2 << 20, [2 << 20, 1 << 30], 2 << 20)
    names = [layout.name for layout in got]
    # base page and swapped, PMD THP and swapped, six runs per THP size, each huge page size
    assert len(names) == len(set(names)) == 2 + 2 + 6 * 8 + 2
    assert {"anon", "anon_swap", "thp", "thp_swap", "hugetlb", "hugetlb_1g", "pte_mapped_thp_16k",
            "single_pte_of_thp_swap_64k", "partial_mremap_thp_2m"} <= set(names)  # fmt: skip
    assert [(lay.run, lay.swap) for lay in got if lay.name == "pte_mapped_thp_swap_16k"] == [
        ("pte_mapped_thp", True)]  # fmt: skip
    cow = cases.cow_cases(got)
    # vmsplice() 4, io_uring 2, R/O pins 3 states x {GUP, GUP-fast}
    assert len(cow) == len(got) * (4 + 2 + 3 * 2)
    assert "cow_vmsplice.thp_swap.in_child_mprotect" in {c.name for c in cow}
    non_anon = cases.non_anon_layouts(2 << 20, [2 << 20, 1 << 30], 2 << 20)
    assert [lay.name for lay in non_anon] == ["zeropage", "memfd", "tmpfile", "huge_zeropage",
                                              "memfd_hugetlb", "memfd_hugetlb_1g"]  # fmt: skip
    # 6.1: no mTHP sizes, only the PMD size
    assert len(cases.layouts([2 << 20], 2 << 20, [2 << 20], 2 << 20)) == 2 + 2 + 6 + 1


def test_exclude_patterns() -> None:
    all_ = cases.all_cases([2 << 20, 1 << 30], thp_sizes=(2 << 20,), default_hugetlb=2 << 20)
    kept = cases.select(all_, ("cow_*",), ("*.hugetlb_1g.*", "*.memfd_hugetlb_1g.*"))
    assert kept and all(c.name.startswith("cow_") and "_1g." not in c.name for c in kept)
    assert len(kept) == len(cases.select(all_, ("cow_*",))) - 12 - 2
