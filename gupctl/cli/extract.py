"""`gupctl extract`: GUPCTL_EXTRACT, iov_iter_extract_pages() from userspace (kmod only)."""

from __future__ import annotations

import sys
from typing import Any

import click

from gupctl.cli.options import Number, Size, device_option, json_option, memory_options

_TYPES = ("ubuf", "iovec", "bvec", "kvec", "xarray")  # gupctl.extract.ITER_TYPES, unimported


@click.command()
@click.option(
    "--type",
    "types",
    type=click.Choice(_TYPES),
    multiple=True,
    help="Iterator type; repeat for several [default: all].",
)
@click.option(
    "--direction",
    type=click.Choice(["source", "dest", "both"]),
    default="both",
    show_default=True,
    help="ITER_SOURCE (a write from the pages), ITER_DEST (a read into them), or both.",
)
@click.option(
    "-s", "--size", type=Size(), default="64K", show_default=True, help="Bytes to extract."
)
@click.option(
    "--offset",
    type=Number(0, 4095),
    default=0,
    show_default=True,
    help="Start this many bytes into the buffer's first page (UBUF, IOVEC).",
)
@click.option(
    "--segs",
    type=Number(1, 16),
    default=4,
    show_default=True,
    help="IOVEC segments (their boundaries fall inside pages).",
)
@memory_options
@device_option
@json_option
def extract(types: tuple[str, ...], direction: str, size: int, offset: int, segs: int,
            use_json: bool, device: str | None, **kw: Any) -> None:  # fmt: skip
    """GUPCTL_EXTRACT: iov_iter_extract_pages() over each iterator type, from userspace.

    For each type and direction, gupctl's kmod builds the iterator (over this
    process's buffer, or over pages of its own), extracts its pages as a
    driver doing direct I/O would, and releases them as
    iov_iter_extract_will_pin() says.  The table shows what the kernel did
    beside the v6.3 rules and the 2022 proposal; pins are checked against the
    node's counters, and the bytes against this process's buffer.  Exits 1
    if any oracle disagrees.  Needs gupctl's kmod on a v6.3+ kernel.
    """
    from gupctl import extract as ex
    from gupctl import render
    from gupctl.device import open_device

    dests = {"source": [False], "dest": [True], "both": [False, True]}[direction]
    results = []
    with open_device(device) as dev:
        for iter_type in types or _TYPES:
            for dest in dests:
                spec = ex.ExtractSpec(iter_type, dest, size, offset, segs, memory=kw["memory"])
                results.append(ex.extract(dev, spec))
    render.emit(results, use_json)
    bad = [f"{r.iter_type}/{r.direction}" for r in results if not r.ok]
    if bad:
        render.error(f"{', '.join(bad)}: the kernel's answer disagrees with an oracle "
                     "(see the table's check column)")  # fmt: skip
        sys.exit(1)
