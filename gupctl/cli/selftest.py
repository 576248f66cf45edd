"""`gupctl selftest`: upstream's gup selftests, as KTAP, JUnit and JSON."""

from __future__ import annotations

import sys
from typing import Any

import click

from gupctl.cli.options import NumaNode, Seconds, Size, device_option, json_option, output_file


@click.command()
@click.argument("patterns", nargs=-1)
@click.option("--list", "list_only", is_flag=True, help="Print the case names and exit.")
@click.option(
    "-s",
    "--size",
    type=Size(),
    default="128M",
    show_default=True,
    help="Memory per gup matrix case (upstream's -m).",
)
@click.option(
    "--timeout",
    type=Seconds(),
    default=120,
    show_default=True,
    help="Seconds one case may take before it is marked failed.",
)
@click.option(
    "--numa-node",
    type=NumaNode(),
    envvar="GUPCTL_NUMA_NODE",
    help="Memory-only node to run cases on, for exact pin counts.",
)
@click.option(
    "--ext4-dir",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="A directory on ext4 for the longterm file cases (default: a loop image).",
)
@click.option(
    "--exclude",
    metavar="PATTERN",
    multiple=True,
    help="Leave out the cases this pattern matches (repeatable).",
)
@click.option("--junit", "junit_path", metavar="FILE", callback=output_file,
              help="Also write JUnit XML here.")  # fmt: skip
@device_option
@json_option
def selftest(patterns: tuple[str, ...], list_only: bool, size: int, timeout: float,
             numa_node: int | None, ext4_dir: str | None, exclude: tuple[str, ...],
             junit_path: str | None, device: str | None, use_json: bool) -> None:  # fmt: skip
    """Run the gup_test, gup_longterm and cow R/O-pin cases (or those matching PATTERNS).

    Prints KTAP as cases finish; exits 0 when all pass, 1 on any failure, 4 when
    everything was skipped (kselftest's codes).
    """
    from gupctl import render
    from gupctl import selftest as st
    from gupctl.render import ktap

    cases = st.list_cases(patterns, exclude)
    if not cases:
        left_out = f" once {' '.join(exclude)} are left out" if exclude else ""
        raise click.UsageError(f"no case matches {' '.join(patterns) or '*'}{left_out} "
                               "(see --list)")  # fmt: skip
    if list_only:
        if use_json:  # each case as it is defined: name, kind and what it varies
            render.emit(cases, True)
            return
        for case in cases:
            sys.stdout.write(case.name + "\n")
        return
    total = len(cases)
    counter = iter(range(1, total + 1))

    def progress(result: Any) -> None:
        if not use_json:
            sys.stdout.write(ktap.ktap_line(next(counter), result))
            sys.stdout.flush()

    if not use_json:
        sys.stdout.write(ktap.ktap_header(total))
    report = st.selftest(patterns, device, size, numa_node, timeout, ext4_dir, progress, exclude)
    if use_json:
        render.emit(report, True)
    else:
        sys.stdout.write(ktap.ktap_totals(report))
    if junit_path:
        from gupctl.output import write_file

        write_file(junit_path, ktap.junit(report))
    sys.exit(report.exit_code)
