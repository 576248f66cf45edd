"""vmstat parsing and the balance arithmetic, on files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gupctl import numa, vmstat
from gupctl.errors import GupctlError


@pytest.fixture
def fake_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "vmstat").write_text("nr_free_pages 10\nnr_foll_pin_acquired 100\n"
                                     "nr_foll_pin_released 90\n")  # fmt: skip
    for n, cpus in ((0, "0-1"), (1, "")):
        node = tmp_path / "node" / f"node{n}"
        node.mkdir(parents=True)
        (node / "vmstat").write_text(f"nr_foll_pin_acquired {7 + n}\nnr_foll_pin_released 7\n")
        (node / "cpulist").write_text(cpus + "\n")
    monkeypatch.setattr(vmstat, "PROC_VMSTAT", tmp_path / "vmstat")
    monkeypatch.setattr(numa, "NODE_ROOT", tmp_path / "node")
    monkeypatch.setattr(vmstat, "STAT_REFRESH", tmp_path / "no" / "stat_refresh")
    return tmp_path


def test_snapshot_system_and_nodes(fake_sys: Path) -> None:
    counters = vmstat.snapshot_all()
    assert [c.scope for c in counters] == ["system", "node0", "node1"]
    assert counters[0].outstanding == 10
    assert counters[2].nr_foll_pin_acquired == 8 and counters[2].outstanding == 1
    assert not any(c.refreshed for c in counters)


def test_memory_only_node(fake_sys: Path) -> None:
    assert numa.nodes() == [0, 1] and numa.memory_only_nodes() == [1]
    assert numa.node_has_cpus(0) and not numa.node_has_cpus(1)


def test_balance_exact_and_not() -> None:
    a = vmstat.PinCounters("node1", 100, 100, 0, True)
    b = vmstat.PinCounters("node1", 612, 612, 0, True)
    assert vmstat.Balance.between(a, b, 512).exact
    assert not vmstat.Balance.between(a, b, 511).exact
    leak = vmstat.PinCounters("node1", 612, 611, 1, True)
    bal = vmstat.Balance.between(a, leak, 512)
    assert (bal.acquired, bal.released, bal.exact) == (512, 511, False)


def test_missing_counters_say_why(fake_sys: Path) -> None:
    (fake_sys / "vmstat").write_text("nr_free_pages 1\n")
    with pytest.raises(GupctlError, match="v5.7"):
        vmstat.snapshot()
