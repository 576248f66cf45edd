"""The selftest's regression cases (gupctl/selftest/regress.py) on a real kernel.

Each case is named after the upstream commit whose bug it would catch.  All
must pass: the zero-page case is skipped only on the in-kernel gup_test
(which WARNs on the unpinned zero page), and the migration-failure case
exists only where there is a ZONE_MOVABLE (the movablecore= boot of
tests/run.py, which runs this file too).
"""

from __future__ import annotations

import os

from conftest import oracle_counters

from gupctl import pagemap

ALWAYS = ["regress.c8070b787519.zero_page_not_pinned", "regress.e8ae6fd67021.wrapped_range_refused"]
MOVABLE = "regress.aa6f8b2593b5.no_leak_when_migration_fails"


def test_regression_cases(gupctl, node) -> None:
    movable = any(z.zone == "Movable" for z in pagemap.zone_spans())
    kmod = os.path.exists("/sys/module/gupctl")
    before = oracle_counters(node)
    report = gupctl("selftest", "--json", "regress.*", check=False).json()
    after = oracle_counters(node)
    got = {r["name"]: r for r in report["results"]}
    assert sorted(got) == sorted(ALWAYS + ([MOVABLE] if movable else []))
    for name, r in got.items():
        want = "skip" if name == ALWAYS[0] and not kmod else "pass"
        assert r["status"] == want, f"{name}: {r['status']} {r.get('reason')}"
    if kmod:
        zero = got[ALWAYS[0]]["details"]
        assert zero["pins_of_the_zero_page"] == 64 * 50 and zero["acquired"] < 64 * 25
    if movable:  # the longterm pin failed, and gave back every pin it took
        assert got[MOVABLE]["details"]["pinned"] is False
        assert got[MOVABLE]["details"]["errno"] == "ENOMEM"
    assert after[0] - before[0] == after[1] - before[1]
