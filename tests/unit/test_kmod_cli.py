"""`gupctl kmod`: state read from the machine, refusals before anything changes.

Installing for real is tested where it can be: tests/system boots a Debian
system and runs `gupctl kmod install` there.  Here: what needs no root and no
kernel, with the system's paths pointed into tmp_path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gupctl import install, module
from gupctl.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The paths gupctl kmod writes, moved into tmp_path."""
    for name, rel in (("SRC_ROOT", "usr/src"), ("DKMS_TREE", "var/lib/dkms"),
                      ("UDEV_RULE", "etc/udev/rules.d/70-gupctl.rules"),
                      ("MODULES_LOAD", "etc/modules-load.d/gupctl.conf"),
                      ("LIMITS", "etc/security/limits.d/90-gupctl.conf"),
                      ("SYS_MODULE", "sys/module"), ("DEVICE", "dev/gup_test")):  # fmt: skip
        monkeypatch.setattr(module, name, tmp_path / rel)
    return tmp_path


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*"))


@pytest.mark.parametrize("command", [["install"], ["uninstall"], ["load"], ["unload"],
                                     ["install", "--user", "root"]])  # fmt: skip
def test_changes_need_root(cli: CliRunner, system: Path, monkeypatch: pytest.MonkeyPatch,
                           command: list[str]) -> None:  # fmt: skip
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = cli.invoke(main, ["kmod", *command])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"gupctl: error: `gupctl kmod {command[0]}` changes the system and needs "
                     f"root: run `sudo gupctl kmod {command[0]}`"]  # fmt: skip
    assert _files(system) == []


def test_unknown_user_changes_nothing(cli: CliRunner, system: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = cli.invoke(main, ["kmod", "install", "--user", "no-such-user-gupctl"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "there is no user 'no-such-user-gupctl'" in result.stderr
    assert "--user" in result.stderr
    assert _files(system) == []


def test_missing_headers_named_with_the_package(
    cli: CliRunner, system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(module, "MODULES", system / "lib/modules")
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/sbin/{name}")
    result = cli.invoke(main, ["kmod", "install"])
    rel = module.release()
    assert result.exit_code == 1
    assert f"sudo apt-get install linux-headers-{rel}" in result.stderr
    assert _files(system) == []


def test_version_is_dkms_conf(tmp_path: Path) -> None:
    (tmp_path / "dkms.conf").write_text('PACKAGE_NAME="gupctl"\nPACKAGE_VERSION="9.8.7"\n')
    assert module.version(tmp_path) == "9.8.7"
    assert module.version(ROOT / "kmod") == module.version()


def test_dkms_status_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    out = ("gupctl/0.1.0, 7.3.4+deb13-amd64, x86_64: installed\n"
           "gupctl/0.1.0, 6.12.57+deb13-amd64, x86_64: built\n"
           "gupctl/0.1.0, 6.1.0-40-amd64, x86_64: installed (WARNING! Diff between built and "
           "installed module!)\n")  # fmt: skip

    class Done:
        stdout = out

    monkeypatch.setattr("shutil.which", lambda name: "/usr/sbin/dkms")
    monkeypatch.setattr(module, "_run", lambda argv, timeout=600: Done())
    assert module.dkms_installed("0.1.0") == ["7.3.4+deb13-amd64", "6.1.0-40-amd64"]


def test_rule_names_the_kmod_device() -> None:
    """The udev rule matches what kmod/gupctl_main.c registers: misc device gup_test."""
    source = (ROOT / "kmod" / "gupctl_main.c").read_text()
    assert '.name\t\t= "gup_test"' in source or '.name = "gup_test"' in source
    assert 'KERNEL=="gup_test", SUBSYSTEM=="misc"' in module.RULE_TEXT
    assert f'GROUP="{module.GROUP}", MODE="0660"' in module.RULE_TEXT


def test_status_json_is_the_dataclass(cli: CliRunner, system: Path) -> None:
    result = cli.invoke(main, ["kmod", "status", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == [f.name for f in dataclasses.fields(module.ModuleStatus)]
    assert data["loaded"] is False and data["device"] is None
    assert data["release"] == module.release()


def test_sources_copied_are_the_kmods(system: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What DKMS gets: every source file, no build products; a failed DKMS step
    leaves no /usr/src/gupctl-VERSION behind."""
    calls: list[list[str]] = []

    def fake_run(argv: list[str], command: str, kind: str, log: str | None = None) -> str:
        calls.append(argv)
        copied = sorted(
            str(p.relative_to(system / "usr/src/gupctl-0.1.0"))
            for p in (system / "usr/src/gupctl-0.1.0").rglob("*")
            if p.is_file()
        )
        assert "gupctl_main.c" in copied and "dkms.conf" in copied and "probes/Kbuild" in copied
        assert not [c for c in copied if c.endswith((".o", ".ko"))]
        raise install.ModuleError("dkms build failed", kind, command, log)  # fmt: skip

    monkeypatch.setattr(install, "_run", fake_run)
    monkeypatch.setattr(install.subprocess, "run", lambda *a, **k: None)
    with pytest.raises(install.ModuleError):
        install._dkms_install(ROOT / "kmod", "0.1.0", "7.3.4+deb13-amd64")
    assert calls[0][:2] == ["dkms", "add"]
    assert not (system / "usr/src/gupctl-0.1.0").exists()
