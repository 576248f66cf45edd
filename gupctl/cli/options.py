"""Options shared by several commands, and the parameter types they need."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import click

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: No mapping can be larger than a process's address space: 47 bits on x86_64
#: with 4-level page tables (and larger values overflow mmap's and
#: ftruncate's arguments).
MAX_SIZE = 1 << 47
#: Threads each take a stack and a file reference: past this, -j is a typo.
MAX_THREADS = 1024
#: A billion ioctls take hours even natively: past this, -r is a typo.
MAX_REPEATS = 10**9


def ascii_digits(text: str) -> bool:
    """Whether `text` is a number as gupctl takes one: ASCII digits only.  str's
    own tests take any script's digits ('١' is 1 to int()), and isdigit() takes
    superscripts int() refuses ('²')."""
    return text.isascii() and text.isdigit()


class Number(click.IntRange):
    """click.IntRange, of ASCII digits only (ascii_digits)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and not ascii_digits(value.strip().lstrip("+-")):
            self.fail(f"{value!r} is not a number: use the digits 0-9", param, ctx)
        return super().convert(value, param, ctx)


class Size(click.ParamType):
    """A byte count: 4096, 64K, 128M, 1G (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        size = _bytes(str(value))
        if not size:
            self.fail(f"{value!r} is not a size: use e.g. 4096, 64K, 128M or 1G", param, ctx)
        if size >= MAX_SIZE:
            self.fail(f"{value!r} is more than a process can map (128T): use a smaller size",
                      param, ctx)  # fmt: skip
        return size


def _bytes(text: str) -> int | None:
    """'128M', '64 KiB', '4096 b' in bytes; None if `text` is no size.  By hand,
    not by a regular expression: compiling one costs a command about 0.2 s in
    gupctl's TCG guest."""
    low = text.strip().lower()
    low = low[:-2] if low.endswith("ib") else low[:-1] if low.endswith("b") else low
    unit = low[-1:] if low[-1:] in ("k", "m", "g", "t") else ""
    digits = low[: len(low) - len(unit)].rstrip()
    return int(digits) * _UNITS[unit] if ascii_digits(digits) else None


class CpuList(click.ParamType):
    """CPUs as the kernel lists them (1, 0,2, 0-3), each one this process may use."""

    name = "cpulist"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, ...]:
        from gupctl import cpus

        if isinstance(value, tuple):
            return value
        parsed = cpus.parse(str(value))
        if not parsed:
            self.fail(f"{value!r} is not a CPU list: use e.g. 1, 0,2 or 0-3", param, ctx)
        allowed = cpus.allowed()
        outside = [cpu for cpu in parsed if cpu not in allowed]
        if outside:
            self.fail(f"CPU {outside[0]} is not one this process may run on: pick from "
                      f"{cpus.format_list(allowed)}", param, ctx)  # fmt: skip
        return parsed


class Seconds(click.ParamType):
    """A time limit: a positive, finite number of seconds."""

    name = "seconds"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (0 < seconds < math.inf):
            self.fail(f"{value!r} is not a time limit: give a positive number of seconds",
                      param, ctx)  # fmt: skip
        return seconds


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A callback for options naming a file to write: its directory must exist and be
    writable now, before any work whose result would then be lost."""
    if value is None or value == "-":
        return value
    parent = os.path.dirname(os.path.abspath(value))
    if os.path.isdir(value):
        raise click.BadParameter(f"{value} is a directory: name a file in it", ctx, param)
    if not os.path.isdir(parent):
        raise click.BadParameter(f"directory {parent} does not exist: create it first",
                                 ctx, param)  # fmt: skip
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"directory {parent} is not writable by this user",
                                 ctx, param)  # fmt: skip
    return value


class PagesPerCall(click.ParamType):
    """A positive page count, or 'all' (or -1, as the selftest spells it)."""

    name = "pages"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from gupctl.abi import ALL_PAGES

        if isinstance(value, int):
            return value
        if str(value).lower() in ("all", "-1"):
            return ALL_PAGES
        if ascii_digits(str(value)) and 0 < int(value) < ALL_PAGES:
            return int(value)
        self.fail(f"{value!r} is not a page count: use a number >= 1 or 'all'", param, ctx)


class ThpSize(Size):
    """An anonymous THP size this kernel lists (gupctl.thp.sizes())."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from gupctl import thp

        size = super().convert(value, param, ctx)
        offered = thp.sizes()
        if size not in offered:
            listed = thp.spelled(offered)
            self.fail(f"{value!r} is not a THP size of this kernel: use one of {listed}" if listed
                      else "this kernel has no THP (CONFIG_TRANSPARENT_HUGEPAGE): drop "
                      "--thp-size", param, ctx)  # fmt: skip
        return size


