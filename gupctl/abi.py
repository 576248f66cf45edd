"""The gup_test ioctl ABI: struct layouts and command numbers.

One definition on the Python side, mirroring mm/gup_test.h (the v5.13+ ABI;
PIN_LONGTERM_TEST_* since v6.1) and kmod/gup_test.h on the C side.  A unit
test compiles the C header and holds the two together.

The structs are declared once, with cffi, without explicit padding: the
kernel's header has none, and the command number encodes sizeof(), so the
layout must be the C compiler's natural one (80 bytes for struct gup_test on
x86_64, 76 on i386).
"""

from __future__ import annotations

import ctypes
import enum
import functools
import platform
from dataclasses import dataclass

import cffi
import ioctl_opt

CDEF = """
struct gup_test {
    uint64_t get_delta_usec;
    uint64_t put_delta_usec;
    uint64_t addr;
    uint64_t size;
    uint32_t nr_pages_per_call;
    uint32_t gup_flags;
    uint32_t test_flags;
    uint32_t which_pages[8];
};

struct pin_longterm_test {
    uint64_t addr;
    uint64_t size;
    uint32_t flags;
};
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)

GUP_TEST_MAX_PAGES_TO_DUMP = 8
GUP_TEST_FLAG_DUMP_PAGES_USE_PIN = 0x1
PIN_LONGTERM_TEST_FLAG_USE_WRITE = 1
PIN_LONGTERM_TEST_FLAG_USE_FAST = 2
#: nr_pages_per_call meaning "all pages in one call" (the selftest's -n -1).
ALL_PAGES = 0xFFFFFFFF
#: FOLL_WRITE is the only FOLL_* value that kept its number across v6.2.
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

    def encode(self, direction: Dir, nr: int, size: int) -> int:
        """The number `_IOC(direction, 'g', nr, size)` on this encoding."""
        if size >= 1 << self.size_bits:
            raise ValueError(f"ioctl argument of {size} bytes does not fit {self.name}")
        bits = self.none if direction == Dir.NONE else 0
        if direction & Dir.WRITE:
            bits |= self.write
        if direction & Dir.READ:
            bits |= self.read
        size_shift = 16
        dir_shift = size_shift + self.size_bits
        return (bits << dir_shift) | (size << size_shift) | (IOCTL_TYPE << 8) | nr


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
_MACHINE_ARCH = {
    "ppc": "powerpc", "ppc64": "powerpc", "ppc64le": "powerpc",
    "mips": "mips", "mips64": "mips", "mipsel": "mips", "mips64el": "mips",
    "sparc": "sparc", "sparc64": "sparc", "alpha": "alpha",
    "parisc": "parisc", "parisc64": "parisc",
}  # fmt: skip


@functools.cache
def encoding_for(machine: str | None = None) -> Encoding:
    """The ioctl encoding of `machine` (uname -m), default this machine's."""
    machine = machine or platform.machine()
    return ENCODINGS.get(_MACHINE_ARCH.get(machine, ""), ASM_GENERIC)


@dataclass(frozen=True, eq=False)  # identity: each command exists once, and hashes fast
class Command:
    """One gup_test ioctl as mm/gup_test.h declares it."""

    name: str
    nr: int
    direction: Dir
    arg_type: str | None  # cffi type name of the argument, None for _IO

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
        return _generic(command.direction, command.nr, command.arg_size)
    return encoding.encode(command.direction, command.nr, command.arg_size)


def _generic(direction: Dir, nr: int, size: int) -> int:
    sized = ctypes.c_char * size
    if direction == Dir.NONE:
        return int(ioctl_opt.IO(IOCTL_TYPE, nr))
    if direction == Dir.WRITE:
        return int(ioctl_opt.IOW(IOCTL_TYPE, nr, sized))
    return int(ioctl_opt.IOWR(IOCTL_TYPE, nr, sized))


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
# held in the u64 (v6.1, "mm/gup_test: start/stop/read functionality for PIN
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


@dataclass(frozen=True)
class FieldLayout:
    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class StructLayout:
    name: str
    size: int
    alignment: int
    fields: list[FieldLayout]


@dataclass(frozen=True)
class CommandInfo:
    name: str
    nr: int
    direction: str
    arg: str | None
    number: int


@dataclass(frozen=True)
class AbiReport:
    """What `gupctl abi` prints: this machine's numbers and layouts."""

    machine: str
    encoding: str
    commands: list[CommandInfo]
    structs: list[StructLayout]


def struct_layout(name: str) -> StructLayout:
    """Size, alignment and field offsets of one ABI struct, as cffi lays it out."""
    fields = [FieldLayout(f, t.offset, ffi.sizeof(t.type)) for f, t in ffi.typeof(name).fields]
    return StructLayout(name, ffi.sizeof(name), ffi.alignof(name), fields)


def report(machine: str | None = None) -> AbiReport:
    """The ABI as seen from `machine` (default: this one)."""
    machine = machine or platform.machine()
    enc = encoding_for(machine)
    commands = [
        CommandInfo(c.name, c.nr, _dir_name(c.direction), c.arg_type, c.number(enc))
        for c in COMMANDS
    ]
    return AbiReport(machine, enc.name, commands, [struct_layout(s) for s in STRUCTS])


def _dir_name(direction: Dir) -> str:
    return {Dir.NONE: "_IO", Dir.WRITE: "_IOW", Dir.READ | Dir.WRITE: "_IOWR"}[direction]
