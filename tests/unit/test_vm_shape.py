"""gupctl vm's machine shapes: with a memory-only node (the default) or without."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gupctl.errors import VmError
from gupctl.vm import qemu, runner


def _numa(machine: qemu.Machine) -> list[str]:
    argv = qemu.argv(Path("/boot/vmlinuz"), Path("/i"), Path("/run"), "console=ttyS0",
                     Path("/c.log"), 7, 8, machine, kvm=False)  # fmt: skip
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-numa"]


def test_default_shape_has_a_memory_only_node() -> None:
    assert _numa(qemu.Machine()) == ["node,nodeid=0,cpus=0-1,memdev=mem0",
                                     "node,nodeid=1,memdev=mem1"]  # fmt: skip
    assert "export GUPCTL_NUMA_NODE=1" in runner.job_script(["true"], "/", {})


def test_no_memory_only_node_splits_the_cpus() -> None:
    shape = qemu.Machine(memory_only_node=False)
    assert _numa(shape) == ["node,nodeid=0,cpus=0,memdev=mem0", "node,nodeid=1,cpus=1,memdev=mem1"]
    assert _numa(qemu.Machine(cpus=4, memory_only_node=False)) == [
        "node,nodeid=0,cpus=0-1,memdev=mem0", "node,nodeid=1,cpus=2-3,memdev=mem1"]  # fmt: skip
    assert "GUPCTL_NUMA_NODE" not in runner.job_script(["true"], "/", {}, shape)
    with pytest.raises(VmError, match="2 CPUs"):
        _numa(qemu.Machine(cpus=1, memory_only_node=False))


def test_cli_selects_the_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from gupctl.cli import main

    monkeypatch.setenv("NO_COLOR", "1")
    result = CliRunner().invoke(main, ["vm", "--no-kmod", "--no-memory-only-node", "--dry-run",
                                       "--", "true"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "node,nodeid=1,cpus=1,memdev=mem1" in result.stdout
    assert "GUPCTL_NUMA_NODE" not in result.stdout
