"""Issue 8's whole-system test: gupctl as a user installs it, on a booted Debian.

One boot of the trixie image (gupctl/vm/system.py: systemd, udev, DKMS, the
7.3 kernel from trixie-backports) runs .ci/user-install: pip install of the
wheel built from this checkout's sdist, `gupctl doctor`, `gupctl kmod
install --user tester`, doctor again, then bench and the selftest's pin cases
as that non-root user.  The tests below check each step's evidence against
oracles of their own: the kernel's counters read by root, the device node's
mode and group, the module's presence, dmesg.

Runs on the host, as root (mmdebstrap and QEMU); tests/run.py runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import packaging  # noqa: E402

from gupctl import cache  # noqa: E402
from gupctl.vm import system, system_run  # noqa: E402

JOB = """\
#!/bin/sh
# The whole-system test's job, run as root by the image's gupctl-job unit.
# hvc0 is a terminal to rich: no colours, and the log's width.
export NO_COLOR=1 COLUMNS=150
GUPCTL_STEPS_OUT=/run/gupctl/out exec bash /run/gupctl/user-install {user} /run/gupctl/wheels
"""


class Booted:
    def __init__(self, run_dir: Path, result: system_run.SystemResult) -> None:
        self.run_dir = run_dir
        self.result = result

    def json(self, name: str) -> Any:
        return json.loads((self.run_dir / "out" / name).read_text())

    def text(self, name: str) -> str:
        return (self.run_dir / "out" / name).read_text()


@pytest.fixture(scope="module")
def booted() -> Any:
    if os.geteuid() != 0:
        pytest.fail("the whole-system test makes its image with mmdebstrap: run it as root")
    img = system.image()
    runs = cache.cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="system-", dir=runs))
    packaging.wheelhouse(run_dir / "wheels")
    shutil.copy2(ROOT / ".ci" / "user-install", run_dir / "user-install")
    (run_dir / "job.sh").write_text(JOB.format(user=system.USER))
    result = system_run.run(img, run_dir)
    print(f"system VM on {img.release}: status {result.status} in {result.seconds:.0f} s")
    yield Booted(run_dir, result)
    if result.ok:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"logs kept in {run_dir}: job.log, console.log, dmesg, out/")


def test_every_step_passed(booted: Booted) -> None:
    status = booted.result.status
    assert status == 0, f"a step failed (exit status {status}): see {booted.run_dir}/job.log"


def test_kernel_quiet(booted: Booted) -> None:
    """No WARN, BUG or oops in the console or dmesg, which did come back."""
    assert booted.result.problems == []
    assert "Linux version" in booted.result.dmesg


def _rows(doc: Any) -> dict[str, Any]:
    rows = doc["checks"] if isinstance(doc, dict) else doc
    return {r["name"]: r for r in rows}


def test_doctor_before_reports_missing_kmod(booted: Booted) -> None:
    rows = _rows(booted.json("doctor-before.json"))
    missing = [r for r in rows.values() if r["status"] == "missing"]
    assert missing, "doctor found nothing missing before the kmod was installed"
    assert any("gupctl kmod install" in (r.get("fix") or "") for r in missing)


def test_doctor_after_is_clean(booted: Booted) -> None:
    rows = _rows(booted.json("doctor-after.json"))
    assert [r["name"] for r in rows.values() if r["status"] == "missing"] == []


def test_device_opened_to_the_group_only(booted: Booted) -> None:
    status = booted.json("kmod-status.json")
    assert status["loaded"] and status["device"] == "/dev/gup_test"
    assert (status["device_mode"], status["device_group"]) == ("0660", "gupctl")
    assert system.USER in status["group_members"]
    assert status["dkms_installed"] == [status["release"]]
    assert status["release"].startswith(system.SERIES + ".")


def _pins(text: str) -> tuple[int, int]:
    values = dict(line.split() for line in text.splitlines())
    return int(values["nr_foll_pin_acquired"]), int(values["nr_foll_pin_released"])


def test_user_pins_balanced(booted: Booted) -> None:
    runs = booted.json("bench.json")
    runs = runs if isinstance(runs, list) else runs["runs"]
    for run in runs:
        balance = run["balance"]
        assert balance["acquired"] == balance["released"] > 0
    # The kernel's own counters over every step the user ran: all released.
    acq0, rel0 = _pins(booted.text("pins-before.txt"))
    acq1, rel1 = _pins(booted.text("pins-after.txt"))
    assert acq1 - acq0 > 0
    assert acq1 - rel1 == acq0 - rel0


def test_selftest_pin_cases_pass(booted: Booted) -> None:
    ktap = booted.text("selftest.ktap")
    results = re.findall(r"^(ok|not ok) \d+ (\S+)", ktap, re.M)
    assert results, "no KTAP results"
    assert [name for verdict, name in results if verdict == "not ok"] == []
    assert all(name.split(".")[0] in ("pin", "pin_fast", "pin_longterm") for _, name in results)
