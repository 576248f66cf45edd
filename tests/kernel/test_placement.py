"""Where pins leave pages, in a VM booted with movablecore= (tests/run.py).

`gupctl selftest 'placement.*'` must list and pass every placement case: the
case itself checks each page's frame against the zone spans of
/proc/zoneinfo before and after the pin.  Here the test also checks that the
zone exists, so a boot without movablecore= fails instead of running nothing.
"""

from __future__ import annotations

from conftest import check_placement

from gupctl import pagemap

CASES = 8  # {anon, thp} x (longterm {slow, fast} + short-term {pin, pin_fast})


def test_movable_zone_exists() -> None:
    movable = [z for z in pagemap.zone_spans() if z.zone == "Movable"]
    assert movable, "no populated ZONE_MOVABLE: boot with `gupctl vm --movablecore 512M`"


def test_placement_cases_pass(gupctl, node) -> None:
    check_placement(gupctl, node, "placement.*", CASES, "Movable")
