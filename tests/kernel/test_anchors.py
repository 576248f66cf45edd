"""Upstream's gup_test and gup_longterm through the kmod: the anchors.

Both are built from Debian's linux-source for the guest's own architecture
(tests/anchors.py, on the host, into the cache the guest reads), unmodified,
and run here against the kmod's debugfs file, as upstream runs them against
the kernel's.  They must pass with balanced pins, and gupctl must count what
they count: the same pins for the same request (gup_test), the same results
per case (gup_longterm).  Oracles: their own KTAP, node 1's pin counters,
and gupctl's JSON.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import oracle_counters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import anchors  # noqa: E402
import upstream_names  # noqa: E402

pytestmark = pytest.mark.kmod  # through the kmod's debugfs file

DEBUGFS = "/sys/kernel/debug/gup_test"
PAGE = os.sysconf("SC_PAGE_SIZE")
#: The series of the running kernel ("7.3" of "7.3.4+deb13-arm64").
SERIES = ".".join(os.uname().release.split(".")[:2])
#: kselftest's totals line (tools/testing/selftests/kselftest.h).
TOTALS = re.compile(r"# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) "
                    r"error:(\d+)")  # fmt: skip


@pytest.fixture(scope="session")
def bins() -> Path:
    """The directory tests/anchors.py built for this machine and series."""
    path = anchors.link(platform.machine(), SERIES)
    missing = [p for p in anchors.PROGRAMS if not (path / p).exists()]
    if missing:
        pytest.fail(f"no upstream {', '.join(missing)} at {path}: run `python tests/anchors.py "
                    f"--arch ARCH --kernel {SERIES}` on the host first")  # fmt: skip
    if not Path(DEBUGFS).exists():
        pytest.fail(f"no {DEBUGFS} (gupctl.ko debugfs=0?)")
    return path


def counted_run(argv: list[str], node: int | None, cwd: Path | None = None
                ) -> tuple[subprocess.CompletedProcess[str], int, int]:  # fmt: skip
    """Run `argv` (in `cwd`) with its memory bound to `node`; node `node`'s
    acquired and released deltas around it."""
    from gupctl.numa import bind_task

    def child() -> None:
        if node is not None:
            bind_task(node)

    before = oracle_counters(node)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, preexec_fn=child,
                          cwd=cwd)  # fmt: skip
    after = oracle_counters(node)
    return proc, after[0] - before[0], after[1] - before[1]


@upstream_names.each_gup_test_command
def test_gup_test_pins_like_gupctl(
    bins: Path, counted, node, option: str, kind: str, command: str, pins: int, per_call: str
) -> None:
    run = upstream_names.gup_test_run(option, kind, command, pins, per_call, PAGE)
    proc, acquired, released = counted_run([str(bins / "gup_test"), *run.upstream], node)
    assert proc.returncode == 0 and upstream_names.gup_test_passed(proc.stdout), proc.stdout
    _, ours_acquired, ours_released = counted(*run.gupctl)
    assert acquired == released and ours_acquired == ours_released
    if option == "-L" and _may_migrate():
        # A longterm pin of a page in CMA (arm64 kernels reserve some on every
        # node) drops the pins of its whole call, migrates, and pins again
        # (mm/gup.c, __gup_longterm_locked): more acquired, never fewer.
        assert acquired >= run.pins and ours_acquired >= run.pins
    else:
        assert acquired == run.pins == ours_acquired


def _may_migrate() -> bool:
    """Whether a longterm pin may find pages to move: a CMA area or a ZONE_MOVABLE."""
    from gupctl.selftest import placement

    cma = Path("/sys/kernel/mm/cma")
    return (cma.is_dir() and any(cma.iterdir())) or placement.has_movable()


def _totals(stdout: str) -> dict[str, int]:
    m = TOTALS.search(stdout)
    assert m, stdout[-2000:]
    return dict(zip(("pass", "fail", "xfail", "xpass", "skip", "error"), map(int, m.groups())))


def test_gup_longterm_passes_balanced_and_gupctl_agrees(
    bins: Path, gupctl, node, tmp_path: Path
) -> None:
    # Its "local tmpfile" is made in the directory it runs in.
    proc, acquired, released = counted_run([str(bins / "gup_longterm")], node, tmp_path)
    totals = _totals(proc.stdout)
    assert proc.returncode == 0 and totals["fail"] == totals["error"] == 0, proc.stdout
    assert totals["pass"] > 0, proc.stdout
    assert acquired == released, (acquired, released)

    # gupctl's longterm.* cases are gup_longterm.c's (tests/facts/test_parity.py),
    # its io_uring ones aside: upstream's build has no liburing.  Each case
    # upstream ran is one of gupctl's, and what passed there passes here.
    # Upstream leaves out, or skips, the huge page sizes it finds too few free
    # pages of; gupctl grows the pools, so it may run and pass more.
    theirs = upstream_names.ktap_results(proc.stdout)
    assert theirs and set(theirs.values()) <= {"pass", "skip"}, theirs
    ran = gupctl("selftest", "longterm.*", "--exclude", "*.iouring", "--json",
                 check=False)  # fmt: skip
    ours = {r["name"]: r["status"] for r in ran.json()["results"]}
    assert ran.returncode == 0 and set(ours.values()) == {"pass"}, ran.stdout
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
