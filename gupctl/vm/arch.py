"""The architectures gupctl's VM boots, as data: one record each.

As tuxrun's and virtme-ng's per-architecture tables do, each record holds
what differs: Debian's names (its dpkg architecture, its kernel flavour),
QEMU's (the binary and its package, the machine, the console), the kernel's
(kbuild's ARCH, the cross compiler's triplet) and what the guest's shape can
be on that machine.  Nothing here states a page size as a fact gupctl counts
with: that is the running kernel's (getpagesize(), the THP and hugetlb sizes
it lists).  `page_kib` names the flavour, and tells arm64's two apart.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from gupctl.errors import VmError


@dataclass(frozen=True)
class Arch:
    """One architecture (and page size) gupctl's VM can boot."""

    #: gupctl's name for it: `gupctl vm --arch NAME`.
    name: str
    #: Debian's architecture (dpkg --print-architecture) and kernel flavour
    #: (linux-image-RELEASE ends with it).
    dpkg: str
    flavour: str
    #: The QEMU binary, the Debian package that has it, its machine and its
    #: CPU under TCG.
    qemu: str
    qemu_package: str
    machine: str
    cpu: str
    #: The kernel console's device.
    console: str
    #: How virtio devices attach: "pci", or "ccw" on s390x (channel I/O).
    bus: str
    #: kbuild's ARCH= and the GNU triplet (CROSS_COMPILE=TRIPLET-, the
    #: multiarch directory, Debian's gcc-TRIPLET).
    kbuild: str
    triplet: str
    #: uname -m in the guest.
    machine_name: str
    #: The flavour's base page size, for people and for sizing the pools.
    page_kib: int
    #: Huge page sizes to reserve at boot, as the kernel's hugepagesz= takes
    #: them (arch/*/mm/hugetlbpage.c: each architecture has its own); none
    #: where the machine maps no huge pages at all.
    hugepage_sizes: tuple[str, ...]
    #: The first hvc device the virtio consoles get: pseries' own console is
    #: hvc0 (hvc_vio), so theirs start at hvc1.
    first_hvc: int = 0
    #: Whether QEMU's machine takes -numa: s390-ccw-virtio does not, so its
    #: guest has one node, and gupctl counts pins between control windows.
    numa: bool = True

    @property
    def huge(self) -> bool:
        """Whether the guest's CPU lets Linux map huge pages (hugetlb, THP):
        where it does, the record names sizes to reserve."""
        return bool(self.hugepage_sizes)


ARCHES = {
    a.name: a
    for a in (
        Arch("x86_64", "amd64", "amd64", "qemu-system-x86_64", "qemu-system-x86", "q35", "max",
             "ttyS0", "pci", "x86", "x86_64-linux-gnu", "x86_64", 4,
             ("2M", "1G")),
        # pauth-impdef: QEMU's own pointer authentication algorithm, far
        # cheaper under TCG than the architected QARMA5.
        Arch("arm64", "arm64", "arm64", "qemu-system-aarch64", "qemu-system-arm",
             "virt,gic-version=3", "max,pauth-impdef=on", "ttyAMA0",
             "pci", "arm64", "aarch64-linux-gnu", "aarch64", 4, ("2M", "1G")),
        # 16K granule: PMD 32M, contiguous PTEs 2M (arch/arm64/mm/hugetlbpage.c).
        Arch("arm64-16k", "arm64", "arm64-16k", "qemu-system-aarch64", "qemu-system-arm",
             "virt,gic-version=3", "max,pauth-impdef=on", "ttyAMA0",
             "pci", "arm64", "aarch64-linux-gnu", "aarch64", 16, ("32M", "2M")),
        Arch("ppc64el", "ppc64el", "powerpc64le-64k", "qemu-system-ppc64", "qemu-system-ppc",
             "pseries,cap-ccf-assist=off,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken",
             "power10", "hvc0", "pci", "powerpc",
             "powerpc64le-linux-gnu", "ppc64le", 64, ("2M",), first_hvc=1),
        # No huge pages: s390x maps hugetlb and THP only with the EDAT-1
        # facility (MACHINE_HAS_EDAT1), which QEMU 7.2's TCG cannot offer
        # ("not available in the configuration: edat").
        Arch("s390x", "s390x", "s390x", "qemu-system-s390x", "qemu-system-misc",
             "s390-ccw-virtio", "max", "ttysclp0", "ccw", "s390",
             "s390x-linux-gnu", "s390x", 4, (), numa=False),
    )
}  # fmt: skip
#: The architecture `gupctl vm` boots when none is named.
DEFAULT = "x86_64"


def get(name: str | None) -> Arch:
    """The record for `name` (None: the default); VmError naming the choices."""
    try:
        return ARCHES[name or DEFAULT]
    except KeyError:
        raise VmError(f"gupctl's VM knows no architecture {name!r}: use one of "
                      f"{', '.join(ARCHES)}", "usage") from None  # fmt: skip


def running() -> Arch:
    """The record of the machine this runs on: its uname -m and page size
    (arm64 and arm64-16k differ in the page size alone)."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    for a in ARCHES.values():
        if a.machine_name == platform.machine() and a.page_kib == page_kib:
            return a
    raise VmError(f"gupctl's VM has no record of this machine ({platform.machine()}, "
                  f"{page_kib}K pages)", "usage")  # fmt: skip


def native(arch: Arch) -> bool:
    """Whether `arch`'s binaries run on this machine (its userland is the host's)."""
    return arch.machine_name == platform.machine()
