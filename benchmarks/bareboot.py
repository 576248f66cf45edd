"""The floor under `gupctl vm -- true`: the same kernel booted bare.

The same QEMU binary, machine, CPU, memory and vCPUs as gupctl's VM (from the
architecture's record), the kernel console to a file, and an initramfs of
nothing but a static busybox whose /init powers off: no 9p, no modules, no
Python, no kmod.  What gupctl's boot-to-exit costs beyond this is gupctl's.
"""

from __future__ import annotations

from pathlib import Path

from gupctl.vm import arch as vm_arch
from gupctl.vm import initramfs, qemu, userland

INIT = b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n"


def initrd(arch_name: str, dest: Path) -> Path:
    """An initramfs at `dest` whose /init powers the machine off at once."""
    target = vm_arch.get(arch_name)
    if vm_arch.native(target):
        busybox = Path(initramfs.BUSYBOX)
    else:
        busybox = userland.busybox(userland.root(target))
    archive = initramfs.Cpio()
    for d in ("bin", "dev"):
        archive.dir(d)
    archive.chardev("dev/console", 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.file("init", INIT, 0o755)
    dest.write_bytes(archive.finish())
    return dest


def argv(image: Path, initrd_path: Path, console_log: Path, arch_name: str,
         machine: qemu.Machine | None = None) -> list[str]:  # fmt: skip
    """QEMU booting `image` with `initrd_path` on the VM's machine for `arch_name`."""
    m = machine or qemu.Machine(arch=arch_name)
    a = vm_arch.get(arch_name)
    return [qemu.binary(a.name), *qemu.accel(False, a.name), "-machine", a.machine,
            "-m", f"{m.node0_mib + m.node1_mib}M", "-smp", str(m.cpus), *qemu.HEADLESS,
            *qemu.console(console_log), "-kernel", str(image), "-initrd", str(initrd_path),
            "-append", f"console={a.console} rdinit=/init panic=-1"]  # fmt: skip
