"""gupctl selftest: upstream's gup_test, gup_longterm and cow R/O-pin cases, judged strictly.

Every case checks the ioctl status, that nothing was truncated, that the kernel
log stayed clean, and the exact pin balance on the test's NUMA node (where there is
none, or no root to fold the counters, the whole run's balance instead).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack

from gupctl import balance, cma, thp, vmstat
from gupctl.device import locate
from gupctl.errors import MappingError
from gupctl.memory import hugetlb_page_size, hugetlb_sizes
from gupctl.selftest import cases as cases_mod
from gupctl.selftest import placement, resources
from gupctl.selftest.outcome import Env
from gupctl.selftest.runner import CaseResult, Report, run

__all__ = ["CaseResult", "Report", "list_cases", "selftest"]


def list_cases(patterns: tuple[str, ...] = (),
               exclude: tuple[str, ...] = ()) -> list[cases_mod.Case]:  # fmt: skip
    """The cases this machine would run, filtered by shell-style name
    patterns, less those that match a pattern of `exclude`."""
    movable = placement.has_movable()
    every = cases_mod.all_cases(hugetlb_sizes(), movable, tuple(thp.sizes()), thp.pmd_size(),
                                _default_hugetlb(), bool(cma.areas()[0]))  # fmt: skip
    return cases_mod.select(every, patterns, exclude)


def selftest(patterns: tuple[str, ...] = (), device: str | None = None,
             size: int = 128 << 20, node: int | None = None, timeout: float = 120,
             ext4_dir: str | None = None,
             progress: Callable[[CaseResult], None] | None = None,
             exclude: tuple[str, ...] = ()) -> Report:  # fmt: skip
    """Run the selected cases against the gup_test device and report each."""
    path = locate(device)
    selected = list_cases(patterns, exclude)
    needs_ext4 = any(c.params.get("backing") == "ext4" for c in selected)
    exact = node is not None and vmstat.can_refresh()
    with ExitStack() as stack:
        if needs_ext4 and ext4_dir is None:
            ext4, no_ext4 = stack.enter_context(resources.scratch_ext4())
        else:
            ext4, no_ext4 = ext4_dir, "the ext4 cases were not selected"
        no_swap = ""
        if any(c.kind == "cow" and c.params["layout"].swap for c in selected):  # type: ignore[attr-defined]
            no_swap = stack.enter_context(resources.scratch_swap())
        pools = _hugetlb_need(selected, size)
        stack.enter_context(resources.hugetlb_pools(pools, resources.hugepages_root(node)))
        stack.enter_context(thp.allowed(_thp_need(selected)))
        env = Env(path, size, node, os.uname().release, ext4, exact_counts=exact,
                  no_ext4=no_ext4, no_swap=no_swap)  # fmt: skip
        if exact:
            return run(selected, env, timeout, progress)
        report, pins = _windowed(lambda: run(selected, env, timeout, progress), node)
        return Report.of(report.kernel, report.device, report.node, report.results, pins)


def _default_hugetlb() -> int | None:
    """The default huge page size; None without hugetlb (its cases skip)."""
    try:
        return hugetlb_page_size()
    except MappingError:
        return None


def _hugetlb_need(selected: list[cases_mod.Case], size: int) -> dict[int, int]:
    default = _default_hugetlb()
    return {} if default is None else cases_mod.hugetlb_need(selected, size, default)


def _thp_need(selected: list[cases_mod.Case]) -> list[int]:
    """The THP sizes cow.c's layouts of `selected` populate."""
    layouts = [c.params["layout"] for c in selected if c.kind == "cow"]
    return sorted({lay.size for lay in layouts if lay.kind == "thp"})  # type: ignore[attr-defined]


def _windowed(op: Callable[[], Report], node: int | None) -> tuple[Report, vmstat.Balance]:
    """The whole run between two control windows, read as balance.measure()
    reads them (folded by stat_refresh, or after waiting for the kernel's own
    folding without root).  Per case the counts cannot be exact here (other
    pin users, or per-CPU batches no one may fold); for the run as a whole the
    outstanding pins must come back to where they were, and the windows must
    show nobody else pinning, or the run fails (runner.run_balanced)."""
    reader = balance.Reader(node)
    window = reader.settle + balance.WINDOW_MIN
    c0 = reader.read()
    reader.wait(window)
    c1 = reader.read()
    report = op()
    reader.wait(reader.settle)
    r1 = reader.read()
    reader.wait(window)
    c2 = reader.read()
    return report, vmstat.Balance.windowed([c0, c1, r1, c2], None, reader.settle, 1)
