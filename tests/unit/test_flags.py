"""FOLL_* by name: both numberings, parsing, refusal of internal bits, and --gup-flags."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import patch_ioctl

from gupctl import abi, flags
from gupctl.cli import main
from gupctl.device import Device
from gupctl.errors import FlagsError, GupctlError

# Read off v6.12's include/linux/mm_types.h + mm/internal.h, and 6.1's include/linux/mm.h.
V6_12 = {
    "write": 0x1, "get": 0x2, "dump": 0x4, "force": 0x8, "nowait": 0x10, "nofault": 0x20,
    "hwpoison": 0x40, "anon": 0x80, "longterm": 0x100, "split_pmd": 0x200,
    "pci_p2pdma": 0x400, "interruptible": 0x800, "honor_numa_fault": 0x1000,
    "touch": 0x10000, "tried": 0x20000, "remote": 0x40000, "pin": 0x80000,
    "fast_only": 0x100000, "unlockable": 0x200000, "madv_populate": 0x400000,
}  # fmt: skip
V6_1 = {
    "write": 0x01, "touch": 0x02, "get": 0x04, "dump": 0x08, "force": 0x10, "nowait": 0x20,
    "nofault": 0x80, "hwpoison": 0x100, "migration": 0x400, "tried": 0x800, "remote": 0x2000,
    "anon": 0x8000, "longterm": 0x10000, "split_pmd": 0x20000, "pin": 0x40000,
    "fast_only": 0x80000,
}  # fmt: skip


def test_tables_match_the_kernel_headers() -> None:
    assert flags.table("6.12.117+deb12-amd64") == V6_12
    assert flags.table("6.1.0-56-amd64") == V6_1
    assert flags.table("5.10.0-30-amd64") == V6_1


def test_flags_appear_with_the_release_that_added_them() -> None:
    assert "honor_numa_fault" not in flags.table("6.4.0")
    assert "honor_numa_fault" in flags.table("6.5.0")
    assert "madv_populate" not in flags.table("6.8.12")
    assert "pci_p2pdma" in flags.table("6.2.0") and "pci_p2pdma" not in flags.table("6.1.0")


def test_renumbering_came_in_v6_3_not_v6_2() -> None:
    # 2c2241081f7d: on 6.2 "longterm" is still 0x10000; 1 << 8 there is FOLL_HWPOISON.
    assert flags.table("6.2.16")["longterm"] == 0x10000
    assert flags.table("6.2.16")["pci_p2pdma"] == 0x100000
    assert flags.table("6.3.0")["longterm"] == 1 << 8


def test_internal_names() -> None:
    assert flags.internal("6.12") == {"get", "touch", "tried", "remote", "pin", "fast_only",
                                      "unlockable", "madv_populate"}  # fmt: skip
    assert flags.internal("6.1") == {"get", "touch", "migration", "tried", "remote", "pin",
                                     "fast_only"}  # fmt: skip
    assert set(flags.offered("6.1")) == set(V6_1) - flags.internal("6.1")


@pytest.mark.parametrize(
    "spec, release, value",
    [
        ("write", "6.12", 0x1),
        ("WRITE,FOLL_Force", "6.12", 0x9),
        ("foll_longterm, anon", "6.12", 0x180),
        ("longterm", "6.1", 0x10000),
        ("0x8,write", "6.12", 0x9),
        ("16", "6.1", 0x10),
        ("", "6.12", 0),
    ],
)
def test_parse(spec: str, release: str, value: int) -> None:
    assert flags.parse(spec, release) == value


@pytest.mark.parametrize("spec", ["pin", "foll_get", "touch", "0x80000", "write,0x10000"])
def test_parse_refuses_internal_bits(spec: str) -> None:
    with pytest.raises(FlagsError) as info:
        flags.parse(spec, "6.12")
    assert info.value.internal
    assert "write" in info.value.valid and "pin" not in info.value.valid


def test_force_allows_internal_bits() -> None:
    assert flags.parse("pin,write", "6.12", allow_internal=True) == 0x80001
    assert flags.parse("pin", "6.1", allow_internal=True) == 0x40000


@pytest.mark.parametrize("spec", ["bogus", "honor_numa_fault", "0x1_0000_0000", "-1"])
def test_parse_refuses_unknown(spec: str) -> None:
    with pytest.raises(FlagsError) as info:
        flags.parse(spec, "6.1")
    assert not info.value.internal


@pytest.mark.parametrize("release", ["6.1", "6.12"])
def test_names_round_trip(release: str) -> None:
    for name, value in flags.table(release).items():
        assert flags.names(value, release) == [name]
        assert flags.parse(",".join(flags.names(value, release)), release, True) == value
    both = flags.parse("write,longterm,force", release)
    assert flags.names(both, release) == ["write", "force", "longterm"]


def test_names_show_unknown_bits_as_hex() -> None:
    assert flags.names(0x1 | 0x8000_0000, "6.12") == ["write", "0x80000000"]


def test_bad_release() -> None:
    with pytest.raises(GupctlError, match="cannot tell the kernel version"):
        flags.table("linux")


class RecordingDevice:
    """Device.ioctl that records the gup_flags it is given, as a kernel would see them."""

    seen: list[int] = []

    @staticmethod
    def ioctl(self: Device, command: abi.Command, arg: object = None) -> None:
        RecordingDevice.seen.append(int(arg.gup_flags))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args, expected",
    [([], 0x1), (["-W"], 0), (["-W", "--gup-flags", "force"], None),
     (["--gup-flags", "write,force"], None)],
)  # fmt: skip
def test_bench_ors_write_with_gup_flags(cli: CliRunner, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                       args: list[str], expected: int | None) -> None:  # fmt: skip
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    RecordingDevice.seen = []
    patch_ioctl(monkeypatch, RecordingDevice.ioctl)
    result = cli.invoke(main, ["bench", "-s", "64K", "--device", str(fake), "--json", *args])
    assert result.exit_code == 0, result.output
    force = flags.table()["force"]
    want = expected if expected is not None else force | (0 if "-W" in args else 1)
    assert RecordingDevice.seen == [want]


def test_internal_flag_is_one_line_naming_the_valid_ones(cli: CliRunner, tmp_path) -> None:
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    result = cli.invoke(main, ["test", "--device", str(fake), "--gup-flags", "foll_pin"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force-flags" in lines[0] and "longterm" in lines[0]
