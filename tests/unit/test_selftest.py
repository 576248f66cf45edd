"""The selftest's case list, runner and output formats, without a kernel."""

from __future__ import annotations

import os
import re
import time

import junitparser
import pytest

from gupctl.selftest import cases, runner
from gupctl.selftest.outcome import Env, Outcome

ENV = Env("/nonexistent", 1 << 20, None, "6.12.0", None)


def test_matrix_covers_run_vmtests_and_more() -> None:
    gup = cases.gup_matrix()
    # {THP, no THP, hugetlb} x 5 commands x {w, r} x {shared, private} x {1, 512, 123, all}
    assert len(gup) == 3 * 5 * 2 * 2 * 4
    assert any(c.name == "pin_fast.thp.shared.write.n512" for c in gup)
    lt = cases.longterm_matrix([2 << 20, 1 << 30])
    assert len(lt) == (3 + 2) * 2 * 2 * 2
    assert "longterm.hugetlb_1g.shared.rw.fast" in {c.name for c in lt}


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
    "backing, shared, write, release, works",
    [
        ("ext4", True, True, "6.12.117+deb12-amd64", False),
        ("ext4", True, True, "6.1.0-56-amd64", True),  # before v6.5 nothing refused it
        ("ext4", False, True, "6.12.0", True),
        ("ext4", True, False, "6.12.0", True),
        ("tmpfs", True, True, "6.12.0", True),
        ("hugetlb", True, True, "6.12.0", True),
    ],
)
def test_longterm_expectations(backing: str, shared: bool, write: bool, release: str,
                               works: bool) -> None:  # fmt: skip
    assert cases.longterm_should_work(backing, shared, write, release) is works


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
    [(["pass", "skip"], 0), (["pass", "fail", "skip"], 1), (["skip", "skip"], 4), ([], 0)],
)
def test_kselftest_exit_codes(statuses: list[str], code: int) -> None:
    assert _report(statuses).exit_code == code


def test_ktap_lines() -> None:
    from gupctl.render import ktap

    text = "".join(ktap.ktap(_report(["pass", "fail", "skip"])))
    assert text.startswith("KTAP version 1\n1..3\n")
    assert "ok 1 t.0\n" in text and "not ok 2 t.1\n" in text and "ok 3 t.2 # SKIP why\n" in text
    assert "# t.1: why\n" in text
    assert "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0" in text


def test_junit_parses_with_an_independent_parser(tmp_path) -> None:
    from gupctl.render import ktap

    path = tmp_path / "r.xml"
    path.write_bytes(ktap.junit(_report(["pass", "fail", "skip"])))
    xml = junitparser.JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.skipped) == (3, 1, 1)
    outcomes = {c.name: [type(r).__name__ for r in c.result] for c in suite}
    assert outcomes == {"t.0": [], "t.1": ["Failure"], "t.2": ["Skipped"]}


def test_runner_times_out_a_hanging_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_case", lambda case, env: time.sleep(60))
    start = time.monotonic()
    result = runner.run_one(cases.Case("x", "gup"), ENV, timeout=0.5, log=None)
    assert result.status == "fail" and "timed out" in result.reason
    assert time.monotonic() - start < 10


def test_runner_reports_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_case", lambda case, env: os.kill(os.getpid(), 9))
    result = runner.run_one(cases.Case("x", "gup"), ENV, timeout=10, log=None)
    assert result.status == "fail" and "signal 9" in result.reason


def test_runner_passes_the_verdict_through(monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = Outcome("skip", "no hugetlb pages", {"n": 1})
    monkeypatch.setattr(runner, "run_case", lambda case, env: verdict)
    result = runner.run_one(cases.Case("x", "gup"), ENV, timeout=10, log=None)
    assert (result.status, result.reason, result.details) == ("skip", "no hugetlb pages", {"n": 1})


def test_ext4_skip_names_the_missing_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ext4 is a skip that says which step failed, not always "mkfs"."""
    from gupctl.selftest import resources

    monkeypatch.setattr(resources.shutil, "which", lambda name: None)
    with resources.scratch_ext4() as (where, why):
        assert where is None and why == "mkfs.ext4 is not installed (e2fsprogs)"
    assert resources._run("false") == "false failed: exit status 1"
    assert resources._run("ls", "/nonexistent").startswith("ls failed: ls: cannot access")
