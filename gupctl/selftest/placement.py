"""Where pins leave pages: the selftest's placement.* cases.

A FOLL_LONGTERM pin must not hold a page in ZONE_MOVABLE (or CMA): memory
hot-unplug and CMA allocations need those pages to move, and a longterm pin
never ends in time.  So pin_user_pages(FOLL_LONGTERM) first migrates such
pages out (check_and_migrate_movable_folios(), mm/gup.c), then pins.  Upstream
once let CMA pages be pinned longterm (1aaf8c122918) and reverted that
(517f496e1e61).  A short-term pin must not move anything.

The oracle is independent of gup_test: each page's frame from
/proc/self/pagemap, placed in a zone by the spans /proc/zoneinfo gives (or
in a CMA area where the kernel said it reserved one: gupctl/cma.py), before
and after the pin, and the data read back (through a longterm pin, else
through the mapping).  The placement.* cases exist only where a zone
Movable is populated (boot with movablecore=; `gupctl vm --movablecore
1G`), the placement.cma.* ones where CMA is (arm64's kernels reserve some;
`gupctl vm --cma 1536M` makes it where node 1's pages land first).
"""

from __future__ import annotations

from gupctl import abi, cma, longterm, pagemap, thp, vmstat
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest.cases import GUP_COMMANDS, Case
from gupctl.selftest.outcome import Env, Outcome

MOVABLE = "Movable"
_FILL = 0x5A


def has_movable(spans: list[pagemap.ZoneSpan] | None = None) -> bool:
    """Whether this machine has a populated ZONE_MOVABLE."""
    return any(z.zone == MOVABLE for z in spans or pagemap.zone_spans())


def movable_node(env: Env, spans: list[pagemap.ZoneSpan], region: str = MOVABLE) -> int | None:
    """The test node, or else a node with `region` (a ZONE_MOVABLE: the kernel
    carves it from each node's highest zone only, so not every node has one)."""
    if env.node is not None:
        return env.node
    return next((z.node for z in spans if z.zone == region), None)


def frame_zones(mapping: Mapping, spans: list[pagemap.ZoneSpan]) -> tuple[list[int], list[str]]:
    """Each page's frame and the name of the zone that spans it ("?": none)."""
    frames = pagemap.frames(mapping.addr, mapping.size)
    zones = [getattr(pagemap.zone_of(f.pfn, spans), "zone", "?") for f in frames]
    return [f.pfn for f in frames], zones


def run(dev: Device, case: Case, env: Env) -> Outcome:
    """One placement case: the pages' zones (or CMA) before and after the pin."""
    p = case.params
    region = str(p.get("region", MOVABLE))
    spans = pagemap.zone_spans()
    if region == cma.CMA:  # first: zone_of() takes the first span that holds a frame
        areas, why = cma.areas()
        if not areas:
            return Outcome("skip", why)
        spans = areas + spans
    spec = MemorySpec(thp=p["memory"] == "thp", numa_node=movable_node(env, spans, region))
    with Mapping(spec, thp.pmd_size()) as mapping:
        mapping.fill(_FILL)
        pfns, zones = frame_zones(mapping, spans)
        outside = [z for z in zones if z != region]
        if outside:
            where = ", ".join(sorted(set(outside)))
            return Outcome("skip", f"{len(outside)} of {len(zones)} pages were in {where}, "
                           f"not {region}, before the pin")  # fmt: skip
        before = vmstat.snapshot(env.node)
        if p["longterm"]:
            longterm.start(dev, mapping.addr, mapping.size, write=True, fast=bool(p["fast"]))
            try:
                moved_pfns, moved = frame_zones(mapping, spans)
                seen = longterm.read(dev, mapping.size)
            finally:
                longterm.stop(dev)
        else:
            short_term_pin(dev, GUP_COMMANDS[str(p["command"])], mapping)
            moved_pfns, moved = frame_zones(mapping, spans)
            seen = mapping.read(0, mapping.size)
        after = vmstat.snapshot(env.node)
    balance = vmstat.Balance.between(before, after, len(pfns))
    details = {"zones_after": sorted(set(moved)), "moved": sum(a != b for a, b in
               zip(pfns, moved_pfns)), "balance": vars(balance)}  # fmt: skip
    return _verdict(bool(p["longterm"]), pfns, moved_pfns, moved, seen, balance, details, env,
                    region)  # fmt: skip


def _verdict(long: bool, pfns: list[int], moved_pfns: list[int], moved: list[str], seen: bytes,
             balance: vmstat.Balance, details: dict[str, object], env: Env,
             region: str = MOVABLE) -> Outcome:  # fmt: skip
    n = len(pfns)
    if long and region in moved:
        return Outcome("fail", f"{moved.count(region)} of {n} longterm-pinned pages stayed in "
                       f"{region}", details)  # fmt: skip
    if not long and moved_pfns != pfns:
        return Outcome("fail", f"a short-term pin moved {details['moved']} of {n} pages", details)
    if seen != bytes([_FILL]) * len(seen) or len(seen) != n * PAGE_SIZE:
        return Outcome("fail", "the data read through the pin is not what was written", details)
    # Not `exact`: a pin of a page that must move is dropped and taken again
    # after the migration (mm/gup.c), so acquired can exceed the pages.
    if env.exact_counts and (balance.acquired != balance.released or balance.acquired < n):
        return Outcome("fail", f"pin balance: {vars(balance)}", details)
    return Outcome("pass", details=details)


def short_term_pin(dev: Device, command: abi.Command, mapping: Mapping, write: bool = True,
                   repeats: int = 1) -> None:  # fmt: skip
    """`command` (a gup_test command) over all of `mapping`, in one call each time."""
    arg = abi.ffi.new("struct gup_test *")
    arg.addr = mapping.addr
    arg.nr_pages_per_call = abi.ALL_PAGES
    arg.gup_flags = abi.FOLL_WRITE if write else 0
    for _ in range(repeats):
        arg.size = mapping.size
        dev.ioctl(command, arg)
