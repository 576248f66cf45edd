"""`gupctl dump INDEX...`: DUMP_USER_PAGES_TEST, the kernel's dump_page() of chosen pages."""

from __future__ import annotations

import sys
from typing import Any

import click

from gupctl.cli.options import (
    Number,
    Size,
    device_option,
    gup_flags_option,
    json_option,
    memory_options,
)

MAX_PAGES = 8  # GUP_TEST_MAX_PAGES_TO_DUMP; abi is not imported to keep --help fast


@click.command()
@click.argument("indexes", nargs=-1, required=True, type=Number(0), metavar="INDEX...")
@click.option(
    "--pin/--get",
    default=False,
    show_default=True,
    help="pin_user_pages() (FOLL_PIN), or get_user_pages().",
)
@click.option(
    "-s",
    "--size",
    type=Size(),
    default=None,
    help="Bytes to map [default: enough for the largest INDEX, in huge pages "
    "with --hugetlb/--thp].",
)
@click.option(
    "--check-balance",
    is_flag=True,
    help="Exit 1 unless the pins acquired and released match exactly.",
)
@gup_flags_option
@memory_options
@device_option
@json_option
def dump(indexes: tuple[int, ...], size: int | None, check_balance: bool, use_json: bool,
         device: str | None, **kw: Any) -> None:  # fmt: skip
    """Dump up to 8 pages (0-based INDEX) as the kernel's dump_page() sees them.

    The kernel prints the dump to its log; gupctl reads it back from /dev/kmsg.
    """
    from gupctl import dump as dump_mod
    from gupctl import render
    from gupctl.device import open_device
    from gupctl.memory import PAGE_SIZE

    if len(indexes) > MAX_PAGES:
        raise click.UsageError(f"at most {MAX_PAGES} pages can be dumped, not {len(indexes)}")
    size = size or dump_mod.default_size(indexes, kw["memory"])
    if max(indexes) >= size // PAGE_SIZE:
        raise click.UsageError(
            f"page {max(indexes)} is beyond --size ({size // PAGE_SIZE} pages of {PAGE_SIZE})"
        )
    spec = dump_mod.DumpSpec(indexes=indexes, size=size, **kw)
    with open_device(device) as dev:
        result = dump_mod.run(dev, spec)
    render.emit(result, use_json)
    if result.missing:
        render.warn(f"no dump of page(s) {result.missing} in the kernel log (rate-limited?)")
    if result.balance.scope == "system":
        render.warn("pin balance measured system-wide: --numa-node N makes it exact")
    if check_balance and not result.balance.exact:
        render.error("pin balance mismatch (see the balance table)")
        sys.exit(1)
