"""gupctl/abi.py against kmod/gup_test.h as the system C compiler lays it out,
and `gupctl abi` (other ABIs: test_abi_cross.py)."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gupctl import abi, abi_report
from gupctl.cli import main
from gupctl.errors import UnknownMachine

HERE = Path(__file__).parent
KMOD = HERE.parents[1] / "kmod"


@pytest.fixture(scope="module")
def c_abi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed for the ABI test"
    exe = tmp_path_factory.mktemp("abi") / "abi_probe"
    subprocess.run([cc, "-Wall", "-Werror", "-I", str(KMOD), "-o", str(exe),
                    str(HERE / "abi_probe.c")], check=True)  # fmt: skip
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    values = {}
    for line in out.splitlines():
        *key, value = line.split()
        values[" ".join(key)] = int(value)
    return values


def test_command_numbers_match_c(c_abi: dict[str, int]) -> None:
    for command in abi.COMMANDS:
        assert command.number() == c_abi[f"cmd {command.name}"], command.name


def test_struct_sizes_and_offsets_match_c(c_abi: dict[str, int]) -> None:
    for name in abi.STRUCTS:
        layout = abi_report.struct_layout(name)
        assert layout.size == c_abi[f"size {name}"]
        for field in layout.fields:
            assert field.offset == c_abi[f"offset {name} {field.name}"], field.name


def test_constants_match_c(c_abi: dict[str, int]) -> None:
    for name in (
        "GUP_TEST_MAX_PAGES_TO_DUMP",
        "GUP_TEST_FLAG_DUMP_PAGES_USE_PIN",
        "PIN_LONGTERM_TEST_FLAG_USE_WRITE",
        "PIN_LONGTERM_TEST_FLAG_USE_FAST",
    ):
        assert getattr(abi, name) == c_abi[f"const {name}"], name  # fmt: skip


def test_extract_matches_c(c_abi: dict[str, int]) -> None:
    """GUPCTL_EXTRACT (kmod/gupctl_extract.h), the kmod's own command."""
    from gupctl import extract
    from gupctl.cli import extract as cli_extract

    assert abi.GUPCTL_EXTRACT.number() == c_abi["cmd GUPCTL_EXTRACT"]
    layout = abi_report.struct_layout("struct gupctl_extract")
    assert layout.size == c_abi["size struct gupctl_extract"]
    for field in layout.fields:
        assert field.offset == c_abi[f"offset struct gupctl_extract {field.name}"], field.name
    for name, value in extract.ITER_TYPES.items():
        assert value == c_abi[f"const GUPCTL_EXTRACT_{name.upper()}"], name
    assert c_abi["const GUPCTL_EXTRACT_FLAG_DEST"] == extract.FLAG_DEST
    assert c_abi["const GUPCTL_EXTRACT_MAX_SEGS"] == extract.MAX_SEGS
    assert tuple(extract.ITER_TYPES) == cli_extract._TYPES  # the CLI's copy, kept unimported


def test_pages_matches_c(c_abi: dict[str, int]) -> None:
    """GUPCTL_PAGES (kmod/gupctl_pages.h), the kmod's own command."""
    from gupctl import pins

    assert abi.GUPCTL_PAGES.number() == c_abi["cmd GUPCTL_PAGES"]
    for struct in ("gupctl_page", "gupctl_pages"):
        layout = abi_report.struct_layout(f"struct {struct}")
        assert layout.size == c_abi[f"size struct {struct}"]
        for field in layout.fields:
            assert field.offset == c_abi[f"offset struct {struct} {field.name}"], field.name
    assert c_abi["const GUPCTL_PAGE_ONLINE"] == pins.FLAG_ONLINE
    assert c_abi["const GUPCTL_PAGE_PINNED"] == pins.FLAG_PINNED
    assert c_abi["const GUPCTL_PAGE_UNSTABLE"] == pins.FLAG_UNSTABLE
    assert c_abi["const GUPCTL_PAGES_MAX"] == pins.PAGES_MAX


def test_extract_never_collides_with_gup_test() -> None:
    """Every gup_test command is of type 'g'; GUPCTL_EXTRACT's is not."""
    assert {(c.number() >> 8) & 0xFF for c in abi.COMMANDS} == {ord("g")}
    assert (abi.GUPCTL_EXTRACT.number() >> 8) & 0xFF == ord("x")
    assert (abi.GUPCTL_PAGES.number() >> 8) & 0xFF == ord("x")
    assert abi.GUPCTL_PAGES.number() != abi.GUPCTL_EXTRACT.number()


def test_x86_64_layout_is_the_kernels() -> None:
    # mm/gup_test.h on x86_64: 76 bytes of fields plus 4 of tail padding.
    assert abi.ffi.sizeof("struct gup_test") == 80
    assert abi.ffi.sizeof("struct pin_longterm_test") == 24


