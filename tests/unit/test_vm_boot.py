"""A guest that dies: while booting (retried once under TCG) or running the job.

runner.execute() runs a plan whose "QEMU" is a shell script that leaves in
the run directory what a real guest would: a console log, perhaps guest-init's
`started` marker, perhaps a status.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from gupctl.errors import VmError
from gupctl.vm import runner
from gupctl.vm.kernel import Kernel

OOPS = "[    2.770863] Oops: int3: 0000 [#1] SMP NOPTI\n[    2.798262] Kernel panic - not syncing"


def _plan(run_dir: Path, script: str) -> runner.Plan:
    run_dir.mkdir(exist_ok=True)
    streams = [socket.socketpair(), socket.socketpair()]
    return runner.Plan(Kernel("7.3.4-test", Path("/nonexistent"), None), run_dir,
                       ["sh", "-c", script], "", "tcg", streams)  # fmt: skip


@pytest.mark.parametrize(
    ("started", "console", "kind"),
    [(False, OOPS, "boot"), (True, OOPS, "lost"), (False, "gupctl-init: FATAL: x", "lost")],
)
def test_death_is_classified(tmp_path: Path, started: bool, console: str, kind: str) -> None:
    run = tmp_path / "run"
    script = f"printf '%s\\n' '{console}' > {run}/console.log"
    if started:
        script += f"; : > {run}/started"
    with pytest.raises(VmError) as e:
        runner.execute(_plan(run, script), timeout=30)
    assert e.value.kind == kind
    assert e.value.log == str(run / "console.log") and (run / "console.log").exists()


def test_a_boot_death_is_booted_once_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first boot dies before the job; the second runs it: status 0, and
    stderr says what happened in one line with the first console log."""
    from gupctl import cli, vm

    boots: list[Path] = []

    def plan(*args, **kwargs) -> runner.Plan:
        run = tmp_path / f"run{len(boots)}"
        boots.append(run)
        if len(boots) == 1:
            return _plan(run, f"printf '%s\\n' '{OOPS}' > {run}/console.log")
        return _plan(run, f": > {run}/started; echo 0 > {run}/status")

    monkeypatch.setattr(vm, "plan", plan)
    result = CliRunner().invoke(cli.main, ["vm", "--", "true"])
    assert result.exit_code == 0, result.output
    assert len(boots) == 2
    warned = [line for line in result.stderr.splitlines() if "booting once more" in line]
    assert len(warned) == 1 and str(boots[0] / "console.log") in warned[0]
    assert not boots[1].exists()  # a good run's directory goes


def test_a_second_boot_death_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gupctl import cli, vm

    runs = iter(range(10))

    def plan(*args, **kwargs) -> runner.Plan:
        run = tmp_path / f"run{next(runs)}"
        return _plan(run, f"printf '%s\\n' '{OOPS}' > {run}/console.log")

    monkeypatch.setattr(vm, "plan", plan)
    result = CliRunner().invoke(cli.main, ["vm", "--", "true"])
    assert result.exit_code == 1
    assert "died while booting" in result.stderr.splitlines()[-1]
    assert next(runs) == 2  # two boots, not more
