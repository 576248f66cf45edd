"""The whole `gupctl selftest` on a real kernel: every case passes, outputs agree."""

from __future__ import annotations

import os
import re
from pathlib import Path

import junitparser
from conftest import oracle_counters

from gupctl.release import version
from gupctl.selftest import cow, regress
from gupctl.selftest.resources import hugepages_root

# run_vmtests.sh's gup matrix (plus all-pages-per-call), its default runs and
# dump (and gupctl's two), gup_longterm's matrix for memfd/tmpfs/ext4 and at
# least one hugetlb size (with io_uring), cow's 12 tests on at least its base
# page, PMD-sized THP in eight layouts, both swapped or not, and huge page
# (6.1: no mTHP sizes).
MIN_CASES = 3 * 5 * 2 * 2 * 4 + 4 + 3 + 4 * 2 * 5 + (2 + 8 + 1) * 12


#: cow.c's 1 GB huge page layouts: 4.5 minutes under TCG (each page faulted
#: in, copied and compared at a few hundred MB/s).  They run once in CI, in
#: the full selftest of one kernel; the others leave them out (--no-1g).
ONE_GB = ("--exclude=cow_*.hugetlb_1g.*", "--exclude=cow_ro_pin.memfd_hugetlb_1g.*")
#: cow.c's expected failures, and only those: vmsplice() on hugetlb may leak,
#: at any huge page size (hugetlb_1g, arm64's hugetlb_32m and hugetlb_64k).
XFAIL = re.compile(r"cow_vmsplice\.hugetlb(_\d+[kmg])?\.\w+")


def test_full_selftest(gupctl, node, tmp_path, request) -> None:
    junit = tmp_path / "selftest.xml"
    exclude = ONE_GB if request.config.getoption("--no-1g") else ()
    before = oracle_counters(node)
    ran = gupctl("selftest", "--junit", str(junit), *exclude, check=False, timeout=3000)
    after = oracle_counters(node)
    print(ran.stdout)  # the KTAP, for the log (tests/run.py passes -rP)
    lines = ran.stdout.splitlines()
    assert lines[:2] == ["KTAP version 1", lines[1]] and lines[1].startswith("1..")
    plan = int(lines[1].removeprefix("1.."))
    results = [line for line in lines if re.match(r"(not )?ok \d+ ", line)]
    assert len(results) == plan >= MIN_CASES
    # The VM has 1 GB huge pages: their cow.c cases are run unless left out.
    assert exclude or [line for line in results if ".hugetlb_1g." in line]
    failed = [line for line in lines if line.startswith(("not ok", "# ")) and "Totals" not in line]
    assert not failed, "\n".join(failed)
    # The VM has every resource the cases need (huge pages of both sizes,
    # ext4, swap, io_uring).  One case of gupctl's own, not upstream's, needs
    # the kmod and skips on the in-kernel gup_test, saying why.
    kmod_only = f"regress.c8070b787519.zero_page_not_pinned # SKIP {regress.NEEDS_KMOD}"
    skipped = [re.sub(r"^ok \d+ ", "", line) for line in results if "# SKIP" in line]
    kmod = os.path.exists("/sys/module/gupctl")
    assert skipped == ([] if kmod else [kmod_only]), skipped
    xfail = [line.split()[2] for line in results if "# XFAIL" in line]
    assert all(XFAIL.fullmatch(name) for name in xfail), xfail
    assert ran.returncode == 0, ran.stderr
    passed = plan - len(xfail) - len(skipped)
    assert f"# Totals: pass:{passed} fail:0 xfail:{len(xfail)} xpass:0 skip:{len(skipped)} " in (
        ran.stdout)  # fmt: skip

    (suite,) = list(junitparser.JUnitXml.fromfile(str(junit)))
    skips = len(skipped) + len(xfail)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (plan, 0, 0, skips)
    assert [c.name for c in suite] == [line.split()[2] for line in results]

    # Every pin taken during the run was released.
    acquired, released = after[0] - before[0], after[1] - before[1]
    assert acquired == released > 0


#: Where the kernels of the matrix differ: gup_longterm's file and hugetlb
#: cases (R/W pins of shared ext4 pages fail from v6.5; io_uring refused
#: ext4 before it), cow.c's tests (unsharing since v6.2, mTHP since v6.8)
#: and the dump.  tests/run.py runs this subset, not the full selftest, on
#: the older kernels, to keep CI inside its time.
SUBSET = ("longterm.*", "cow_*", "dump.*")


