"""Every ABI gupctl names, against what that ABI's real compiler makes of kmod/gup_test.h.

One test per ABI: struct sizes, alignments and field offsets, the alignment of
__u64 and __u32, and all command numbers, compiled against that architecture's
uapi headers from Debian's linux-source (abi_toolchains.py).  clang-19 covers
every ABI it lays out right; GCC (Debian's cpp-TRIPLET, which carries cc1) the
rest.  Under CI a missing compiler fails; elsewhere it skips, naming the
package to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest
from abi_toolchains import CLANG, MissingTool, Toolchain, compile_probe, linux_source, uapi_headers

from gupctl import abi, abi_report


def clang(arch: str, long_bytes: int, target: str, *flags: str, ir: bool = False) -> Toolchain:
    return Toolchain(arch, long_bytes, CLANG, (f"--target={target}", *flags), ir=ir)


def gcc(arch: str, long_bytes: int, triplet: str, *flags: str, package: str = "") -> Toolchain:
    return Toolchain(arch, long_bytes, triplet, flags, package=package)


# Chosen here, not taken from gupctl's table, so that a wrong arch or ABI
# there cannot be mirrored.
TOOLCHAINS = {
    "x86_64": clang("x86", 8, "x86_64-linux-gnu"),
    "i686": clang("x86", 4, "i686-linux-gnu"),
    "x32": clang("x86", 4, "x86_64-linux-gnux32"),
    "aarch64": clang("arm64", 8, "aarch64-linux-gnu"),
    "aarch64_be": clang("arm64", 8, "aarch64_be-linux-gnu"),
    "armv7l": clang("arm", 4, "armv7a-linux-gnueabihf"),
    "armeb": clang("arm", 4, "armebv7a-linux-gnueabi"),
    "arm-oabi": clang("arm", 4, "arm-linux-gnu", "-mabi=apcs-gnu", "-mfloat-abi=soft"),
    "ppc": clang("powerpc", 4, "powerpc-linux-gnu"),
    "ppc64": clang("powerpc", 8, "powerpc64-linux-gnu"),
    "ppc64le": clang("powerpc", 8, "powerpc64le-linux-gnu"),
    "mips": clang("mips", 4, "mips-linux-gnu"),
    "mipsn32": clang("mips", 4, "mips64-linux-gnuabin32"),
    "mips64": clang("mips", 8, "mips64-linux-gnuabi64"),
    "s390x": clang("s390", 8, "s390x-linux-gnu"),
    "s390": gcc("s390", 4, "s390x-linux-gnu", "-m31"),  # clang has no 31-bit mode
    "riscv64": clang("riscv", 8, "riscv64-linux-gnu"),
    "riscv32": clang("riscv", 4, "riscv32-linux-gnu"),
    "sparc64": clang("sparc", 8, "sparc64-linux-gnu"),
    "sparc": clang("sparc", 4, "sparc-linux-gnu"),
    "loongarch64": clang("loongarch", 8, "loongarch64-linux-gnu"),
    "hexagon": clang("hexagon", 4, "hexagon-unknown-linux-musl"),
    "csky": clang("csky", 4, "csky-linux-gnu", ir=True),  # no csky code generator
    "alpha": gcc("alpha", 8, "alpha-linux-gnu"),
    "parisc": gcc("parisc", 4, "hppa-linux-gnu"),
    # clang-19's m68k (experimental) aligns __u64 to 8; GCC, the ABI, to 2.
    "m68k": gcc("m68k", 4, "m68k-linux-gnu"),
    "sh4": gcc("sh", 4, "sh4-linux-gnu"),
    "arc": gcc("arc", 4, "arc-linux-gnu"),
    # Debian has or1k-elf only: the bare-metal target, laid out as or1k-linux.
    "openrisc": gcc("openrisc", 4, "or1k-elf", package="gcc-or1k-elf"),
}


def _missing(err: MissingTool) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{err} (CI must test every ABI)")
    pytest.skip(str(err))


@pytest.fixture(scope="module")
def uapi() -> Path:
    try:
        return uapi_headers(linux_source())
    except MissingTool as err:
        _missing(err)


def test_every_abi_has_a_toolchain() -> None:
    assert sorted(TOOLCHAINS) == sorted(a.name for a in abi.ABIS)


def gupctl_values(a: abi.Abi) -> dict[str, int]:
    """What gupctl says `a`'s compiler will say, keyed as the probe's output is."""
    values = {"align_u64": a.u64_align, "align_u32": a.u32_align}
    for struct in abi.STRUCTS:
        layout = abi_report.abi_struct_layout(struct, a)
        tag = struct.removeprefix("struct ")
        values[f"size_{tag}"] = layout.size
        values[f"align_{tag}"] = layout.alignment
        values.update({f"offset_{tag}_{f.name}": f.offset for f in layout.fields})
    values.update({f"cmd_{c.name}": abi_report.abi_number(c, a) for c in abi.COMMANDS})
    return values


@pytest.mark.parametrize("name", sorted(TOOLCHAINS))
def test_abi_matches_its_compiler(name: str, uapi: Path, tmp_path: Path) -> None:
    tc = TOOLCHAINS[name]
    try:
        compiled = compile_probe(tc, uapi, tmp_path / "probe.s")
    except MissingTool as err:
        _missing(err)
    assert compiled.pop("sizeof_long") == tc.long_bytes, "the flags picked another ABI"
    assert compiled == gupctl_values(abi.find_abi(name))
