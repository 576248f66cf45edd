"""The CLI layer: parsing, JSON, one-line errors (errnos injected at the ioctl)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import patch_ioctl

from gupctl import abi
from gupctl.cli import main
from gupctl.device import Device
from gupctl.doctor import facts
from gupctl.errors import DeviceError


def test_abi_json_is_the_report(cli: CliRunner) -> None:
    result = cli.invoke(main, ["abi", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    numbers = {c["name"]: c["number"] for c in data["commands"]}
    assert numbers["PIN_FAST_BENCHMARK"] == abi.PIN_FAST_BENCHMARK.number()
    assert [s["size"] for s in data["structs"]] == [80, 24]


def test_abi_table(cli: CliRunner) -> None:
    result = cli.invoke(main, ["abi"])
    assert result.exit_code == 0
    assert "PIN_LONGTERM_TEST_READ" in result.stdout and "0xc0506702" in result.stdout


def test_version(cli: CliRunner) -> None:
    result = cli.invoke(main, ["--version"])
    assert result.exit_code == 0 and "gupctl, version" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "--size", "0"], "'0' is not a size"),
        (["bench", "--size", "12Q"], "'12Q' is not a size"),
        (["bench", "-n", "0"], "'0' is not a page count"),
        (["bench", "--create"], "--create needs --file"),
        (["bench", "pin_everything"], "pin_everything"),
        (["bench", "--numa-node", "99"], "not a NUMA node"),
    ],
)
def test_bad_arguments_are_usage_errors(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(main, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_device_is_one_line(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a real process: one line on stderr, exit 1, no traceback."""
    monkeypatch.setenv("GUPCTL_DEVICE", str(tmp_path / "nope"))
    proc = subprocess.run([sys.executable, "-m", "gupctl", "bench"], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "does not exist" in lines[0] and "GUPCTL_DEVICE" in lines[0]


@pytest.mark.parametrize(
    "err, words",
    [
        (errno.ENOTTY, "ABI mismatch"),
        (errno.EINVAL, "rejected PIN_FAST_BENCHMARK"),
        (errno.E2BIG, "max_pages"),
        (errno.ENOMEM, "smaller --size"),
    ],
)
def test_ioctl_errnos_become_hints(cli: CliRunner, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                   err: int, words: str) -> None:  # fmt: skip
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")

    def ioctl(self: Device, command: abi.Command, arg: object = None) -> None:
        raise DeviceError(f"{command.name} on {self.path}", err, self.path, command.name)

    patch_ioctl(monkeypatch, ioctl)
    result = cli.invoke(main, ["bench", "--size", "1M", "--device", str(fake)])
    assert result.exit_code == 1
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_open_errnos_become_hints(
    cli: CliRunner, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    monkeypatch.setattr("gupctl.device.identify", lambda path: None)  # as if it were one
    for err, words in ((errno.EACCES, "run as root"), (errno.EPERM, "locked down")):

        def fail_open(path: str, flags: int, err: int = err) -> int:
            raise OSError(err, "injected")

        monkeypatch.setattr("gupctl.device.os.open", fail_open)
        result = cli.invoke(main, ["test", "--device", str(fake)])
        assert result.exit_code == 1
        assert words in result.stderr, result.stderr


def test_missing_file_without_create(cli: CliRunner, tmp_path) -> None:
    target = tmp_path / "data"
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    result = cli.invoke(main, ["bench", "--device", str(fake), "--file", str(target)])
    assert result.exit_code == 2  # a usage error, found before any work
    assert "--create" in result.stderr
    assert not target.exists()


def test_vmstat_json(cli: CliRunner) -> None:
    result = cli.invoke(main, ["vmstat", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data[0]["scope"] == "system"
    # The counters as /proc/vmstat has them, read here on our own (nothing pins
    # on this machine, so they hold still between the two reads).
    direct = dict(line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    for key in ("nr_foll_pin_acquired", "nr_foll_pin_released"):
        assert data[0][key] == int(direct[key])


def test_vm_dry_run_prints_argv_and_job(cli: CliRunner) -> None:
    result = cli.invoke(main, ["vm", "--no-kmod", "--dry-run", "--", "echo", "a b"])
    if result.exit_code != 0:
        pytest.fail(f"dry run failed (needs qemu, busybox, a 6.12 kernel): {result.output}")
    assert "-accel" in result.stdout and "memdev=mem1" in result.stdout
    assert "exec echo 'a b'" in result.stdout


@pytest.mark.parametrize(
    "mounted, config, diagnosis",
    [(False, None, "debugfs is not mounted"), (False, True, "debugfs is not mounted"),
     (False, False, "CONFIG_GUP_TEST is off"), (True, None, "CONFIG_GUP_TEST is off")],
)  # fmt: skip
def test_not_found_says_which(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, mounted: bool,
                              config: bool | None, diagnosis: str) -> None:  # fmt: skip
    from gupctl import device

    monkeypatch.setattr(device, "candidates", lambda explicit=None: ["/nonexistent/gup_test"])
    monkeypatch.setattr(device, "debugfs_mounted", lambda: mounted)
    monkeypatch.setattr(device, "kernel_config", lambda option: config)
    monkeypatch.setattr(facts, "modules_missing", lambda: None)
    result = cli.invoke(main, ["test"])
    assert result.exit_code == 1
    assert diagnosis in result.stderr and "sudo gupctl kmod install" in result.stderr


def test_not_found_without_modules_sends_to_the_vm(cli: CliRunner, monkeypatch) -> None:
    """No gup_test and no module loading: the kmod cannot help, the VM can."""
    from gupctl import device

    monkeypatch.setattr(device, "candidates", lambda explicit=None: ["/nonexistent/gup_test"])
    monkeypatch.setattr(device, "debugfs_mounted", lambda: True)
    monkeypatch.setattr(device, "kernel_config", lambda option: False)
    monkeypatch.setattr(facts, "modules_missing", lambda: "module loading is disabled")
    result = cli.invoke(main, ["test"])
    assert result.exit_code == 1
    assert "module loading is disabled" in result.stderr and "gupctl vm --" in result.stderr
    assert "kmod install" not in result.stderr


@pytest.mark.parametrize("command", [abi.GUPCTL_EXTRACT, abi.GUPCTL_PAGES])
def test_kmod_only_commands_have_their_hints(command: abi.Command) -> None:
    """The in-kernel gup_test (EINVAL) and an older kmod (ENOTTY) each get a next step."""
    from gupctl.cli import hints

    path = "/sys/kernel/debug/gup_test"
    assert "load gupctl's kmod" in hints.hint(DeviceError("x", errno.EINVAL, path, command.name))
    assert "gupctl kmod install" in hints.hint(DeviceError("x", errno.ENOTTY, path, command.name))


def test_every_lazy_command_loads_under_its_name() -> None:
    """cli.COMMANDS names each command's module and function: each loads, is
    the click command of that name, and --help lists them all."""
    import click

    from gupctl import cli

    for name in cli.COMMANDS:
        command = cli.main.get_command(click.Context(cli.main), name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.main.get_command(click.Context(cli.main), "nosuch") is None
    listed = subprocess.run([sys.executable, "-m", "gupctl", "--help"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    lines = listed.split("Commands:", 1)[1].splitlines()
    commands = [line.split()[0] for line in lines if line.startswith("  ") and line.split()]
    assert sorted(commands) == sorted(cli.COMMANDS), listed


def test_a_closed_stderr_costs_the_message_not_the_status() -> None:
    """With fd 2 closed (2>&-), errors and warnings are lost, and nothing else:
    a usage error still exits 2, without a traceback on anything."""
    argv = [sys.executable, "-m", "gupctl", "bench", "-s", "0"]
    proc = subprocess.run(["sh", "-c", '"$@" 2>&-', "sh", *argv], capture_output=True)
    assert proc.returncode == 2 and proc.stdout == b""
