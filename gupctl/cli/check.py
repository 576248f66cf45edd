"""`gupctl check -- CMD`: the pin balance of any workload."""

from __future__ import annotations

import sys

import click

from gupctl.cli.options import NumaNode, Seconds, json_option

#: The exit status of a run gupctl cannot judge (1: a leak; 2: a usage error).
INCONCLUSIVE = 3


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--numa-node", type=NumaNode(), envvar="GUPCTL_NUMA_NODE",
              help="The memory-only node to bind CMD to and count on [default: "
              "$GUPCTL_NUMA_NODE, else the first memory-only node].")  # fmt: skip
@click.option(
    "--settle",
    type=Seconds(),
    default=10,
    show_default=True,
    help="How long to wait after CMD exits for the kernel to release its pins.",
)
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def check(numa_node: int | None, settle: float, use_json: bool, command: tuple[str, ...]) -> None:
    """Run CMD with its memory on a memory-only node; report every pin of it.

    The pins acquired and released over CMD's life, and what was outstanding
    when it exited.  Pins still outstanding once the kernel's work after the
    exit has settled are a leak: exit status 1.  Otherwise the exit status is
    CMD's.  CMD's standard output goes to gupctl's standard error.  Needs
    root and a memory-only NUMA node (gupctl's VM has one: `gupctl vm --
    gupctl check -- CMD`).  Where other processes pin memory on the node (in
    a 1 s window before CMD or after settling), or held pins there when CMD
    started, there is no verdict: exit status 3.
    """
    from gupctl import check as c
    from gupctl import numa, render, vmstat

    if numa_node is None:
        nodes = numa.memory_only_nodes()
        if not nodes:
            raise click.UsageError("this machine has no memory-only NUMA node to count CMD's "
                                   "pins on alone; run it in gupctl's VM: "
                                   "`gupctl vm -- gupctl check -- CMD`")  # fmt: skip
        numa_node = nodes[0]
    if not vmstat.can_refresh():
        raise click.UsageError("exact counts need root (/proc/sys/vm/stat_refresh folds the "
                               "per-CPU counts); run gupctl check as root")  # fmt: skip
    # CMD's stdout goes to stderr: stdout holds the report alone (--json).
    result = c.check(list(command), numa_node, settle, stdout=sys.stderr.fileno())
    if not result.exact:
        render.warn(f"node {numa_node} has CPUs: other processes' pins of memory there count "
                    "too, so the balance is not exact; a memory-only node makes it so")  # fmt: skip
    render.emit(result, use_json)
    if result.verdict == "inconclusive":
        render.error(f"no verdict on {command[0]}'s pins: {result.reason}; run it again when "
                     f"nothing else pins memory on node {numa_node}")  # fmt: skip
        sys.exit(INCONCLUSIVE)
    if result.verdict == "leak":
        waited = f"{result.settle_seconds:.1f} s"
        render.error(f"{result.outstanding} pins of {command[0]}'s memory are still "
                     f"outstanding {waited} after it exited: a leak")  # fmt: skip
        sys.exit(1)
    sys.exit(result.returncode if result.returncode >= 0 else 128 - result.returncode)