class NumaNode(click.ParamType):
    """A NUMA node number, or 'auto': the first node with memory and no CPUs."""

    name = "node"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        from gupctl import numa

        if value is None or isinstance(value, int):
            return value
        if str(value) == "auto":
            memory_only = numa.memory_only_nodes()
            if not memory_only:
                self.fail(
                    "'auto' needs a memory-only NUMA node and this machine has none", param, ctx
                )
            return memory_only[0]
        if ascii_digits(str(value)) and int(value) in numa.nodes():
            return int(value)
        self.fail(f"{value!r} is not a NUMA node here (nodes: {numa.nodes()})", param, ctx)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "use_json", is_flag=True, help="Print JSON instead of tables.")(f)


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--device", metavar="PATH",
        help="gup_test file (default: $GUPCTL_DEVICE, /sys/kernel/debug/gup_test, /dev/gup_test).",
    )(f)  # fmt: skip


def memory_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The mapping options; the command receives one `memory` MemorySpec."""
    opts = [
        click.option("--shared", is_flag=True, help="MAP_SHARED instead of MAP_PRIVATE."),
        click.option("--file", "file", metavar="PATH", help="Map this file, not anonymous memory."),
        click.option("--create", is_flag=True, help="Create --file (and remove it afterwards)."),
        click.option("--memfd", is_flag=True, help="memfd_create() (with --hugetlb: hugetlbfs)."),
        click.option("--hugetlb", is_flag=True, help="MAP_HUGETLB (needs reserved huge pages)."),
        click.option("--thp/--no-thp", default=None, help="MADV_HUGEPAGE / MADV_NOHUGEPAGE."),
        click.option("--thp-size", type=ThpSize(), metavar="SIZE",
                     help="THP of this size alone (one the kernel lists, e.g. 64K): allowed "
                     "for the run, the others not, all restored after; implies --thp."),
        click.option("--prefault/--no-prefault", default=True, show_default=True,
                     help="Touch every page from userspace before the ioctl."),
        click.option("--numa-node", type=NumaNode(), envvar="GUPCTL_NUMA_NODE",
                     help="Bind the memory to this node and count pins there (exact balance)."),
    ]  # fmt: skip

    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
        from gupctl.memory import MemorySpec

        if kw["create"] and not kw["file"]:
            raise click.UsageError("--create needs --file PATH")
        if kw["memfd"] and kw["file"]:
            raise click.UsageError("--memfd and --file exclude each other")
        _check_file(kw["file"], kw["create"])
        _check_thp_size(kw)
        kw["memory"] = MemorySpec(
            shared=kw.pop("shared"), file=kw.pop("file"), create=kw.pop("create"),
            memfd=kw.pop("memfd"),
            hugetlb=kw.pop("hugetlb"), thp=kw.pop("thp"), thp_size=kw.pop("thp_size"),
            prefault=kw.pop("prefault"),
            numa_node=kw.pop("numa_node"),
        )  # fmt: skip
        return f(*args, **kw)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def _check_thp_size(kw: dict[str, Any]) -> None:
    """--thp-size is an anonymous private mapping's, and implies --thp."""
    if kw["thp_size"] is None:
        return
    if kw["thp"] is False:
        raise click.UsageError("--thp-size and --no-thp exclude each other")
    # The per-size knobs are anonymous memory's; shmem and files have their own.
    other = [o for o in ("shared", "file", "memfd", "hugetlb") if kw[o]]
    if other:
        raise click.UsageError(f"--thp-size sizes anonymous private THP, not --{other[0]} "
                               "memory: drop one of them")  # fmt: skip
    kw["thp"] = True


def _check_file(path: str | None, create: bool) -> None:
    """--file before any work: there to map, or (--create) free to be made."""
    if path is None:
        return
    if create:
        if os.path.lexists(path):
            raise click.UsageError(f"--file {path} exists and --create would replace it: "
                                   "drop --create to map it, or name a new file")  # fmt: skip
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise click.UsageError(f"--file {path}: its directory does not exist")
    elif not os.path.exists(path):
        raise click.UsageError(f"--file {path} does not exist: add --create to make it")
    elif os.path.isdir(path):  # a device such as /dev/zero (upstream's default) maps
        raise click.UsageError(f"--file {path} is a directory: name a file to map")


def gup_flags_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--gup-flags SPEC and --force-flags; the command receives one `gup_flags` int."""
    opts = [
        click.option("--gup-flags", "gup_flags", metavar="SPEC", default="",
                     help="More FOLL_* flags for GUP, this kernel's values: names (write,"
                     "force,longterm...; foll_ prefix optional) or numbers, comma-separated."),
        click.option("--force-flags", is_flag=True,
                     help="Allow internal FOLL_* bits (pin, get, touch...) in --gup-flags: "
                     "experts only, GUP may WARN or leak references."),
    ]  # fmt: skip

    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
        from gupctl import flags

        spec, force = kw.pop("gup_flags"), kw.pop("force_flags")
        if spec and not all(part.strip() for part in spec.split(",")):
            what = f"{spec!r} has an empty flag name: separate names or numbers by single commas"
            raise click.BadParameter(what, param_hint="--gup-flags")
        # A FlagsError raised here is a library error: hints.py lists the valid names.
        kw["gup_flags"] = flags.parse(spec, allow_internal=force) if spec else 0
        return f(*args, **kw)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper
