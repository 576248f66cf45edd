"""`gupctl longterm start|read|stop`: PIN_LONGTERM_TEST_* pins that outlive one ioctl."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from gupctl.cli import signals
from gupctl.cli.options import Size, device_option, json_option, memory_options

_SIGNALS = set(signals.SIGNALS)  # SIGHUP too: a closed terminal ends the hold


def _pin_options(f: Any) -> Any:
    opts = [
        click.option("-s", "--size", type=Size(), default="1M", show_default=True,
                     help="Bytes to pin."),
        click.option("-w", "--write", is_flag=True,
                     help="FOLL_LONGTERM|FOLL_WRITE (default: a read-only pin)."),
        click.option("--fast", is_flag=True, help="pin_user_pages_fast() instead of "
                     "pin_user_pages()."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return memory_options(device_option(json_option(f)))


@click.group()
def longterm() -> None:
    """FOLL_LONGTERM pins held across ioctls (PIN_LONGTERM_TEST_START/READ/STOP).

    Pins die with the file they were taken on, so each command pins, uses
    and unpins within one process.
    """


@longterm.command()
@click.option("--hold", type=click.FloatRange(0), metavar="SECONDS",
              help="Unpin after this long [default: when interrupted].")  # fmt: skip
@_pin_options
def start(hold: float | None, use_json: bool, device: str | None, **kw: Any) -> None:
    """Pin, report the pins, hold them until SIGINT/SIGTERM (or --hold), then unpin."""
    from gupctl import longterm as lt
    from gupctl import render
    from gupctl.device import open_device

    def wait(pinned: lt.Pinned) -> None:
        render.warn(
            f"pinned {pinned.nr_pages} pages ({pinned.scope}: acquired +{pinned.acquired}, "
            f"outstanding +{pinned.outstanding})"
        )
        if hold is None:
            render.warn("holding the pins until interrupted (Ctrl-C or SIGTERM)")
        _wait_for_signal(hold)

    with open_device(device) as dev:
        result = lt.hold(dev, lt.LongtermSpec(**kw), wait)
    render.emit(result, use_json)


def _wait_for_signal(seconds: float | None) -> None:
    """Sleep `seconds` (None: forever), ending early on SIGINT, SIGTERM or SIGHUP.

    The signals are blocked and waited for, so either one ends the wait
    without killing the process: the pins are then released and reported.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        if seconds is None:
            signal.sigwait(_SIGNALS)
        else:
            signal.sigtimedwait(_SIGNALS, seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@longterm.command()
@_pin_options
def read(use_json: bool, device: str | None, **kw: Any) -> None:
    """Check that a longterm pin sees writes made after it (the cow.c test).

    Fills the memory, pins it (read-only unless --write), writes a new
    pattern through the mapping, reads the pinned pages back with
    PIN_LONGTERM_TEST_READ and compares; exits 1 on any mismatch.
    """
    from gupctl import longterm as lt
    from gupctl import render
    from gupctl.device import open_device

    with open_device(device) as dev:
        result = lt.read_check(dev, lt.LongtermSpec(**kw))
    render.emit(result, use_json)
    if not result.ok:
        render.error(
            f"{result.mismatched} of {result.nr_pages} pinned pages missed the later write: "
            "the kernel did not unshare them at pin time (a COW bug)"
        )
        sys.exit(1)


@longterm.command()
@device_option
def stop(device: str | None) -> None:
    """PIN_LONGTERM_TEST_STOP on a newly opened gup_test file.

    Only useful with the in-kernel gup_test of v6.2 to 6.12, whose longterm
    pins are global: it releases pins a crashed or stuck process left.  Where
    pins are per open file (gupctl's kmod, 7.3's gup_test) it says so.
    """
    from gupctl import longterm as lt
    from gupctl import render
    from gupctl.device import locate, open_device

    path = locate(device)
    if lt.per_file(path):
        render.warn(f"{path} keeps longterm pins per open file: nothing to stop here; "
                    "they go when the process holding them closes its file")  # fmt: skip
        return
    with open_device(path) as dev:
        lt.stop(dev)
