"""`gupctl abi`: one ABI's command numbers and struct layouts, as data.

This process's layout is cffi's (what its ioctls use); another ABI's is
computed from how that ABI aligns __u64 and __u32 (gupctl.abi.ABIS), and
tests/unit/test_abi_cross.py holds both to what real compilers compute.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from gupctl.abi import (
    BY_MACHINE,
    COMMANDS,
    STRUCTS,
    Abi,
    Command,
    Dir,
    encoding_for,
    ffi,
    find_abi,
)


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
    """What `gupctl abi` prints: one ABI's numbers and layouts."""

    machine: str  # as asked, or this machine's uname -m
    abi: str  # the ABI's name in ABIS ("this process" when uname -m is not there)
    #: True for this process's own layout (cffi's), False for one computed for `abi`
    this_process: bool
    encoding: str
    u64_alignment: int
    commands: list[CommandInfo]
    structs: list[StructLayout]


def struct_layout(name: str) -> StructLayout:
    """Size, alignment and field offsets of one ABI struct, as cffi lays it out."""
    fields = [FieldLayout(f, t.offset, ffi.sizeof(t.type)) for f, t in ffi.typeof(name).fields]
    return StructLayout(name, ffi.sizeof(name), ffi.alignof(name), fields)


def abi_struct_layout(name: str, abi: Abi) -> StructLayout:
    """One ABI struct as `abi`'s C compiler lays it out: each field at the next
    multiple of its type's alignment there, the size rounded up to the largest."""
    offset, align, fields = 0, 1, []
    for field, t in ffi.typeof(name).fields:
        item = t.type.item if t.type.kind == "array" else t.type
        item_align = abi.alignof(item.cname)
        offset = -(-offset // item_align) * item_align
        fields.append(FieldLayout(field, offset, ffi.sizeof(t.type)))
        offset += ffi.sizeof(t.type)
        align = max(align, item_align)
    return StructLayout(name, -(-offset // align) * align, align, fields)


def abi_number(command: Command, abi: Abi) -> int:
    """The command number on `abi`, whose argument size may differ from this process's."""
    if command.arg_type is None:
        size = 0
    elif command.arg_type.startswith("struct "):
        size = abi_struct_layout(command.arg_type, abi).size
    else:
        size = ffi.sizeof(command.arg_type)
    return abi.encoding.encode(command.direction, command.nr, size)


def report(machine: str | None = None) -> AbiReport:
    """The ABI of `machine` (any name `find_abi` takes); default this process's own."""
    if machine is None:
        host = BY_MACHINE.get(platform.machine())
        enc = encoding_for()
        commands = [_info(c, c.number(enc)) for c in COMMANDS]
        return AbiReport(platform.machine(), host.name if host else "this process", True,
                         enc.name, ffi.alignof("uint64_t"), commands,
                         [struct_layout(s) for s in STRUCTS])  # fmt: skip
    abi = find_abi(machine)
    commands = [_info(c, abi_number(c, abi)) for c in COMMANDS]
    structs = [abi_struct_layout(s, abi) for s in STRUCTS]
    return AbiReport(machine, abi.name, False, abi.encoding.name, abi.u64_align, commands, structs)


def _info(command: Command, number: int) -> CommandInfo:
    return CommandInfo(command.name, command.nr, _dir_name(command.direction),
                       command.arg_type, number)  # fmt: skip


def _dir_name(direction: Dir) -> str:
    return {Dir.NONE: "_IO", Dir.WRITE: "_IOW", Dir.READ | Dir.WRITE: "_IOWR"}[direction]
