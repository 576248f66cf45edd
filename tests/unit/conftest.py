from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CliRunner with the environment tests expect: no colour, fixed width."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("GUPCTL_DEVICE", raising=False)
    monkeypatch.delenv("GUPCTL_NUMA_NODE", raising=False)
    return CliRunner()


def patch_ioctl(monkeypatch: pytest.MonkeyPatch, fake) -> None:
    """Answer every gup_test ioctl with `fake(device, command, arg)`: the one place
    unit tests inject the kernel's answers (errnos, written-back sizes)."""
    from gupctl.device import Device

    def prepare(self, command, arg=None):
        return lambda: fake(self, command, arg)

    monkeypatch.setattr("gupctl.device.identify", lambda path: None)  # any file will do
    monkeypatch.setattr(Device, "ioctl", fake)
    monkeypatch.setattr(Device, "prepare", prepare)
    monkeypatch.setattr("gupctl.device.native", None)  # the C loop would bypass `fake`
