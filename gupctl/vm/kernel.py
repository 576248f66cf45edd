"""A guest kernel, as data: what the VM boots and what the kmod builds against.

A leaf, as drgn's vmtest.kernel is: it imports nothing else of gupctl's VM.
Where a kernel comes from (this machine's /boot, Debian's archive, a build
from source) is gupctl/vm/resolve.py's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gupctl import release as _release

BOOT = Path("/boot")
MODULES = Path("/lib/modules")


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel: `release` is its uname -r.

    `modules` holds modules.dep and the module tree, or is None for a kernel
    that has all it needs built in (and CONFIG_GUP_TEST: gupctl/vm/build.py).
    `headers` is the KDIR an out-of-tree module builds against, as a path
    inside `buildroot`: a directory to chroot into whose userland those
    headers need (Debian's headers want the compiler and glibc of their own
    suite), or None for this machine's own root.  No headers: None.
    """

    release: str
    image: Path
    modules: Path | None
    headers: Path | None = None
    buildroot: Path | None = None
    #: Where it came from, for messages: "installed", "debian <suite>", "source <path>".
    origin: str = "installed"
    #: The architecture it runs on: a name of gupctl/vm/arch.py.
    arch: str = "x86_64"

    @property
    def version(self) -> tuple[int, int, int]:
        return _release.version(self.release)

    @property
    def gup_test_builtin(self) -> bool:
        """Built by gupctl with CONFIG_GUP_TEST=y (and without modules)."""
        return self.modules is None


def installed() -> list[Kernel]:
    """This machine's generic-flavour kernels with modules (and headers where
    build_tree() finds them), newest last."""
    found = []
    for image in BOOT.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        modules = MODULES / release
        if "-cloud-" in release or "-rt-" in release or not modules.is_dir():
            continue
        found.append(Kernel(release, image, modules, build_tree(modules)))
    return sorted(found, key=lambda k: _release.sort_key(k.release))


def build_tree(modules: Path) -> Path | None:
    """/lib/modules/R/build where headers are installed.  Only where its Makefile
    is there: Debian's link outlives an uninstalled linux-headers package."""
    build = modules / "build"
    return build if (build / "Makefile").is_file() else None
