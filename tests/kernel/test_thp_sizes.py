"""--thp-size on a real kernel: every THP size it lists, pinned and counted.

The oracles are the kernel's own: the per-size fault counters
(hugepages-<size>kB/stats/anon_fault_alloc, v6.10; the PMD size's
thp_fault_alloc in /proc/vmstat before it) say how many folios of the size
backed the buffer, vmstat's pin counters how many pages were pinned, and the
THP knobs read back after the run say that gupctl put them back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gupctl import thp

pytestmark = pytest.mark.huge
PAGE = os.sysconf("SC_PAGE_SIZE")
ROOT = Path("/sys/kernel/mm/transparent_hugepage")
#: Folios of each size per run: several, so that one fault's luck cannot pass it.
FOLIOS = 4


def _knobs() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.rglob("enabled"))}


def _faults(size: int) -> tuple[int, int]:
    """Folios of `size` the kernel allocated at faults, and fell back from."""
    stats = ROOT / f"hugepages-{size >> 10}kB" / "stats"
    if stats.is_dir():
        return (int((stats / "anon_fault_alloc").read_text()),
                int((stats / "anon_fault_fallback").read_text()))  # fmt: skip
    assert size == thp.pmd_size(), f"no stats/ for the {size >> 10}K mTHP size"
    values = dict(line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return int(values["thp_fault_alloc"]), int(values["thp_fault_fallback"])


def test_every_listed_size_is_offered() -> None:
    """The sizes follow the page size: two pages (mTHP's smallest anonymous
    order is 2, v6.8) up to the PMD size, or the PMD size alone before mTHP."""
    sizes = thp.sizes()
    assert sizes and sizes[-1] == thp.pmd_size()
    if len(sizes) > 1:
        assert sizes[0] == 4 * PAGE
        assert sizes == [sizes[0] << i for i in range(len(sizes))]


@pytest.mark.parametrize("size", thp.sizes(), ids=lambda s: f"{s >> 10}K")
def test_thp_size_backs_and_pins_every_page(counted, size: int) -> None:
    knobs = _knobs()
    before = _faults(size)
    runs, acquired, released = counted("bench", "--thp-size", f"{size >> 10}K",
                                       "-s", f"{FOLIOS * size >> 10}K")  # fmt: skip
    after = _faults(size)
    (run,) = runs
    assert run["backing"].startswith("anon-private+thp")
    assert (after[0] - before[0], after[1] - before[1]) == (FOLIOS, 0)
    assert run["folio_size"] == size
    assert acquired == released == FOLIOS * size // PAGE == run["nr_pages"]
    assert _knobs() == knobs


def test_thp_size_restored_after_a_signal(tmp_path: Path) -> None:
    """SIGTERM in the middle of a run: the knobs are back as they were.  The
    size's knob starts at never, so that gupctl has one to change."""
    size = thp.sizes()[0]
    knob = ROOT / f"hugepages-{size >> 10}kB" / "enabled"
    knob = knob if knob.exists() else ROOT / "enabled"  # before v6.8: the PMD size's
    old = thp.setting(knob)
    knob.write_text("never")
    knobs = _knobs()
    argv = [sys.executable, "-m", "gupctl", "bench", "--thp-size", f"{size >> 10}K", "-s",
            f"{size >> 10}K", "-r", "10000000"]  # fmt: skip
    try:
        with (tmp_path / "err").open("w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while thp.setting(knob) == "never" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thp.setting(knob) == "madvise", "gupctl never allowed the size"
        time.sleep(1)  # into the ioctls
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        assert proc.returncode != 0
        assert "Traceback" not in (tmp_path / "err").read_text()
        assert _knobs() == knobs
    finally:
        proc.kill()
        knob.write_text(old)
