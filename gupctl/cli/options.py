"""Options shared by several commands, and the parameter types they need."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import click

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class Size(click.ParamType):
    """A byte count: 4096, 64K, 128M, 1G (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if not m or int(m.group(1)) == 0:
            self.fail(f"{value!r} is not a size: use e.g. 4096, 64K, 128M or 1G", param, ctx)
        return int(m.group(1)) * _UNITS[m.group(2).lower()]


class PagesPerCall(click.ParamType):
    """A positive page count, or 'all' (or -1, as the selftest spells it)."""

    name = "pages"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from gupctl.abi import ALL_PAGES

        if isinstance(value, int):
            return value
        if str(value).lower() in ("all", "-1"):
            return ALL_PAGES
        if str(value).isdigit() and 0 < int(value) < ALL_PAGES:
            return int(value)
        self.fail(f"{value!r} is not a page count: use a number >= 1 or 'all'", param, ctx)


class NumaNode(click.ParamType):
    """A NUMA node number, or 'auto': the first node with memory and no CPUs."""

    name = "node"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        from gupctl import vmstat

        if value is None or isinstance(value, int):
            return value
        if str(value) == "auto":
            memory_only = [n for n in vmstat.nodes() if not vmstat.node_has_cpus(n)]
            if not memory_only:
                self.fail(
                    "'auto' needs a memory-only NUMA node and this machine has none", param, ctx
                )
            return memory_only[0]
        if str(value).isdigit() and int(value) in vmstat.nodes():
            return int(value)
        self.fail(f"{value!r} is not a NUMA node here (nodes: {vmstat.nodes()})", param, ctx)


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
        kw["memory"] = MemorySpec(
            shared=kw.pop("shared"), file=kw.pop("file"), create=kw.pop("create"),
            memfd=kw.pop("memfd"),
            hugetlb=kw.pop("hugetlb"), thp=kw.pop("thp"), prefault=kw.pop("prefault"),
            numa_node=kw.pop("numa_node"),
        )  # fmt: skip
        return f(*args, **kw)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


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
        # A FlagsError raised here is a library error: hints.py lists the valid names.
        kw["gup_flags"] = flags.parse(spec, allow_internal=force) if spec else 0
        return f(*args, **kw)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper
