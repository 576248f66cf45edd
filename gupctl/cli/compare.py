"""`gupctl compare` and `gupctl plot`: working with results saved by `gupctl bench --save`."""

from __future__ import annotations

import click

from gupctl.cli.options import json_option, output_file

DEFAULT_TITLE = "GUP cost per page against pages per call"


@click.command()
@click.argument("a", metavar="A.json")
@click.argument("b", metavar="B.json")
@json_option
def compare(a: str, b: str, use_json: bool) -> None:
    """Compare saved runs B against A: median get and put µs, ratio B/A, and whether it is noise.

    Runs pair up when command, backing, size, pages per call, threads and mode
    match (repeats may differ).  A difference is beyond noise only when each
    run's median lies outside the other run's min..max samples, which needs
    -r 2 or more on both sides.  Exits 0 whatever it finds: comparing is not a test.
    """
    from gupctl import render, results

    comparison = results.compare(results.load(a), results.load(b), a, b)
    render.emit(comparison, use_json)
    rebound = sum(p.cpus_a != p.cpus_b for p in comparison.pairs)
    if rebound:
        render.warn(f"{rebound} pair(s) ran with their threads bound differently (--cpus): "
                    "under emulation binding alone can change a time twofold; rerun both "
                    "sides bound the same way")  # fmt: skip


@click.command()
@click.argument("files", metavar="FILE.json...", nargs=-1, required=True)
@click.option("-o", "--output", metavar="OUT.svg", callback=output_file,
              help="Where to write the SVG ('-': stdout).")  # fmt: skip
@click.option("--title", default=DEFAULT_TITLE, show_default=True)
@json_option
def plot(files: tuple[str, ...], output: str | None, title: str, use_json: bool) -> None:
    """Plot ns per page against pages per call (log2) from saved runs, as SVG.

    One series per file, command, backing, size, mode and threads: get as a
    solid line, put dashed; 'all' sits at the run's page count.  --json prints
    the series instead.
    """
    from gupctl import plot as plotting
    from gupctl import render, results
    from gupctl.errors import ResultsError

    if not use_json and not output:
        raise click.UsageError("-o OUT.svg is needed (or --json for the series)")
    docs = [results.load(f) for f in files]
    labelled = list(zip(plotting.labels(files), docs))
    series = plotting.series(labelled)
    if not series:
        raise ResultsError(f"{', '.join(files)}: no runs to plot", files[0], "empty")
    if use_json:
        render.emit(series, True)
        return
    plotting.write(plotting.svg(series, title, plotting.notes(labelled)), output or "-")
    if output != "-":
        render.warn(f"wrote {output}: {len(series)} series")
