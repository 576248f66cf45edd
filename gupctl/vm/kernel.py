"""Finding a guest kernel: an installed Debian linux-image (vmlinuz + /lib/modules),
or one gupctl builds from kernel sources with CONFIG_GUP_TEST (gupctl/vm/build.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gupctl.errors import VmError

#: `--kernel source` or `source:PATH`: build from a kernel tarball or tree.
SOURCE = "source"
#: The kernel the VM boots when none is named: Debian's 6.12 (bookworm-security
#: and trixie), package linux-image-6.12-amd64.  Generic flavour, not cloud:
#: the cloud kernels leave out 9p, which the VM shares the host root over.
DEFAULT_SERIES = "6.12"
BOOT = Path("/boot")
MODULES = Path("/lib/modules")


@dataclass(frozen=True)
class Kernel:
    """A guest kernel: `release` is its uname -r.

    `builtin_only` marks a kernel built by gupctl/vm/build.py: all the guest
    needs is built in, and it has neither /lib/modules nor headers.
    """

    release: str
    image: Path
    builtin_only: bool = False

    @property
    def modules(self) -> Path:
        return MODULES / self.release

    @property
    def build(self) -> Path:
        """The headers (KDIR) an out-of-tree module builds against."""
        if self.builtin_only:
            # Nothing is there, on purpose: kmod.build() then stops with its
            # "no headers" error, and the kmod is not needed (--no-kmod).
            return self.image.parent / "no-headers-use-no-kmod"
        return self.modules / "build"


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", release))


def installed() -> list[Kernel]:
    """Installed generic-flavour kernels with modules, newest last."""
    found = []
    for image in BOOT.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if re.search(r"-(cloud|rt)-", release) or not (MODULES / release).is_dir():
            continue
        found.append(Kernel(release, image))
    return sorted(found, key=lambda k: _version_key(k.release))


def from_source(path: str | None = None, progress: Callable[[str], None] | None = None) -> Kernel:
    """The kernel built from the tarball or tree at `path` (default: Debian's
    linux-source-6.12): from the cache, else built now (minutes)."""
    from gupctl.vm import build  # here: build imports kmod, which imports this module

    entry = build.build(build.resolve_source(path), progress)
    return Kernel((entry / "release").read_text().strip(), entry / "bzImage", builtin_only=True)


def find(spec: str | None = None) -> Kernel:
    """A kernel by vmlinuz path, exact release, or series ('6.1', '6.12'; default 6.12),
    or built from sources: 'source' (Debian's linux-source-6.12) or 'source:PATH'."""
    spec = spec or DEFAULT_SERIES
    if spec == SOURCE or spec.startswith(SOURCE + ":"):
        return from_source(spec.partition(":")[2] or None)
    path = Path(spec)
    if path.is_file():
        release = path.name.removeprefix("vmlinuz-")
        if not (MODULES / release).is_dir():
            raise VmError(f"no /lib/modules/{release} for {path}", "kernel")
        return Kernel(release, path)
    matches = [
        k
        for k in installed()
        if k.release == spec or re.match(re.escape(spec) + r"[.-]", k.release)
    ]
    if not matches:
        raise VmError(f"no installed kernel matches {spec!r}", "kernel")
    return matches[-1]
