"""`gupctl doctor --json` against the machine it runs on, read without gupctl."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import DEVICES


def _rows(data: dict) -> dict[str, dict]:
    return {c["name"]: c for c in data["checks"]}


def test_doctor_device_row(gupctl) -> None:
    """The device row names the first usual path that exists, and who serves it."""
    ran = gupctl("doctor", "--json", check=False)
    data = ran.json()
    path = next(d for d in DEVICES if os.path.exists(d))
    dev = _rows(data)["gup_test device"]
    assert dev["status"] == "ok", dev
    assert dev["found"].startswith(f"{path}: ")
    assert data["ready"] is True and data["device"] == path
    assert ran.returncode == 0, ran.stderr
    if os.path.exists("/sys/module/gupctl"):
        assert "served by the gupctl kmod" in dev["found"]
    else:
        assert "the kernel's gup_test" in dev["found"]
    assert not [c for c in data["checks"] if c["required"] and c["status"] == "missing"]


def test_doctor_memory_only_node(gupctl) -> None:
    """The memory-only node row agrees with the nodes' cpulist files."""
    data = gupctl("doctor", "--json", check=False).json()
    row = _rows(data)["memory-only NUMA node"]
    nodes = sorted(Path("/sys/devices/system/node").glob("node[0-9]*"),
                   key=lambda p: int(p.name[4:]))  # fmt: skip
    memory_only = [int(p.name[4:]) for p in nodes if not (p / "cpulist").read_text().strip()]
    if memory_only:
        assert row["status"] == "ok"
        assert row["found"].startswith(f"node {memory_only[0]}: no CPUs")
    else:
        assert row["status"] == "warn" and row["fix"] is None


def test_doctor_refuses_a_device_that_is_no_gup_test(gupctl, monkeypatch) -> None:
    """$GUPCTL_DEVICE=/dev/null opens, as the real gup_test files do: doctor must
    not call it ready when every command refuses it."""
    monkeypatch.setenv("GUPCTL_DEVICE", "/dev/null")
    ran = gupctl("doctor", "--json", check=False)
    data = ran.json()
    dev = _rows(data)["gup_test device"]
    null = os.stat("/dev/null").st_rdev
    what = f"the character device {os.major(null)}:{os.minor(null)}"
    assert dev["status"] == "missing"
    assert dev["found"] == f"/dev/null is {what}, not a gup_test file"
    assert data["ready"] is False and ran.returncode == 1
    refused = gupctl("bench", "-s", "4K", check=False)
    assert refused.returncode == 1 and f"/dev/null is {what}" in refused.stderr
