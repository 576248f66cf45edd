"""The QEMU command line, as data: one commented group per concern."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gupctl.errors import VmError
from gupctl.vm import arch as _arch

#: The x86_64 QEMU (`gupctl doctor` looks for it): others in gupctl/vm/arch.py.
QEMU = _arch.ARCHES[_arch.DEFAULT].qemu


@dataclass(frozen=True)
class Machine:
    """The guest's shape.  Node 1 has memory and no CPUs, so that nothing but
    memory bound there with mbind() lands on it: its nr_foll_pin_* counters
    then move by exactly the pins a test takes (see gupctl/vmstat.py).

    Without `memory_only_node` each node gets half the CPUs, as on most real
    machines: gupctl then reads the counters system-wide, between control
    windows (tests/kernel/test_balance_windows.py)."""

    cpus: int = 2
    memory_only_node: bool = True
    node0_mib: int = 2048
    # Room for cow.c's two 1 GiB huge pages (one mapped, one for its COW
    # copy) and a 1 GiB buffer that the pin is read into, beside the rest.
    node1_mib: int = 4096
    # Huge pages reserved at boot: 2 MiB ones spread over both nodes, for
    # hugetlb cases of 128 MiB on node 1 (the selftest grows node 1's pool to
    # what its gup matrix maps); 1 GiB ones on node 1, where the cases are
    # bound (`hugepages=NODE:COUNT`, in 6.1 on), reserved while memory is not yet
    # fragmented: cow.c needs two at once.
    hugepages_2m: int = 128
    hugepages_1g: int = 2
    # movablecore= (Documentation/admin-guide/kernel-parameters.txt): this
    # much memory in ZONE_MOVABLE, spread over the nodes; 0: none.
    movablecore_mib: int = 0
    # numa_cma=1:SIZE (kernel/dma/contiguous.c, v6.6): a CMA area of this
    # much on node 1; 0: the kernel's default.  Over half the node's memory,
    # the allocator takes node 1's movable pages from CMA first (__rmqueue()).
    cma_mib: int = 0
    # The host's Python files in guest memory, over the host root
    # (gupctl/vm/pyimage.py): Python starts without a 9p round trip per file.
    python_image: bool = True
    #: The architecture (gupctl/vm/arch.py): its QEMU, machine and console.
    arch: str = _arch.DEFAULT

    @property
    def numa_node(self) -> int | None:
        """The memory-only node a guest command counts its pins on, or None."""
        return 1 if self.memory_only_node and _arch.get(self.arch).numa else None


#: The guest's shape for --cma: a DMA CMA area must lie below the DMA limit
#: (arm64: 4 GiB, the end of ZONE_DMA; kernel/dma/contiguous.c), and arm64's
#: virt machine puts RAM from 1 GiB on, node by node: 1 GiB for node 0, then
#: 2 GiB for node 1, all of it below 4 GiB and so all one zone, whose free
#: pages are then mostly CMA.
CMA_NODE0_MIB, CMA_NODE1_MIB = 1024, 2048


def cma_shape(machine: Machine, size: int) -> Machine:
    """`machine` with a CMA area of `size` bytes on node 1 (numa_cma=1:SIZE);
    VmError for a size the shape cannot hold."""
    mib = size >> 20
    if size % (1 << 20) or not 0 < mib < CMA_NODE1_MIB:
        raise VmError(f"--cma {size / (1 << 20):g} MiB: give a whole number of MiB below node "
                      f"1's {CMA_NODE1_MIB} MiB", "usage")  # fmt: skip
    return dataclasses.replace(machine, cma_mib=mib, node0_mib=CMA_NODE0_MIB,
                               node1_mib=CMA_NODE1_MIB, hugepages_1g=0)  # fmt: skip


def _numa(machine: Machine) -> list[str]:
    """NUMA: node 0 has the CPUs, node 1 only memory (see Machine); or each
    has half of them."""
    return ["-smp", _smp(machine),
            "-object", f"memory-backend-ram,id=mem0,size={machine.node0_mib}M",
            "-numa", f"node,nodeid=0,cpus={_cpus(machine, 0)},memdev=mem0",
            "-object", f"memory-backend-ram,id=mem1,size={machine.node1_mib}M",
            "-numa", f"node,nodeid=1,{_cpus(machine, 1, 'cpus={},')}memdev=mem1"]  # fmt: skip


def _smp(machine: Machine) -> str:
    return str(machine.cpus) if machine.memory_only_node else f"{machine.cpus},sockets=2"


def _cpus(machine: Machine, node: int, form: str = "{}") -> str:
    """Node `node`'s CPUs as QEMU's -numa takes them, in `form` ('' for none)."""
    if machine.memory_only_node:
        first, last = (0, machine.cpus - 1) if node == 0 else (0, -1)
    else:
        if machine.cpus < 2:
            raise VmError("a machine without a memory-only node needs 2 CPUs or more", "usage")
        half = machine.cpus // 2
        first, last = (0, half - 1) if node == 0 else (half, machine.cpus - 1)
    if last < first:
        return ""
    return form.format(first if first == last else f"{first}-{last}")


def kvm_usable() -> bool:
    """KVM only when /dev/kvm is read-write and the CPU has vmx/svm.

    Where /dev/kvm exists without them (nested virtualisation modules such as
    kvm_pvm), guests hang instead of failing, so TCG it is.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE) is not None


# Groups of the argv that gupctl's VM and the whole-system VM (system_run.py) share.

#: No display, no network, no reboot: a panic (panic=-1) ends QEMU.
HEADLESS = ["-display", "none", "-vga", "none", "-nodefaults", "-nic", "none", "-no-reboot"]


