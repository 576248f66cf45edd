"""Upstream's names of gup_longterm.c's results, as gupctl names the same cases.

Shared by tests/facts/test_parity.py (every result upstream's sources list)
and tests/kernel/test_anchors.py (every result upstream's binary reports).
"""

from __future__ import annotations

import re

from gupctl.selftest import cases

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
