"""Finding a guest kernel: an installed Debian linux-image (vmlinuz + /lib/modules)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gupctl.errors import VmError

#: The kernel the VM boots when none is named: Debian's 6.12 (bookworm-security
#: and trixie), package linux-image-6.12-amd64.  Generic flavour, not cloud:
#: the cloud kernels leave out 9p, which the VM shares the host root over.
DEFAULT_SERIES = "6.12"
BOOT = Path("/boot")
MODULES = Path("/lib/modules")


@dataclass(frozen=True)
class Kernel:
    """An installed kernel: `release` is its uname -r."""

    release: str
    image: Path

    @property
    def modules(self) -> Path:
        return MODULES / self.release

    @property
    def build(self) -> Path:
        """The headers (KDIR) an out-of-tree module builds against."""
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


def find(spec: str | None = None) -> Kernel:
    """A kernel by vmlinuz path, exact release, or series ('6.1', '6.12'; default 6.12)."""
    spec = spec or DEFAULT_SERIES
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
