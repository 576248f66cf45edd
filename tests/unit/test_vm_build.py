"""Building a guest kernel from source: the cache key, the fragment and its checker."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from gupctl import cache as gcache
from gupctl.errors import VmError
from gupctl.vm import build, initramfs, kmod, resolve

FRAGMENT = '# needed by x\nCONFIG_A=y\n# needed by y\nCONFIG_B=y\n# z\nCONFIG_S="str"\n'


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, so that nothing here touches ~/.cache/gupctl."""
    monkeypatch.setenv("GUPCTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_dropped_names_options_that_are_not_y() -> None:
    config = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S="str"\n'
    assert build.required(FRAGMENT) == ["CONFIG_A", "CONFIG_B"]
    assert build.dropped(FRAGMENT, config) == ["CONFIG_B"]
    assert build.dropped(FRAGMENT, config + "CONFIG_B=y\n") == []
    assert build.dropped(FRAGMENT, "CONFIG_A=m\nCONFIG_B=y\n") == ["CONFIG_A"]


def test_fragment_has_what_the_guest_needs_each_with_a_reason() -> None:
    text = build.fragment()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("CONFIG_"):
            assert lines[i - 1].startswith("# "), f"{line} has no comment saying who needs it"
    wanted = set(build.required(text))
    for name in ("64BIT", "GUP_TEST", "DEBUG_FS", "NUMA", "X86_64_ACPI_NUMA", "9P_FS",
                 "NET_9P_VIRTIO", "VIRTIO_CONSOLE", "OVERLAY_FS", "RD_GZIP", "BUG"):  # fmt: skip
        assert f"CONFIG_{name}" in wanted
    # Kconfig reads no trailing comments: "CONFIG_X=y # why" would be invalid.
    assert not [line for line in lines if re.match(r"CONFIG_\w+=\S+\s+#", line)]


def test_tarball_identity_is_its_sha256_remembered(tmp_path: Path, cache: Path) -> None:
    tarball = tmp_path / "linux.tar.xz"
    tarball.write_bytes(b"one")
    first = build.source_identity(tarball)
    assert first == "tarball:" + build._sha256_file(tarball)
    assert len(list((cache / "kernels" / ".sha256").iterdir())) == 1
    tarball.write_bytes(b"two!")  # new size and mtime: hashed again
    assert build.source_identity(tarball) != first


def test_directory_identity_git_head_or_makefile(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\n")
    plain = build.source_identity(tree)
    assert plain.startswith(f"dir:{tree}:")
    os.utime(tree / "Makefile", ns=(1, 1))
    assert build.source_identity(tree) != plain
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "Makefile"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert build.source_identity(tree) == "git:" + head.strip()


def test_missing_source_is_a_kernel_error(tmp_path: Path) -> None:
    with pytest.raises(VmError) as e:
        resolve.find(f"source:{tmp_path / 'nowhere'}")
    assert e.value.kind == "kernel" and "nowhere" in str(e.value)


def _fake_entry(cache: Path, tree: Path) -> Path:
    key = gcache.key([build.source_identity(tree), build.fragment(), build.compiler_version()])
    entry = cache / "kernels" / key
    entry.mkdir(parents=True)
    for name, text in (("bzImage", "k"), (".config", "CONFIG_GUP_TEST=y\n"), ("release", "6.x\n")):
        (entry / name).write_text(text)
    return entry


def test_cached_kernel_is_found_without_building(tmp_path: Path, cache: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("")
    entry = _fake_entry(cache, tree)
    k = resolve.find(f"source:{tree}")
    assert (k.release, k.image, k.gup_test_builtin) == ("6.x", entry / "bzImage", True)
    assert initramfs.module_closure(k) == []
    # Without --no-kmod, kmod.build() stops: no module build tree (build/) to build against.
    assert k.headers is None
    with pytest.raises(VmError, match="pass --no-kmod"):
        kmod.build(k)


def test_failed_step_keeps_the_log(tmp_path: Path, cache: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("tinyconfig:\n\t@echo no such config; false\n")
    with pytest.raises(VmError) as e:
        build.build(tree)
    assert e.value.kind == "build" and e.value.log and "no such config" in e.value.log
    (log,) = (cache / "kernels").glob("*.log")
    assert "no such config" in log.read_text() and str(log) in str(e.value)
    left = sorted(p.name for p in (cache / "kernels").iterdir())
    assert left == [f".{log.stem}.lock", log.name], "scratch directory left behind"