# Numbers worked out by hand from each arch's uapi/asm/ioctl.h, independently
# of gupctl's table: (dir << dirshift) | (size << 16) | ('g' << 8) | nr.
@pytest.mark.parametrize(
    "machine, command, expected",
    [
        ("x86_64", abi.PIN_LONGTERM_TEST_START, 0x40186707),  # WRITE=1, dirshift 30
        ("x86_64", abi.PIN_LONGTERM_TEST_STOP, 0x00006708),
        ("ppc64le", abi.PIN_LONGTERM_TEST_START, 0x80186707),  # WRITE=4, dirshift 29
        ("ppc64le", abi.PIN_LONGTERM_TEST_STOP, 0x20006708),  # NONE=1
        ("mips", abi.PIN_LONGTERM_TEST_READ, 0x80086709),
        ("sparc64", abi.GUP_FAST_BENCHMARK, 0xC0506701),  # READ|WRITE=6
        ("parisc", abi.PIN_LONGTERM_TEST_START, 0x80186707),  # WRITE=2, dirshift 30
        ("parisc", abi.PIN_FAST_BENCHMARK, 0xC0506702),
        ("aarch64", abi.PIN_LONGTERM_TEST_READ, 0x40086709),
    ],
)
def test_per_arch_encoding(machine: str, command: abi.Command, expected: int) -> None:
    assert command.number(abi.encoding_for(machine)) == expected


def test_generic_table_row_agrees_with_ioctl_opt() -> None:
    for command in abi.COMMANDS:
        assert abi.ASM_GENERIC.encode(command.direction, command.nr, command.arg_size) == \
            command.number(abi.ASM_GENERIC)  # fmt: skip


def test_computed_layout_of_this_machine_is_cffis() -> None:
    host = abi.find_abi(platform.machine())
    for name in abi.STRUCTS:
        assert abi_report.abi_struct_layout(name, host) == abi_report.struct_layout(name)
    for command in abi.COMMANDS:
        assert abi_report.abi_number(command, host) == command.number()


def test_every_name_means_one_abi() -> None:
    names = [n for a in abi.ABIS for n in (a.name, *a.aliases)]
    assert len(names) == len(set(names))
    assert len(abi.ABIS) >= 25


def test_unknown_machine_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownMachine) as info:
        abi_report.report("bogus")
    assert info.value.known["i686"] == ("i386", "i486", "i586", "x86")
    assert list(info.value.known) == [a.name for a in abi.ABIS]


def test_this_machine_falls_back_to_asm_generic(monkeypatch: pytest.MonkeyPatch) -> None:
    # An architecture without an ioctl.h of its own is asm-generic: the host
    # must keep working when uname -m is not in the table.
    monkeypatch.setattr(platform, "machine", lambda: "ia64")
    abi.encoding_for.cache_clear()
    try:
        assert abi.encoding_for() is abi.ASM_GENERIC
        assert abi_report.report().abi == "this process"
    finally:
        monkeypatch.undo()
        abi.encoding_for.cache_clear()


@pytest.mark.parametrize("machine", ["i686", "i386", "m68k", "sh4", "arc"])
def test_abi_machine_gives_that_abis_layout(cli: CliRunner, machine: str) -> None:
    result = cli.invoke(main, ["abi", "--machine", machine, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["size"] for s in data["structs"]] == [76, 20]
    assert data["this_process"] is False
    numbers = {c["name"]: c["number"] for c in data["commands"]}
    assert numbers["GUP_FAST_BENCHMARK"] == 0xC04C6701
    assert numbers["PIN_LONGTERM_TEST_START"] == 0x40146707


def test_abi_machine_table(cli: CliRunner) -> None:
    result = cli.invoke(main, ["abi", "--machine", "i386"])
    assert result.exit_code == 0
    assert "i386 = i686" in result.stdout and "__u64 aligned 4" in result.stdout
    assert "0xc04c6701" in result.stdout and "76 bytes" in result.stdout


def test_abi_unknown_machine_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "gupctl", "abi", "--machine", "bogus"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "unknown machine 'bogus'" in lines[0]
    assert "x86_64 (amd64), i686 (i386, i486, i586, x86)" in lines[0] and "m68k" in lines[0]


def test_the_prebuilt_ffi_is_these_declarations() -> None:
    """gupctl/_ffi.py (setup.py, from gupctl/_cdefs.py) lays out what parsing the
    text does, and start-up loads it: no C parser is imported."""
    import subprocess
    import sys

    import cffi

    from gupctl import _cdefs

    parsed = cffi.FFI()
    parsed.cdef(_cdefs.CDEF)
    for name in ("struct gup_test", "struct pin_longterm_test", "struct gupctl_extract",
                 "struct gupctl_page", "struct gupctl_pages", "struct iovec"):  # fmt: skip
        assert parsed.sizeof(name) == abi.ffi.sizeof(name), name
        assert [(f, t.offset) for f, t in parsed.typeof(name).fields] == [
            (f, t.offset) for f, t in abi.ffi.typeof(name).fields]  # fmt: skip
    probe = "import sys, gupctl.abi, gupctl._libc; print('pycparser' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False", "gupctl/_ffi.py is missing or stale: pip install -e ."
