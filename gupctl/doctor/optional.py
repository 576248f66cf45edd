"""The rows that say how well gupctl works here: they warn, never block."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gupctl import numa
from gupctl.doctor.facts import Facts, package_fix
from gupctl.doctor.rows import OK, WARN, Check
from gupctl.vm import qemu

THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
HUGEPAGES = Path("/sys/kernel/mm/hugepages")
DEV_KVM = Path("/dev/kvm")
THP_FIX = "echo madvise | sudo tee /sys/kernel/mm/transparent_hugepage/enabled"
HUGETLB_FIX = "echo 64 | sudo tee /proc/sys/vm/nr_hugepages"
KVM_GROUP = "sudo usermod -aG kvm $USER"


def numa_row(f: Facts) -> Check:
    name = "memory-only NUMA node"
    why = ("`--numa-node auto` counts pins on it, where nothing else pins; without one "
           "`--check-balance` counts system-wide, with quiet control windows around the run, "
           "and says exact only when they were quiet")  # fmt: skip
    memory_only = numa.memory_only_nodes()
    if not memory_only:
        listed = ", ".join(map(str, numa.nodes())) or "none in sysfs"
        return Check(name, False, WARN, f"none (nodes: {listed}, all with CPUs)", None, why)
    n = memory_only[0]
    size = numa.node_mib(n)
    found = f"node {n}: no CPUs" + (f", {size} MiB" if size is not None else "")
    return Check(name, False, OK, found, None, why)


def thp_row(f: Facts) -> Check:
    why = "--thp and the selftest's THP cases need it set to always or madvise"
    try:
        text = THP_ENABLED.read_text()
    except OSError:
        return Check("THP", False, WARN, "not in this kernel", None, why)
    mode = text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()
    status, fix = (OK, None) if mode in ("always", "madvise") else (WARN, THP_FIX)
    return Check("THP", False, status, mode, fix, why)


def hugetlb_row(f: Facts) -> Check:
    why = "--hugetlb and the selftest's hugetlb cases need free huge pages"
    sizes = []
    for kb, d in sorted((int(d.name[10:-2]), d) for d in HUGEPAGES.glob("hugepages-*kB")):
        try:
            nr, free = (int((d / n).read_text()) for n in ("nr_hugepages", "free_hugepages"))
        except (OSError, ValueError):
            continue
        unit = f"{kb >> 20} GiB" if kb >= 1 << 20 else f"{kb >> 10} MiB"
        sizes.append((unit, nr, free))
    if not sizes:
        return Check("hugetlb", False, WARN, "not in this kernel", None, why)
    found = "; ".join(f"{u}: {nr} reserved, {free} free" for u, nr, free in sizes)
    status, fix = (OK, None) if any(free for _, _, free in sizes) else (WARN, HUGETLB_FIX)
    return Check("hugetlb", False, status, found, fix, why)


def qemu_row(f: Facts) -> Check:
    why = "`gupctl vm` runs any command in QEMU, on a kernel with the kmod loaded"
    path = shutil.which(qemu.QEMU)
    if path:
        return Check("QEMU", False, OK, path, None, why)
    fix = package_fix("qemu")
    return Check("QEMU", False, WARN, f"{qemu.QEMU} not installed", fix, why)


def kvm_row(f: Facts) -> Check:
    why = "without KVM `gupctl vm` emulates the CPU (TCG): it works, several times slower"
    if qemu.kvm_usable():
        return Check("KVM", False, OK, f"{DEV_KVM} usable", None, why)
    if not DEV_KVM.exists():
        return Check("KVM", False, WARN, f"no {DEV_KVM}: the VM runs under TCG", None, why)
    if not os.access(DEV_KVM, os.R_OK | os.W_OK):
        found = f"{DEV_KVM} not read-write for {f.user}: the VM runs under TCG"
        return Check("KVM", False, WARN, found, KVM_GROUP, why)
    found = "the CPU shows no vmx or svm (off, or not passed to this VM): the VM runs under TCG"
    return Check("KVM", False, WARN, found, None, why)
