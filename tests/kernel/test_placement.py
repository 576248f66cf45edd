"""Where pins leave pages, in a VM booted with movablecore= (tests/run.py).

`gupctl selftest 'placement.*'` must list and pass every placement case: the
case itself checks each page's frame against the zone spans of
/proc/zoneinfo before and after the pin.  Here the test also checks that the
zone exists, so a boot without movablecore= fails instead of running nothing.
"""

from __future__ import annotations

from conftest import oracle_counters

from gupctl import pagemap

CASES = 8  # {anon, thp} x (longterm {slow, fast} + short-term {pin, pin_fast})


def test_movable_zone_exists() -> None:
    movable = [z for z in pagemap.zone_spans() if z.zone == "Movable"]
    assert movable, "no populated ZONE_MOVABLE: boot with `gupctl vm --movablecore 512M`"


def test_placement_cases_pass(gupctl, node) -> None:
    before = oracle_counters(node)
    report = gupctl("selftest", "--json", "placement.*", check=False).json()
    after = oracle_counters(node)
    bad = [f"{r['name']}: {r['status']} {r.get('reason')}" for r in report["results"]
           if r["status"] != "pass"]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert report["counts"]["pass"] == CASES
    longterm = [r for r in report["results"] if ".longterm." in r["name"]]
    assert all(r["details"]["moved"] > 0 for r in longterm)  # the pins moved pages
    assert all("Movable" not in r["details"]["zones_after"] for r in longterm)
    short = [r for r in report["results"] if ".shortterm." in r["name"]]
    assert all(r["details"]["moved"] == 0 for r in short)
    assert all(r["details"]["zones_after"] == ["Movable"] for r in short)
    if node is not None:
        assert after[0] - before[0] == after[1] - before[1] > 0