def binary(arch: str | None = None) -> str:
    """The QEMU executable for `arch` (None: x86_64)."""
    a = _arch.get(arch)
    qemu = shutil.which(a.qemu)
    if qemu is None:
        raise VmError(f"{a.qemu} is not installed (Debian: {a.qemu_package})", "tool")
    return qemu


def accel(kvm: bool, arch: str | None = None) -> list[str]:
    """KVM when it really works (kvm_usable(), and only for this machine's
    own architecture), else multi-threaded TCG with the architecture's CPU."""
    a = _arch.get(arch)
    if kvm and _arch.native(a):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg", "-cpu", a.cpu]


def console(log: Path) -> list[str]:
    """The kernel console on the serial port, kept in the file `log`."""
    return ["-chardev", f"file,id=console,path={log}", "-serial", "chardev:console"]


def run_share(run_dir: Path, bus: str = "pci") -> list[str]:
    """The run directory, writable, over 9p with the tag the guest mounts."""
    return ["-fsdev", f"local,id=run,path={run_dir},security_model=none",
            "-device", f"virtio-9p-{bus},fsdev=run,mount_tag=gupctl_run"]  # fmt: skip


def argv(
    kernel_image: Path,
    initrd: Path,
    run_dir: Path,
    cmdline: str,
    console_log: Path,
    out_fd: int,
    err_fd: int,
    machine: Machine = Machine(),
    kvm: bool = False,
    userland: Path | None = None,
) -> list[str]:
    """The full QEMU argv for one run.  `userland`: another architecture's
    root, shared read-only beside the host's (an overlay cannot take a lower
    layer inside another)."""
    mem = machine.node0_mib + machine.node1_mib
    a = _arch.get(machine.arch)
    return [
        binary(a.name),
        *accel(kvm, a.name),
        # Without a memory-only node, one socket per node: x86 warns about a
        # package whose cores sit on two nodes (topology_sane()).
        "-machine", a.machine, "-m", f"{mem}M",
        *(_numa(machine) if a.numa else ["-smp", str(machine.cpus)]),
        *HEADLESS,
        *console(console_log),
        # hvc0/hvc1: the guest command's stdout and stderr, over sockets the
        # caller relays (a file chardev reopening our stdout would not share
        # its offset, and QEMU refuses fds 0-2 in -add-fd).
        "-device", f"virtio-serial-{a.bus}",
        "-chardev", f"socket,id=out,fd={out_fd}", "-device", "virtconsole,chardev=out",
        "-chardev", f"socket,id=err,fd={err_fd}", "-device", "virtconsole,chardev=err",
        # The host root, read-only, and the run directory, writable.
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", f"virtio-9p-{a.bus},fsdev=hostroot,mount_tag=hostroot",
        *run_share(run_dir, a.bus),
        *([] if userland is None else [
            "-fsdev", f"local,id=userland,path={userland},security_model=none,readonly=on",
            "-device", f"virtio-9p-{a.bus},fsdev=userland,mount_tag=userland"]),
        # The kernel, our initramfs, and its command line.
        "-kernel", str(kernel_image), "-initrd", str(initrd), "-append", cmdline,
    ]  # fmt: skip


def hugepages(machine: Machine) -> list[str]:
    """hugepagesz= and hugepages= for the architecture's sizes: its first
    (the PMD size) gets as many MiB as Machine.hugepages_2m's 2 MiB pages
    make, spread over the nodes; a 1G size, Machine.hugepages_1g on node 1.
    Nothing where the machine can map no huge pages (Arch.huge)."""
    sizes = _arch.get(machine.arch).hugepage_sizes
    if not sizes:
        return []
    first = _mib(sizes[0])
    parts = [f"hugepagesz={sizes[0]} hugepages={max(1, machine.hugepages_2m * 2 // first)}"]
    if "1G" in sizes and machine.hugepages_1g and _arch.get(machine.arch).numa:
        parts.append(f"hugepagesz=1G hugepages=1:{machine.hugepages_1g}")
    return parts


def _mib(size: str) -> int:
    """A hugepagesz= size ("2M", "1G") in MiB."""
    return int(size[:-1]) << (10 if size.endswith("G") else 0)


def cmdline(
    run_dir: Path,
    kmod: bool,
    machine: Machine = Machine(),
    tty: bool = False,
    modules: Path | None = None,
    lockdown: str | None = None,
    userland: bool = False,
) -> str:
    """The guest kernel command line.  `userland`: another architecture's
    root is shared (argv()), to lay over the host's (gupctl/vm/userland.py).
    `modules`: a module tree the guest
    should see as its /lib/modules/$(uname -r) (a kernel from the cache).
    `lockdown`: "integrity" or "confidentiality", the lockdown LSM's level
    from boot on (security/lockdown/lockdown.c)."""
    a = _arch.get(machine.arch)
    parts = [
        f"console={a.console}", "rdinit=/init",
        # Any oops or panic ends the VM at once instead of hanging it.
        "panic=-1", "oops=panic",
        *hugepages(machine),
        f"gupctl_run={run_dir}",
    ]  # fmt: skip
    if a.first_hvc:
        parts.append(f"gupctl_hvc={a.first_hvc}")
    if kmod:
        parts.append("gupctl_kmod=1")
    if tty:
        parts.append("gupctl_tty=1")
    if modules is not None:
        parts.append(f"gupctl_modules={modules}")
    if lockdown is not None:
        parts.append(f"lockdown={lockdown}")
    if userland:
        parts.append("gupctl_userland=1")
    if machine.movablecore_mib:
        parts.append(f"movablecore={machine.movablecore_mib}M")
    if machine.cma_mib:
        parts.append(f"numa_cma=1:{machine.cma_mib}M")
    return " ".join(parts)
