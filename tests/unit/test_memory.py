"""Mappings: what they map, and that close() leaves nothing behind."""

from __future__ import annotations

import errno
import os

import pytest

from gupctl import thp
from gupctl.errors import MappingError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec


def _maps_contain(addr: int) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


def test_anon_prefaulted_zeroes_and_unmapped_on_close() -> None:
    m = Mapping(MemorySpec(), 16 * PAGE_SIZE)
    assert m.read(0, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert _maps_contain(m.addr)
    m.close()
    assert not _maps_contain(m.addr)


def test_thp_mapping_is_pmd_aligned() -> None:
    with Mapping(MemorySpec(thp=True), thp.pmd_size()) as m:
        assert m.addr % thp.pmd_size() == 0


def test_create_file_then_removed(tmp_path) -> None:
    path = tmp_path / "backing"
    with Mapping(MemorySpec(file=str(path), create=True, shared=True), 4 * PAGE_SIZE):
        assert path.stat().st_size == 4 * PAGE_SIZE
    assert not path.exists()


def test_existing_file_is_kept(tmp_path) -> None:
    path = tmp_path / "backing"
    path.write_bytes(b"\x5a" * 4 * PAGE_SIZE)
    with Mapping(MemorySpec(file=str(path), shared=True, prefault=False), 4 * PAGE_SIZE) as m:
        assert m.read(PAGE_SIZE, 4) == b"\x5a" * 4
    assert path.exists()


@pytest.mark.parametrize(
    "spec_kw, size, err",
    [
        ({}, PAGE_SIZE + 1, errno.EINVAL),
        ({"file": "MISSING"}, PAGE_SIZE, errno.ENOENT),
        ({"file": "SMALL"}, 8 * PAGE_SIZE, errno.EFBIG),
        ({"file": "SMALL", "create": True}, PAGE_SIZE, errno.EEXIST),
    ],
)
def test_bad_mappings_fail_cleanly(tmp_path, spec_kw: dict, size: int, err: int) -> None:
    (tmp_path / "SMALL").write_bytes(b"x" * PAGE_SIZE)
    if "file" in spec_kw:
        spec_kw = {**spec_kw, "file": str(tmp_path / spec_kw["file"])}
    before = sorted(os.listdir(tmp_path))
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(MappingError) as info:
        Mapping(MemorySpec(**spec_kw), size)
    assert info.value.errno == err
    assert sorted(os.listdir(tmp_path)) == before
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_numa_bind_to_node0() -> None:
    with Mapping(MemorySpec(numa_node=0), 4 * PAGE_SIZE) as m:
        assert m.read(0, 8) == bytes(8)


def test_describe() -> None:
    assert MemorySpec().describe() == "anon-private"
    assert MemorySpec(hugetlb=True, shared=True, thp=False).describe() == "hugetlb-shared+nothp"
    assert MemorySpec(file="/x", thp=True).describe() == "file-private+thp"