def test_selftest_subset(gupctl, node) -> None:
    before = oracle_counters(node)
    ran = gupctl("selftest", "--json", *SUBSET, *ONE_GB, check=False, timeout=1800)
    after = oracle_counters(node)
    report = ran.json()
    counts = report["counts"]
    # Before v6.2, cow.c's non-anonymous R/O pins skip, naming the fix (Debian 6.1).
    old = version(os.uname().release)[:2] < (6, 2)
    expected = {r["name"] for r in report["results"] if old and r["name"].endswith(
        tuple(f".private.{f}" for f in ("slow", "fast")))}  # fmt: skip
    assert all(r["status"] == "skip" and cow.UNRELIABLE_BEFORE_6_2 in r["reason"]
               for r in report["results"] if r["name"] in expected)  # fmt: skip
    xfail = {r["name"] for r in report["results"] if r["status"] == "xfail"}
    assert all(XFAIL.fullmatch(name) for name in xfail), xfail
    bad = [f"{r['name']}: {r.get('reason')}" for r in report["results"]
           if r["status"] not in ("pass", "xfail") and r["name"] not in expected]  # fmt: skip
    assert not bad, "\n".join(bad)
    listed = gupctl("selftest", "--list", *SUBSET, *ONE_GB).stdout.split()
    assert counts["pass"] + len(xfail) + len(expected) == len(report["results"]) == len(listed)
    assert _covers_every_size(listed)
    assert ran.returncode == 0, ran.stderr
    acquired, released = after[0] - before[0], after[1] - before[1]
    assert acquired == released > 0


def test_an_empty_hugetlb_pool_is_grown_then_restored(gupctl, node) -> None:
    """As upstream's hugetlb_setup(): a run that needs huge pages the pool lacks
    grows the pool (here from nothing to the 256 MB the gup matrix maps, on
    the node the cases are bound to), and sets it back when the run ends."""
    pool = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    used = hugepages_root(node) / "hugepages-2048kB" / "nr_hugepages"
    before = pool.read_text()
    pool.write_text("0")
    try:
        ran = gupctl("selftest", "--json", "gup.hugetlb.private.write.n1", check=False)
        during = ran.json()["results"][0]
        assert (during["status"], during["reason"]) == ("pass", "")
        assert used.read_text().strip() == "0", "the pool was not set back"
    finally:
        pool.write_text(before)


def test_list_and_patterns(gupctl) -> None:
    names = gupctl("selftest", "--list").stdout.split()
    assert len(names) == len(set(names)) >= MIN_CASES
    ran = gupctl("selftest", "--json", "pin_fast.thp.*.write.n512")
    report = ran.json()
    assert [r["name"] for r in report["results"]] == [
        "pin_fast.thp.shared.write.n512", "pin_fast.thp.private.write.n512"]  # fmt: skip
    assert report["counts"] == {"pass": 2, "fail": 0, "skip": 0, "xfail": 0}
    assert report["exit_code"] == 0


def test_no_match_is_a_usage_error(gupctl) -> None:
    ran = gupctl("selftest", "no_such_case*", check=False)
    assert ran.returncode == 2 and "no case matches" in ran.stderr


def _covers_every_size(listed: list[str]) -> bool:
    """The cases span what this kernel offers, read from sysfs here, not from
    gupctl: gup_longterm's 10 tests on its 3 backings (4 with hugetlb), the
    dumps, and cow.c's 12 tests per THP size (mTHP sizes by name, v6.8) and
    per hugetlb size."""
    mm = Path("/sys/kernel/mm")
    thp_kib = [int(d.name[10:-2]) for d in (mm / "transparent_hugepage").glob("hugepages-*kB")
               if (d / "enabled").exists()]  # fmt: skip
    hugetlb_kib = [int(d.name[10:-2]) for d in (mm / "hugepages").glob("hugepages-*kB")]
    longterm = [n for n in listed if n.startswith("longterm.")]
    cow = [n for n in listed if n.startswith("cow_ro_pin.")]
    labels = [f"_{kib >> 10}m." if kib >= 1024 else f"_{kib}k." for kib in thp_kib]
    assert len(longterm) >= 10 * (3 + bool(hugetlb_kib)), longterm
    assert len([n for n in listed if n.startswith("dump.")]) == 3
    assert all(len([n for n in cow if label in n]) >= 12 for label in labels), labels
    assert bool(hugetlb_kib) == any(".hugetlb" in n for n in cow)
    if (mm / "transparent_hugepage").is_dir():
        assert any(n.startswith("cow_ro_pin.thp.") for n in cow)
    return True
