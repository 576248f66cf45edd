"""The gup_test ioctl ABI: struct layouts and command numbers.

One definition on the Python side, mirroring mm/gup_test.h (the v5.13+ ABI;
PIN_LONGTERM_TEST_* since v6.2) and kmod/gup_test.h on the C side.  Unit
tests compile the C header, for this machine and for every ABI in `ABIS` with
that ABI's compiler and uapi headers, and hold the two together.

The structs are declared once, with cffi (gupctl/_cdefs.py), without explicit padding: the
kernel's header has none, and the command number encodes sizeof(), so the
layout must be the C compiler's natural one (80 bytes for struct gup_test on
x86_64, 76 on i386).  This process's ioctls use cffi's layout; another ABI's
(`gupctl abi --machine`) is computed from how that ABI aligns __u64 and __u32
(gupctl/abi_report.py).
"""

from __future__ import annotations

import ctypes
import enum
import functools
import platform
from dataclasses import dataclass

import ioctl_opt

from gupctl import _cdefs
from gupctl.errors import UnknownMachine

ffi = _cdefs.ffi  # the structs below, parsed once at build time where it could be
CDEF = _cdefs.ABI

GUP_TEST_MAX_PAGES_TO_DUMP = 8
GUP_TEST_FLAG_DUMP_PAGES_USE_PIN = 0x1
PIN_LONGTERM_TEST_FLAG_USE_WRITE = 1
PIN_LONGTERM_TEST_FLAG_USE_FAST = 2
#: nr_pages_per_call meaning "all pages in one call" (the selftest's -n -1).
ALL_PAGES = 0xFFFFFFFF
#: FOLL_WRITE is the only FOLL_* value that kept its number across v6.3
#: (2c2241081f7d, "mm/gup: move private gup FOLL_ flags to internal.h").
FOLL_WRITE = 0x1

IOCTL_TYPE = ord("g")


class Dir(enum.IntFlag):
    """Transfer direction, from userspace's point of view."""

    NONE = 0
    WRITE = 1
    READ = 2


@dataclass(frozen=True)
class Encoding:
    """How an architecture packs direction and size into an ioctl number."""

    name: str
    size_bits: int
    dir_bits: int
    none: int
    write: int
    read: int

    def encode(self, direction: Dir, nr: int, size: int, kind: int = IOCTL_TYPE) -> int:
        """The number `_IOC(direction, kind, nr, size)` on this encoding."""
        if size >= 1 << self.size_bits:
            raise ValueError(f"ioctl argument of {size} bytes does not fit {self.name}")
        bits = self.none if direction == Dir.NONE else 0
        if direction & Dir.WRITE:
            bits |= self.write
        if direction & Dir.READ:
            bits |= self.read
        size_shift = 16
        dir_shift = size_shift + self.size_bits
        return (bits << dir_shift) | (size << size_shift) | (kind << 8) | nr


# include/uapi/asm-generic/ioctl.h and the architectures that override it.
# ioctl-opt implements asm-generic only; it computes that row (see _generic()).
ASM_GENERIC = Encoding("asm-generic", 14, 2, none=0, write=1, read=2)
ENCODINGS: dict[str, Encoding] = {
    # arch/{powerpc,mips,sparc,alpha}/include/uapi/asm/ioctl.h
    "powerpc": Encoding("powerpc", 13, 3, none=1, write=4, read=2),
    "mips": Encoding("mips", 13, 3, none=1, write=4, read=2),
    "sparc": Encoding("sparc", 13, 3, none=1, write=4, read=2),
    "alpha": Encoding("alpha", 13, 3, none=1, write=4, read=2),
    # arch/parisc/include/uapi/asm/ioctl.h swaps READ and WRITE.
    "parisc": Encoding("parisc", 14, 2, none=0, write=2, read=1),
}


@dataclass(frozen=True)
class Abi:
    """One Linux userspace ABI: its ioctl encoding and how its C compiler
    aligns the uapi types (__u64 is 8 bytes and __u32 4 everywhere; only
    their alignment differs, and with it padding and sizeof())."""

    name: str
    encoding: Encoding
    u64_align: int
    u32_align: int = 4
    aliases: tuple[str, ...] = ()

    def alignof(self, ctype: str) -> int:
        """Alignment of a fixed-width cffi type (uint64_t, uint32_t) on this ABI."""
        return {"uint64_t": self.u64_align, "uint32_t": self.u32_align}[ctype]


