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
