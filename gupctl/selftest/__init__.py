"""gupctl selftest: upstream's gup_test, gup_longterm and cow R/O-pin cases, judged strictly.

Every case checks the ioctl status, that nothing was truncated, that the kernel
log stayed clean, and the exact pin balance on the test's NUMA node.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext

from gupctl.device import locate
from gupctl.memory import hugetlb_sizes
from gupctl.selftest import cases as cases_mod
from gupctl.selftest.execute import Env
from gupctl.selftest.resources import scratch_ext4
from gupctl.selftest.runner import CaseResult, Report, run

__all__ = ["CaseResult", "Report", "list_cases", "selftest"]


def list_cases(patterns: tuple[str, ...] = ()) -> list[cases_mod.Case]:
    """The cases this machine would run, filtered by shell-style name patterns."""
    return cases_mod.select(cases_mod.all_cases(hugetlb_sizes()), patterns)


def selftest(patterns: tuple[str, ...] = (), device: str | None = None,
             size: int = 128 << 20, node: int | None = None, timeout: float = 120,
             ext4_dir: str | None = None,
             progress: Callable[[CaseResult], None] | None = None) -> Report:  # fmt: skip
    """Run the selected cases against the gup_test device and report each."""
    path = locate(device)
    selected = list_cases(patterns)
    needs_ext4 = any(c.params.get("backing") == "ext4" for c in selected)
    with scratch_ext4() if needs_ext4 and ext4_dir is None else nullcontext(ext4_dir) as ext4:
        env = Env(path, size, node, os.uname().release, ext4)
        return run(selected, env, timeout, progress)