_G, _PPC, _MIPS = ASM_GENERIC, ENCODINGS["powerpc"], ENCODINGS["mips"]
_SPARC, _ALPHA, _PARISC = ENCODINGS["sparc"], ENCODINGS["alpha"], ENCODINGS["parisc"]
#: Every ABI gupctl knows, by the name `uname -m` gives (aliases: other
#: spellings of it, and ABIs with the same layout).  tests/unit/test_abi_cross.py
#: checks each against its real compiler.  __u64 is 4-byte aligned on i386,
#: ARM OABI, sh, arc, csky and openrisc, and 2-byte (like __u32) on m68k.
ABIS: tuple[Abi, ...] = (
    Abi("x86_64", _G, 8, aliases=("amd64",)),
    Abi("i686", _G, 4, aliases=("i386", "i486", "i586", "x86")),
    Abi("x32", _G, 8),
    Abi("aarch64", _G, 8, aliases=("arm64",)),
    Abi("aarch64_be", _G, 8),
    Abi("armv7l", _G, 8, aliases=("arm", "armv5tel", "armv6l", "armv8l", "armhf", "armel")),
    Abi("armeb", _G, 8, aliases=("armv7b",)),
    Abi("arm-oabi", _G, 4),  # the old ARM ABI (CONFIG_AEABI=n, or OABI_COMPAT)
    Abi("ppc", _PPC, 8, aliases=("powerpc",)),
    Abi("ppc64", _PPC, 8, aliases=("powerpc64",)),
    Abi("ppc64le", _PPC, 8, aliases=("powerpc64le", "ppc64el")),
    Abi("mips", _MIPS, 8, aliases=("mipsel",)),  # o32
    Abi("mipsn32", _MIPS, 8, aliases=("mipsn32el",)),
    Abi("mips64", _MIPS, 8, aliases=("mips64el",)),  # n64
    Abi("s390x", _G, 8),
    Abi("s390", _G, 8),  # 31-bit, CONFIG_COMPAT on s390x (gone by v7.3)
    Abi("riscv64", _G, 8),
    Abi("riscv32", _G, 8),
    Abi("sparc64", _SPARC, 8),
    Abi("sparc", _SPARC, 8, aliases=("sparc32",)),
    Abi("alpha", _ALPHA, 8),
    Abi("parisc", _PARISC, 8, aliases=("parisc64", "hppa")),  # 32-bit userland
    Abi("m68k", _G, 2, u32_align=2),
    Abi("sh4", _G, 4, aliases=("sh", "sh3", "sh4a")),
    Abi("arc", _G, 4),
    Abi("loongarch64", _G, 8, aliases=("loong64",)),
    Abi("hexagon", _G, 8),
    Abi("csky", _G, 4),
    Abi("openrisc", _G, 4, aliases=("or1k",)),
)
BY_MACHINE = {n: a for a in ABIS for n in (a.name, *a.aliases)}


def find_abi(machine: str) -> Abi:
    """The ABI `machine` names (uname -m, or an ABI name such as x32).

    Raises UnknownMachine, which lists the names known.
    """
    try:
        return BY_MACHINE[machine]
    except KeyError:
        raise UnknownMachine(machine, {a.name: a.aliases for a in ABIS}) from None


@functools.cache
def encoding_for(machine: str | None = None) -> Encoding:
    """The ioctl encoding of `machine` (uname -m), default this machine's.

    This machine's falls back to asm-generic, the encoding of every
    architecture that has no override, where `uname -m` is not in `ABIS`.
    """
    if machine is None:
        host = BY_MACHINE.get(platform.machine())
        return host.encoding if host else ASM_GENERIC
    return find_abi(machine).encoding


@dataclass(frozen=True, eq=False)  # identity: each command exists once, and hashes fast
class Command:
    """One gup_test ioctl as mm/gup_test.h declares it."""

    name: str
    nr: int
    direction: Dir
    arg_type: str | None  # cffi type name of the argument, None for _IO
    kind: int = IOCTL_TYPE  # the ioctl type: 'g' for every gup_test command

    @property
    def arg_size(self) -> int:
        return ffi.sizeof(self.arg_type) if self.arg_type else 0

    def number(self, encoding: Encoding | None = None) -> int:
        """The command number on `encoding` (default: this machine's)."""
        return _number(self, encoding or encoding_for())


