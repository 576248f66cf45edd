"""`gupctl vm -- CMD...`: run a command inside a VM on a real kernel."""

from __future__ import annotations

import os
import sys

import click

from gupctl.cli.options import Seconds, Size


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--kernel",
    "kernels",
    metavar="SPEC",
    multiple=True,
    help="A series (6.1, 6.12, 7.3: installed here, else fetched from Debian's archive into "
    "the cache), an exact release, or a /boot/vmlinuz-* path (default: 6.12); or "
    "source[:SERIES|PATH] for CONFIG_GUP_TEST built from Debian's linux-source-SERIES "
    "(default 6.12) or a tarball or tree (minutes once, then cached; the kmod is signed "
    "with its build's key).  Twice or more, with `gupctl bench ...`: the benchmark on "
    "each kernel, then the comparison and the plot.",
)
@click.option(
    "--arch",
    type=click.Choice(["x86_64", "arm64", "arm64-16k", "ppc64el", "s390x"]),
    default="x86_64",
    show_default=True,
    help="Boot Debian's kernel for this architecture under TCG (arm64-16k: 16K pages; "
    "ppc64el: the 64K-page powerpc64le-64k flavour).  The kmod is cross-built and the "
    "guest runs a userland of that architecture assembled in the cache.",
)
@click.option(
    "--out",
    metavar="DIR",
    default="kernels",
    show_default=True,
    help="With several --kernel: where each kernel's results (RELEASE.json) and the plot "
    "(plot.svg) go.",
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
@click.option(
    "--movablecore",
    type=Size(),
    help="Boot with movablecore=SIZE: that much memory in ZONE_MOVABLE, which FOLL_LONGTERM "
    "pins must leave (the selftest's placement.* cases run where it exists).",
)
@click.option(
    "--cma",
    type=Size(),
    help="Boot with numa_cma=1:SIZE: a CMA area of that much on node 1, where the kernel "
    "then takes movable pages from first, and which FOLL_LONGTERM pins must leave (the "
    "selftest's placement.cma.* cases).  Node 1 shrinks to 2 GiB below 4 GiB, where the "
    "area must lie, and the 1 GiB huge pages go.  Needs CONFIG_DMA_NUMA_CMA (Debian's arm64).",
)
@click.option(
    "--python-image/--no-python-image",
    default=True,
    show_default=True,
    help="Put this Python's standard library and gupctl's distributions in guest memory "
    "(cached), in front of the host root that the guest reads over 9p: each Python start "
    "in the guest is then quicker.",
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
    kernels: tuple[str, ...],
    arch: str,
    out: str,
    kmod: bool,
    lockdown: str | None,
    no_memory_only_node: bool,
    movablecore: int | None,
    cma: int | None,
    python_image: bool,
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
    import dataclasses
    import logging

    from gupctl.cli import vm_run
    from gupctl.vm import qemu

    if command[0].startswith("-"):
        # ignore_unknown_options hands a misspelt option of ours to CMD:
        # `gupctl vm --cpus 2 -- true` would boot to run `--cpus 2 true`.
        raise click.UsageError(f"no such option: {command[0]}; gupctl vm's own options come "
                               "before CMD: gupctl vm [OPTIONS] -- CMD...")  # fmt: skip
    if len(kernels) > 1:
        if if_needed:
            raise click.UsageError("--if-needed runs one command here: use one --kernel")
        vm_run.check(command, out)
    elif if_needed and _have_device():
        os.execvp(command[0], list(command))
    # A kernel built from source reports its progress through logging.
    logging.basicConfig(level=logging.INFO, format="gupctl: %(message)s", stream=sys.stderr)
    machine = qemu.Machine(memory_only_node=not no_memory_only_node, python_image=python_image,
                           arch=arch)  # fmt: skip
    if movablecore is not None:
        total = machine.node0_mib + machine.node1_mib
        if movablecore % (1 << 20) or not 0 < movablecore >> 20 < total // 2:
            raise click.BadParameter(f"a whole number of MiB below half the guest's {total} "
                                     "MiB", param_hint="--movablecore")  # fmt: skip
        machine = dataclasses.replace(machine, movablecore_mib=movablecore >> 20)
    if cma is not None:
        machine = qemu.cma_shape(machine, cma)

    def run(kernel: str | None, argv: list[str]) -> vm_run.VmResult | None:
        return vm_run.boot(argv, kernel, kmod, machine, lockdown, timeout, dry_run)

    if len(kernels) > 1:
        sys.exit(vm_run.across(kernels, list(command), out, run))
    result = run(kernels[0] if kernels else None, list(command))
    sys.exit(0 if result is None else vm_run.finish(result))


def _have_device() -> bool:
    from gupctl.device import Device, locate
    from gupctl.errors import GupctlError

    try:
        Device(locate()).close()
        return True
    except GupctlError:
        return False
