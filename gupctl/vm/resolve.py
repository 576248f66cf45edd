"""`--kernel SPEC` to a Kernel: installed here, from Debian's archive, or built.

(none)            Debian 6.12, as below
6.1, 7.3          a series: the newest installed kernel of it, else the
                  newest in Debian's archive (downloaded, not installed)
7.3.4+deb13-amd64 an exact release, the same way
/boot/vmlinuz-R   an installed image by path
source[:SERIES]   CONFIG_GUP_TEST=y built from Debian's linux-source-SERIES
                  (default 6.12), fetched from the archive if not installed;
                  the kmod builds against its tree, signed with its key
source:PATH       the same from a kernel tarball or tree
"""

from __future__ import annotations

import re
from pathlib import Path

from gupctl import release as _release
from gupctl.errors import VmError
from gupctl.vm import arch as _arch
from gupctl.vm import build, debian
from gupctl.vm.kernel import MODULES, Kernel, installed

#: The kernel the VM boots when none is named: Debian's 6.12 (bookworm-security
#: and trixie).  Generic flavour, not cloud: the cloud kernels leave out 9p,
#: which the VM shares the host root over.
DEFAULT_SERIES = "6.12"
SOURCE = "source"
_SERIES = re.compile(r"\d+\.\d+")


def find(spec: str | None = None, headers: bool = True, arch: str | None = None) -> Kernel:
    """The kernel `spec` names (see the module docstring), for `arch`
    (gupctl/vm/arch.py; None: x86_64).

    With `headers`, the kernel comes with headers the kmod can build against:
    this machine's, or a build root of the kernel's own suite (for another
    architecture, one with its cross compiler: debian.cross_buildroot()).
    """
    spec = spec or DEFAULT_SERIES
    target = _arch.get(arch)
    if target.name != _arch.DEFAULT:
        return _foreign(spec, headers, target)
    if spec == SOURCE or spec.startswith(SOURCE + ":"):
        return from_source(spec.partition(":")[2] or DEFAULT_SERIES)
    local = [k for k in installed() if _release.matches(k.release, spec)]
    if "/" in spec:
        k = _by_path(Path(spec))
    elif local:
        k = local[-1]
    else:
        if not _SERIES.match(spec):
            raise VmError(f"{spec!r} is neither a kernel series, a release nor a path", "usage")
        release = debian.resolve(spec)
        image, modules, pkg = debian.kernel_files(release)
        k = Kernel(release, image, modules, origin=f"debian {pkg.suite}")
    if headers and k.headers is None:
        root = debian.buildroot(k.release)
        k = Kernel(k.release, k.image, k.modules, MODULES / k.release / "build", root, k.origin)
    return k


def _foreign(spec: str, headers: bool, target: _arch.Arch) -> Kernel:
    """Debian's kernel of another architecture: from the archive only (this
    machine boots none of them, and gupctl builds from source for x86_64)."""
    if spec == SOURCE or spec.startswith(SOURCE + ":") or "/" in spec:
        raise VmError(f"--arch {target.name} boots Debian's kernels only: name a series "
                      "or a release", "usage")  # fmt: skip
    if not _SERIES.match(spec):
        raise VmError(f"{spec!r} is neither a kernel series nor a release", "usage")
    image, modules, pkg = debian.fetch_kernel(spec, target)
    release = modules.name
    k = Kernel(release, image, modules, origin=f"debian {pkg.suite}", arch=target.name)
    if headers:
        root = debian.cross_buildroot(release, target)
        k = Kernel(release, image, modules, MODULES / release / "build", root, k.origin,
                   target.name)  # fmt: skip
    return k


#: How a kernel image starts: the EFI stub's PE header (x86 and arm64 Debian
#: images), x86's boot protocol header at 0x202 (Documentation/arch/x86/
#: boot.rst), a gzip stream (arm64 Image.gz) or an ELF vmlinux (ppc64el).
_IMAGE_MAGIC = ((0, b"MZ"), (0x202, b"HdrS"), (0, b"\x1f\x8b"), (0, b"\x7fELF"))


def _is_kernel_image(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(0x206)
    except OSError:
        return False
    return any(head[at : at + len(magic)] == magic for at, magic in _IMAGE_MAGIC)


def _by_path(path: Path) -> Kernel:
    if not path.is_file():
        raise VmError(f"no kernel image at {path}", "kernel")
    if not _is_kernel_image(path):
        raise VmError(f"{path} is no kernel image (no EFI, x86 boot, gzip or ELF header)", "kernel")
    release = path.name.removeprefix("vmlinuz-")
    for k in installed():
        if k.release == release:
            return Kernel(k.release, path, k.modules, k.headers, origin=f"installed {path}")
    raise VmError(f"no {MODULES / release} for {path}", "kernel")


def from_source(where: str) -> Kernel:
    """CONFIG_GUP_TEST=y built from Debian's linux-source-SERIES or a PATH:
    from the cache, else built now (minutes)."""
    source = debian.source_tarball(where) if _SERIES.fullmatch(where) else None
    entry = build.build(build.resolve_source(str(source) if source else where))
    release = (entry / "release").read_text().strip()
    # Its module build tree, with the key the kmod is signed with (build.py).
    tree = entry / build.MODULE_TREE
    headers = tree if tree.is_dir() else None
    return Kernel(release, entry / "bzImage", None, headers, origin=f"source {source or where}")