# Cached: it is on the path of every ioctl, and ioctl-opt builds a ctypes type.
@functools.cache
def _number(command: Command, encoding: Encoding) -> int:
    if encoding is ASM_GENERIC:
        return _generic(command.direction, command.nr, command.arg_size, command.kind)
    return encoding.encode(command.direction, command.nr, command.arg_size, command.kind)


def _generic(direction: Dir, nr: int, size: int, kind: int) -> int:
    sized = ctypes.c_char * size
    if direction == Dir.NONE:
        return int(ioctl_opt.IO(kind, nr))
    if direction == Dir.WRITE:
        return int(ioctl_opt.IOW(kind, nr, sized))
    return int(ioctl_opt.IOWR(kind, nr, sized))


_RW, _W = Dir.READ | Dir.WRITE, Dir.WRITE
GUP_FAST_BENCHMARK = Command("GUP_FAST_BENCHMARK", 1, _RW, "struct gup_test")
PIN_FAST_BENCHMARK = Command("PIN_FAST_BENCHMARK", 2, _RW, "struct gup_test")
PIN_LONGTERM_BENCHMARK = Command("PIN_LONGTERM_BENCHMARK", 3, _RW, "struct gup_test")
GUP_BASIC_TEST = Command("GUP_BASIC_TEST", 4, _RW, "struct gup_test")
PIN_BASIC_TEST = Command("PIN_BASIC_TEST", 5, _RW, "struct gup_test")
DUMP_USER_PAGES_TEST = Command("DUMP_USER_PAGES_TEST", 6, _RW, "struct gup_test")
PIN_LONGTERM_TEST_START = Command("PIN_LONGTERM_TEST_START", 7, _W, "struct pin_longterm_test")
PIN_LONGTERM_TEST_STOP = Command("PIN_LONGTERM_TEST_STOP", 8, Dir.NONE, None)
# Declared _IOW(__u64) but the kernel copies page contents out to the address
# held in the u64 (v6.2, "mm/gup_test: start/stop/read functionality for PIN
# LONGTERM test").
PIN_LONGTERM_TEST_READ = Command("PIN_LONGTERM_TEST_READ", 9, _W, "uint64_t")

COMMANDS: tuple[Command, ...] = (
    GUP_FAST_BENCHMARK,
    PIN_FAST_BENCHMARK,
    PIN_LONGTERM_BENCHMARK,
    GUP_BASIC_TEST,
    PIN_BASIC_TEST,
    DUMP_USER_PAGES_TEST,
    PIN_LONGTERM_TEST_START,
    PIN_LONGTERM_TEST_STOP,
    PIN_LONGTERM_TEST_READ,
)
BY_NAME = {c.name.lower(): c for c in COMMANDS}
#: Commands that take pins (FOLL_PIN) and so move nr_foll_pin_*.
PIN_COMMANDS = frozenset({PIN_FAST_BENCHMARK, PIN_LONGTERM_BENCHMARK, PIN_BASIC_TEST})

STRUCTS = ("struct gup_test", "struct pin_longterm_test")

#: gupctl's kmod only (kmod/gupctl_extract.h): iov_iter_extract_pages() from
#: userspace.  Type 'x', which no gup_test command (all 'g') can ever have.
EXTRACT_TYPE = ord("x")
GUPCTL_EXTRACT = Command("GUPCTL_EXTRACT", 1, _RW, "struct gupctl_extract", EXTRACT_TYPE)
#: gupctl's kmod only (kmod/gupctl_pages.h): what the kernel keeps about page
#: frames (refcount, pincount, zone), looked at without a reference.
GUPCTL_PAGES = Command("GUPCTL_PAGES", 2, _RW, "struct gupctl_pages", EXTRACT_TYPE)


def per_call_label(nr_pages_per_call: int, nr_pages: int) -> str:
    """nr_pages_per_call as tables and labels show it: "all" when one GUP call
    covers the whole range (gup_test never asks for more than remain)."""
    return "all" if nr_pages_per_call >= nr_pages else str(nr_pages_per_call)
