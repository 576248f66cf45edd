"""The gupctl command line: parse, call one library function, render.

Library modules are imported inside the commands so that `gupctl --help`
stays fast.  Every GupctlError becomes one line on stderr (see hints.py).
"""

from __future__ import annotations

import sys

import click

from gupctl import __version__


class Group(click.Group):
    """A click group that turns library errors into one line and exit status 1,
    and SIGINT, SIGTERM and SIGHUP into an unwinding exit with the shell's
    status, 128 + the signal (click would print "Aborted!" and exit 1)."""

    def invoke(self, ctx: click.Context) -> object:
        from gupctl.cli import signals
        from gupctl.errors import GupctlError

        try:
            with signals.unwinding():
                return super().invoke(ctx)
        except GupctlError as e:
            from gupctl import render
            from gupctl.cli.hints import hint

            render.error(hint(e))
            sys.exit(1)
        except KeyboardInterrupt as e:
            sys.exit(signals.exit_status(e))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gupctl")
def main() -> None:
    """Pin pages through the kernel's gup_test, benchmark GUP, and check that pins balance."""


def _register() -> None:
    from gupctl.cli import compare, doctor, dump, info, kmod, longterm, run, selftest, vm

    for command in (info.abi, info.vmstat, run.bench, run.test, compare.compare, compare.plot,
                    doctor.doctor, dump.dump, kmod.kmod, longterm.longterm, selftest.selftest,
                    vm.vm):  # fmt: skip
        main.add_command(command)


_register()
