"""Running `gupctl vm`'s command: one boot (with TCG's one retry), and one
benchmark across several kernels, compared and plotted."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable

import click

from gupctl.vm import Plan, VmResult
from gupctl.vm.qemu import Machine

#: The guest command around `gupctl bench ...`: its results saved where the
#: host gets them back (gupctl/vm/runner.py, $GUPCTL_VM_OUT).
SAVE = 'exec "$@" --save "$GUPCTL_VM_OUT/results.json"'


def boot(command: list[str], kernel: str | None, kmod: bool, machine: Machine,
         lockdown: str | None, timeout: float, dry_run: bool) -> VmResult | None:  # fmt: skip
    """Run `command` in a VM on `kernel`: its VmResult (None for a dry run)."""
    from gupctl import render
    from gupctl import vm as vm_mod
    from gupctl.errors import VmError

    def plan() -> Plan:
        return vm_mod.plan(command, kernel, kmod, machine=machine, lockdown=lockdown)

    p = plan()
    if dry_run:
        sys.stdout.write(shlex.join(p.argv) + "\n\n" + p.job)
        p.discard()
        return None
    if p.accel == "tcg":
        render.warn("KVM is not usable here: emulating with TCG (slower)")
    try:
        return vm_mod.execute(p, timeout)  # a signal kills QEMU: see cli/signals.py
    except VmError as e:
        # Under TCG a vCPU sometimes runs a stale translation of kernel text
        # that another vCPU patched at boot (an "Oops: int3" at a static key,
        # e.g. sched_clock_cpu() as sched_clock is marked stable).  The guest
        # dies before the job starts, so nothing of the command ran: one more
        # boot, said on stderr, with the first console log kept.
        if e.kind != "boot" or p.accel != "tcg":
            raise
        render.warn(f"{e.what} under TCG (console log: {e.log}); booting once more")
        return vm_mod.execute(plan(), timeout)


def finish(result: VmResult) -> int:
    """The exit status for `result`, its kernel problems said on stderr."""
    from gupctl import render

    for line in result.problems:
        render.error(f"guest kernel: {line}")
    if result.problems:
        render.error(f"the guest kernel reported problems; logs kept in {result.log_dir}")
        return result.status or 1
    return result.status


def check(command: tuple[str, ...], out: str) -> None:
    """Refuse, before any boot, what several kernels cannot run."""
    if len(command) < 2 or os.path.basename(command[0]) != "gupctl" or command[1] != "bench":
        raise click.UsageError("several --kernel run one benchmark on each: the command must "
                               "be `gupctl bench ...`")  # fmt: skip
    if any(a in ("--save", "--json") or a.startswith("--save=") for a in command):
        raise click.UsageError("gupctl vm saves each kernel's results itself (in --out): drop "
                               "--save and --json from the command")  # fmt: skip
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise click.UsageError(f"--out {out}: its directory {parent} does not exist")
    if os.path.exists(out) and not os.path.isdir(out):
        raise click.UsageError(f"--out {out} exists and is not a directory")


def across(kernels: tuple[str, ...], command: list[str], out: str,
           run: Callable[[str, list[str]], VmResult | None]) -> int:  # fmt: skip
    """`command` (gupctl bench) on each kernel, saved in `out`; then each
    kernel against the first (the comparison table) and all in one plot."""
    from gupctl import plot as plotting
    from gupctl import render, results
    from gupctl.cli.compare import DEFAULT_TITLE
    from gupctl.errors import VmError
    from gupctl.output import write_file

    saved: list[str] = []
    for kernel in kernels:
        result = run(kernel, ["sh", "-c", SAVE, "sh", *command])
        if result is None:
            continue  # --dry-run
        status = finish(result)
        if status:
            return status
        data = result.outputs.get("results.json")
        if data is None:
            raise VmError(f"the benchmark on {result.kernel} saved no results", "usage")
        os.makedirs(out, exist_ok=True)
        name = result.kernel if f"{result.kernel}.json" not in map(os.path.basename, saved) \
            else f"{result.kernel}-{len(saved)}"  # fmt: skip
        saved.append(os.path.join(out, f"{name}.json"))
        write_file(saved[-1], data)
    if not saved:
        return 0
    docs = [results.load(path) for path in saved]
    labelled = list(zip(plotting.labels(saved), docs))
    for label, doc in labelled[1:]:
        render.emit(results.compare(docs[0], doc, labelled[0][0], label), False)
    svg = os.path.join(out, "plot.svg")
    plotting.write(plotting.svg(plotting.series(labelled), DEFAULT_TITLE,
                                plotting.notes(labelled)), svg)  # fmt: skip
    render.warn(f"wrote {', '.join(saved)} and {svg}")
    return 0
