"""`gupctl vm --kernel A --kernel B -- gupctl bench ...`: one benchmark on two
kernels, the comparison table and the plot (issue 10, item 6).

Run on the host (tests/run.py's "kernels" step): it boots both kernels.  The
oracles are the files' own contents, checked here: each saved document names
the kernel its VM booted (as resolve finds it, independently of the run), holds
each configuration asked for with the pins balanced exactly on node 1, and
the plot carries a series of each kernel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gupctl import results
from gupctl.vm import resolve

KERNELS = ("6.12", "7.3")
PER_CALL = (1, 512)


def test_one_benchmark_two_kernels(tmp_path: Path) -> None:
    out = tmp_path / "kernels"
    argv = [sys.executable, "-m", "gupctl", "vm"]
    for k in KERNELS:
        argv += ["--kernel", k]
    argv += ["--out", str(out), "--", "gupctl", "bench", "-s", "4M",
             "-n", ",".join(map(str, PER_CALL)), "-r", "3"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    releases = [resolve.find(k).release for k in KERNELS]
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(releases)
    for release in releases:
        doc = results.load(str(out / f"{release}.json"))
        assert doc.kernel == release  # saved inside that kernel's VM
        assert sorted(r.nr_pages_per_call for r in doc.results) == list(PER_CALL)
        for r in doc.results:
            assert r.balance.exact and r.balance.scope == "node1", r.balance
            assert r.balance.acquired == r.nr_pages * r.repeats
    # The comparison: B (the second kernel) against A, a row per configuration.
    title = f"B: {releases[1]} ({releases[1]}) against A: {releases[0]} ({releases[0]})"
    assert title in " ".join(proc.stdout.split()), proc.stdout
    svg = (out / "plot.svg").read_text()
    for release in releases:
        assert f"{release}: pin_fast_benchmark" in svg, release
