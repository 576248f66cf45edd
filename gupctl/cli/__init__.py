"""The gupctl command line: parse, call one library function, render.

Library modules are imported inside the commands so that `gupctl --help`
stays fast.  Every GupctlError becomes one line on stderr (see hints.py).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any

import click

from gupctl import __version__

#: Every command, as gupctl.cli.MODULE:FUNCTION: a command's module (and all it
#: imports) is imported only when that command runs, or for --help's list.
COMMANDS = {
    "abi": "info:abi", "vmstat": "info:vmstat", "bench": "run:bench", "test": "run:test",
    "check": "check:check", "compare": "compare:compare", "plot": "compare:plot",
    "doctor": "doctor:doctor", "dump": "dump:dump", "extract": "extract:extract",
    "kmod": "kmod:kmod", "longterm": "longterm:longterm", "pins": "pins:pins",
    "selftest": "selftest:selftest", "vm": "vm:vm",
}  # fmt: skip


class Group(click.Group):
    """A click group that turns library errors into one line and exit status 1,
    and SIGINT, SIGTERM and SIGHUP into an unwinding exit with the shell's
    status, 128 + the signal (click would print "Aborted!" and exit 1); its
    commands load lazily (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, name = where.split(":")
        command: click.Command = getattr(importlib.import_module(f"gupctl.cli.{module}"), name)
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's main, but a usage error is one line naming --help, as every
        other error is one line (click prints usage, a blank line and the error)."""
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            status = super().main(*args, **kwargs)
            sys.stdout.flush()  # here, not at exit: a full disk must be one line too
        except OSError as e:
            if e.errno not in _OUTPUT_ERRNOS:
                raise
            _output_failed(e)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "gupctl"
            _error(f"{_from_env(e)}{e.format_message()} (see `{where} --help`)")
            sys.exit(e.exit_code)
        except click.ClickException as e:
            _error(e.format_message())
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx: click.Context) -> object:
        from gupctl.cli import signals
        from gupctl.errors import GupctlError

        try:
            with signals.unwinding():
                return super().invoke(ctx)
        except GupctlError as e:
            from gupctl.cli.hints import hint

            _error(hint(e))
            sys.exit(1)
        except KeyboardInterrupt as e:
            sys.exit(signals.exit_status(e))


def _from_env(e: click.UsageError) -> str:
    """'$VAR: ' where the bad value came from an environment variable
    (GUPCTL_NUMA_NODE for --numa-node), else ""."""
    param, ctx = getattr(e, "param", None), e.ctx
    if param is None or ctx is None or param.name is None:
        return ""
    if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.ENVIRONMENT:
        return ""
    envvar = param.envvar if isinstance(param.envvar, str) else None
    return f"${envvar}={os.environ.get(envvar, '')!r}: " if envvar else ""


#: Errors of writing stdout: a closed pipe, a full or failing disk, a closed
#: stdout (gupctl/__main__.py's ClosedStdout).
_OUTPUT_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EBADF}


def _output_failed(e: OSError) -> None:
    # Python would flush stdout again at exit and print "Exception ignored".
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if e.errno == errno.EPIPE:
        sys.exit(1)  # the reader went away (`| head`): nothing to say
    if e.errno == errno.EBADF:
        _error("cannot write the output: stdout is closed (>&-): give it a file, or >/dev/null")
        sys.exit(1)
    _error(f"cannot write the output: {os.strerror(e.errno or errno.EIO)}: "
           "free space or redirect it elsewhere")  # fmt: skip
    sys.exit(1)


def _error(message: str) -> None:
    from gupctl import render

    render.error(message)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gupctl")
def main() -> None:
    """Pin pages through the kernel's gup_test, benchmark GUP, and check that pins balance."""
