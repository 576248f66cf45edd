"""Upstream's gup selftests in gupctl's terms: gup_test.c's options as gupctl's
commands, gup_longterm.c's results as gupctl's cases.

Shared by tests/facts/test_parity.py (every result upstream's sources list),
tests/kernel/test_anchors.py and test_compat32.py (what upstream's binaries
report).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from gupctl.selftest import cases

F = TypeVar("F", bound=Callable[..., Any])

#: gup_test.c's option, gupctl's command and subcommand, pins per page.
GUP_TEST_COMMANDS = [
    ("-u", "bench", "gup_fast_benchmark", 0),
    ("-a", "bench", "pin_fast_benchmark", 1),
    ("-L", "bench", "pin_longterm_benchmark", 1),
    ("-U", "test", "gup_basic_test", 0),
    ("-b", "test", "pin_basic_test", 1),
]


def each_gup_test_command(test: F) -> F:
    """`test` once per GUP_TEST_COMMANDS row (option, kind, command, pins)
    and pages per call (per_call: 123, and the whole range)."""
    test = pytest.mark.parametrize(("option", "kind", "command", "pins"), GUP_TEST_COMMANDS,
                                   ids=[c[2] for c in GUP_TEST_COMMANDS])(test)  # fmt: skip
    return pytest.mark.parametrize("per_call", ["123", "all"])(test)


@dataclass(frozen=True)
class GupTestRun:
    """One request, as gup_test.c's arguments and as gupctl's, and the pins it takes."""

    upstream: list[str]
    gupctl: list[str]
    pins: int


def gup_test_run(option: str, kind: str, command: str, pins_per_page: int, per_call: str,
                 page: int, size_mb: int = 4) -> GupTestRun:  # fmt: skip
    """`size_mb` MiB at `per_call` pages a call ("all": the whole range) of
    `page`-byte pages; gup_test.c repeats only the benchmarks (twice here)."""
    repeats = 2 if kind == "bench" else 1
    n = "-1" if per_call == "all" else per_call
    upstream = [option, "-m", str(size_mb), "-r", str(repeats), "-n", n]
    ours = [kind, command, "--file", "/dev/zero", "-s", f"{size_mb}M", "-n", per_call, "-r",
            str(repeats)]  # fmt: skip
    return GupTestRun(upstream, ours, (size_mb << 20) // page * repeats * pins_per_page)


def gup_test_passed(stdout: str) -> bool:
    """Whether gup_test.c reported its one result as passed, and whole."""
    results = [line for line in stdout.splitlines() if line.startswith(("ok ", "not ok "))]
    return results == ["ok 1 ioctl status 0"] and "runcated" not in stdout


LONGTERM = re.compile(
    r"R/([OW]) longterm GUP(-fast)? pin in MAP_(SHARED|PRIVATE) file mapping"
    r"|io_uring fixed buffer with MAP_(SHARED|PRIVATE) file mapping"
)
LONGTERM_BACKINGS = {"memfd": "memfd", "tmpfile": "tmpfs", "local tmpfile": "ext4"}


def longterm_case(desc: str, backing: str) -> str | None:
    m = LONGTERM.fullmatch(desc)
    if not m:
        return None
    label = LONGTERM_BACKINGS.get(backing)
    if backing.startswith("memfd hugetlb "):
        label = "hugetlb_" + cases.size_label(int(backing.split()[2]) << 10)
    if m.group(4):  # io_uring: always R/W
        return f"longterm.{label}.{m.group(4).lower()}.rw.iouring"
    rw, fast = ("rw" if m.group(1) == "W" else "ro"), ("fast" if m.group(2) else "slow")
    return f"longterm.{label}.{m.group(3).lower()}.{rw}.{fast}"


#: gup_longterm's "[RUN] DESC ... with BACKING" line before each result, and
#: the result: "ok 3 ..." ("# SKIP" after the number), "not ok 3 ...".  6.12
#: names the result "Should have worked"; 7.3 repeats the description.
RUN = re.compile(r"# \[RUN\] (.+) \.\.\. with (.+)")
RESULT = re.compile(r"(not ok|ok) \d+ (# SKIP )?.*")


def ktap_results(stdout: str) -> dict[str, str]:
    """gup_longterm's output as gupctl case name -> "pass", "skip" or "fail"
    (a memfd hugetlb "(2048 kB)" as test_parity's "2048 kB")."""
    found, name = {}, None
    for line in stdout.splitlines():
        line = line.strip()
        if m := RUN.fullmatch(line):
            backing = m.group(2).replace("(", "").replace(")", "")
            name = longterm_case(m.group(1), backing)
            assert name, f"no gupctl case for {line!r}"
        elif (m := RESULT.fullmatch(line)) and name:
            found[name] = "fail" if m.group(1) == "not ok" else "skip" if m.group(2) else "pass"
            name = None
    return found
