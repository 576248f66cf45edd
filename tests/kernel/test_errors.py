"""Bad input through the CLI on a real kernel: one line, non-zero, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import oracle_counters


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_file_not_created(gupctl, tmp_path) -> None:
    target = tmp_path / "absent"
    ran = gupctl("bench", "--file", str(target), check=False)
    assert ran.returncode == 2 and "--create" in _one_line(ran.stderr)  # a usage error
    assert not target.exists()


def test_hugetlb_size_not_multiple(gupctl) -> None:
    ran = gupctl("bench", "--hugetlb", "--size", "3M", check=False)
    assert ran.returncode == 1
    assert "multiple of" in _one_line(ran.stderr)


def test_too_many_hugetlb_pages(gupctl, node) -> None:
    before = oracle_counters(node)
    ran = gupctl("bench", "--hugetlb", "--size", "1G", check=False)
    assert ran.returncode == 1
    assert "nr_hugepages" in _one_line(ran.stderr)
    assert oracle_counters(node) == before


@pytest.mark.kmod
def test_kmod_size_limit_is_e2big(gupctl, node) -> None:
    param = Path("/sys/module/gupctl/parameters/max_pages")
    saved = param.read_text()
    param.write_text("256")
    try:
        before = oracle_counters(node)
        ran = gupctl("bench", "--size", "2M", check=False)
        after = oracle_counters(node)
        gupctl("bench", "--size", "1M")  # at the limit: fine
    finally:
        param.write_text(saved)
    assert ran.returncode == 1 and "max_pages" in _one_line(ran.stderr)
    assert after == before


def test_wrong_device_path(gupctl) -> None:
    ran = gupctl("bench", "--device", "/dev/null", check=False)
    assert ran.returncode == 1
    assert "/dev/null is the character device 1:3, not a gup_test file" in _one_line(ran.stderr)


def test_real_devices_are_gup_test_files() -> None:
    """identify() accepts what the kernel and the kmod serve (the oracle of the
    wrong-device diagnosis): every gup_test file this VM has."""
    from gupctl import device

    found = [p for p in ("/sys/kernel/debug/gup_test", "/dev/gup_test") if Path(p).exists()]
    assert found and all(device.identify(p) is None for p in found)


def test_no_device_diagnosis(gupctl, tmp_path) -> None:
    ran = gupctl("vmstat", "--json")
    assert ran.returncode == 0
    ran = gupctl("test", "--device", str(tmp_path / "none"), check=False)
    assert ran.returncode == 1 and "does not exist" in _one_line(ran.stderr)
