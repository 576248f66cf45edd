"""`gupctl vm -- CMD...`: run a command inside a VM on a real kernel."""

from __future__ import annotations

import logging
import os
import shlex
import sys

import click

from gupctl.cli.options import Seconds


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--kernel",
    metavar="SPEC",
    help="A series (6.1, 6.12, 7.3: installed here, else fetched from Debian's archive into "
    "the cache), an exact release, or a /boot/vmlinuz-* path (default: 6.12); or "
    "source[:SERIES|PATH] for CONFIG_GUP_TEST built from Debian's linux-source-SERIES "
    "(default 6.12) or a tarball or tree (minutes once, then cached; the kmod is signed "
    "with its build's key).",
)
@click.option(
    "--kmod/--no-kmod",
    default=True,
    show_default=True,
    help="Build kmod/ for the kernel and load it in the guest.",
)
@click.option(
    "--lockdown",
    type=click.Choice(["integrity", "confidentiality"]),
    help="Boot with lockdown=LEVEL: debugfs's gup_test refuses (EPERM), modules must be "
    "signed; with the kmod, needs a kernel built from source (its key signs the kmod).",
)
@click.option(
    "--no-memory-only-node",
    "no_memory_only_node",
    is_flag=True,
    help="Give both NUMA nodes CPUs, as on most real machines: no memory-only node, no "
    "GUPCTL_NUMA_NODE, pins counted system-wide between control windows.",
)
@click.option("--timeout", type=Seconds(), default=1800, show_default=True, help="Seconds.")
@click.option(
    "--if-needed",
    is_flag=True,
    help="Run CMD right here when this machine already has a gup_test device.",
)
@click.option("--dry-run", is_flag=True, help="Print the QEMU argv and the job; boot nothing.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def vm(
    kernel: str | None,
    kmod: bool,
    lockdown: str | None,
    no_memory_only_node: bool,
    timeout: float,
    if_needed: bool,
    dry_run: bool,
    command: tuple[str, ...],
) -> None:
    """Boot KERNEL under QEMU, run COMMAND inside, and exit with its status.

    Fails when the guest kernel reports an oops, BUG, WARN or panic.  Under
    TCG, a kernel that dies while booting, before the command starts, is
    booted once more.
    """
    from gupctl import render
    from gupctl import vm as vm_mod
    from gupctl.errors import VmError
    from gupctl.vm import qemu

    if if_needed and _have_device():
        os.execvp(command[0], list(command))
    # A kernel built from source reports its progress through logging.
    logging.basicConfig(level=logging.INFO, format="gupctl: %(message)s", stream=sys.stderr)
    machine = qemu.Machine(memory_only_node=not no_memory_only_node)

    def plan() -> vm_mod.Plan:
        return vm_mod.plan(list(command), kernel, kmod, machine=machine, lockdown=lockdown)

    p = plan()
    if dry_run:
        sys.stdout.write(shlex.join(p.argv) + "\n\n" + p.job)
        p.discard()
        return
    if p.accel == "tcg":
        render.warn("KVM is not usable here: emulating with TCG (slower)")
    try:
        result = vm_mod.execute(p, timeout)  # a signal kills QEMU: see cli/signals.py
    except VmError as e:
        # Under TCG a vCPU sometimes runs a stale translation of kernel text
        # that another vCPU patched at boot (an "Oops: int3" at a static key,
        # e.g. sched_clock_cpu() as sched_clock is marked stable).  The guest
        # dies before the job starts, so nothing of the command ran: one more
        # boot, said on stderr, with the first console log kept.
        if e.kind != "boot" or p.accel != "tcg":
            raise
        render.warn(f"{e.what} under TCG (console log: {e.log}); booting once more")
        result = vm_mod.execute(plan(), timeout)
    for line in result.problems:
        render.error(f"guest kernel: {line}")
    if result.problems:
        render.error(f"the guest kernel reported problems; logs kept in {result.log_dir}")
        sys.exit(result.status or 1)
    sys.exit(result.status)


def _have_device() -> bool:
    from gupctl.device import Device, locate
    from gupctl.errors import GupctlError

    try:
        Device(locate()).close()
        return True
    except GupctlError:
        return False
