"""Lockdown without a kernel: the command line, the device choice, the signing key."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gupctl import cache as gcache
from gupctl import device
from gupctl.cli import hints
from gupctl.errors import DeviceError, VmError
from gupctl.vm import build, kmod, qemu, resolve, runner
from gupctl.vm.kernel import Kernel


def test_cmdline_lockdown() -> None:
    assert "lockdown" not in qemu.cmdline(Path("/r"), kmod=True)
    line = qemu.cmdline(Path("/r"), kmod=True, lockdown="integrity")
    assert "lockdown=integrity" in line.split()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Stand-ins for the debugfs file and the misc device, both present."""
    debugfs, misc = str(tmp_path / "debugfs"), str(tmp_path / "misc")
    for path in (debugfs, misc):
        Path(path).write_text("")
    monkeypatch.setattr(device, "DEBUGFS_PATH", debugfs)
    monkeypatch.setattr(device, "MISC_PATH", misc)
    monkeypatch.delenv(device.ENV_VAR, raising=False)
    return debugfs, misc


def _refuse(monkeypatch: pytest.MonkeyPatch, refused: str, err: int) -> None:
    real = os.open

    def fake(path: str, flags: int, *args: int) -> int:
        if path == refused:
            raise OSError(err, os.strerror(err), path)
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", fake)


def test_locate_prefers_debugfs_while_it_opens(files: tuple[str, str]) -> None:
    assert device.locate() == files[0]


def test_locate_takes_the_misc_device_when_debugfs_says_eperm(
    files: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse(monkeypatch, files[0], errno.EPERM)
    assert device.locate() == files[1]
    # Named explicitly, it is used as named: its open gives the lockdown hint.
    assert device.locate(files[0]) == files[0]


def test_locate_takes_the_misc_device_when_debugfs_says_eacces(
    files: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not root, but in the gupctl group: debugfs is 0700, /dev/gup_test 0660."""
    _refuse(monkeypatch, files[0], errno.EACCES)
    assert device.locate() == files[1]


def test_locate_keeps_debugfs_on_other_errors_or_without_the_kmod(
    files: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse(monkeypatch, files[0], errno.ENXIO)
    assert device.locate() == files[0]
    _refuse(monkeypatch, files[0], errno.EPERM)
    os.unlink(files[1])  # locked down, and no kmod: the open fails with the hint
    assert device.locate() == files[0]


def test_eperm_hint_names_the_kmod() -> None:
    text = hints.hint(DeviceError("cannot open", errno.EPERM, "/sys/kernel/debug/gup_test"))
    assert "locked down" in text and hints.KMOD_STEP in text and "/dev/gup_test" in text


def _entry(cache: Path, tree: Path, module_tree: bool) -> Path:
    key = gcache.key([build.source_identity(tree), build.fragment(), build.compiler_version()])
    entry = cache / "kernels" / key
    entry.mkdir(parents=True)
    for name, text in (("bzImage", "k"), (".config", "CONFIG_GUP_TEST=y\n"), ("release", "7.x\n")):
        (entry / name).write_text(text)
    if module_tree:
        certs = entry / build.MODULE_TREE / "certs"
        certs.mkdir(parents=True)
        (entry / build.MODULE_TREE / build.SIGNING_KEY).write_text("key")
        (entry / build.MODULE_TREE / build.SIGNING_CERT).write_bytes(b"cert")
    return entry


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GUPCTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("module_tree", [True, False])
def test_source_kernel_headers_are_its_module_tree(
    tmp_path: Path, cache: Path, module_tree: bool
) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("")
    entry = _entry(cache, tree, module_tree)
    k = resolve.find(f"source:{tree}")
    assert k.gup_test_builtin and k.buildroot is None
    if module_tree:
        assert k.headers == entry / build.MODULE_TREE
        assert kmod.signing_key(k) == (k.headers / build.SIGNING_KEY,
                                       k.headers / build.SIGNING_CERT)  # fmt: skip
    else:
        assert k.headers is None and kmod.signing_key(k) is None
        with pytest.raises(VmError, match="pass --no-kmod"):
            kmod.build(k)


def test_debian_kernels_have_no_signing_key(tmp_path: Path) -> None:
    headers = tmp_path / "headers"
    (headers / "certs").mkdir(parents=True)
    k = Kernel("7.3.4+deb13-amd64", Path("/v"), Path("/m"), Path("/usr/src/h"), tmp_path / "root")
    assert kmod.signing_key(k) is None  # headers inside a build root: Debian's, keyless
    assert kmod.signing_key(Kernel("6.12", Path("/v"), Path("/m"), headers)) is None


def test_lockdown_with_an_unsignable_kmod_is_refused(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    debian = Kernel("7.3.4+deb13-amd64", Path("/v"), Path("/m"), Path("/h"), Path("/root"))
    monkeypatch.setattr(runner, "find", lambda spec, headers, arch: debian)
    with pytest.raises(VmError, match="source"):
        runner.plan(["true"], "7.3", use_kmod=True, lockdown="integrity")
