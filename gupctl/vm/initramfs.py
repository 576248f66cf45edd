"""The guest's initramfs: busybox, the init script, and the modules it loads.

Written as a newc cpio in Python (no cpio or root needed); kernel modules are
decompressed here because busybox insmod does not read .ko.xz.
"""

from __future__ import annotations

import gzip
import lzma
from importlib import resources
from pathlib import Path

from gupctl.errors import VmError
from gupctl.vm.kernel import Kernel

#: What the init script needs before it can reach the host: virtio PCI and
#: console (modules on Debian 6.1, built in on 6.12), 9p over virtio, overlayfs.
GUEST_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay")
BUSYBOX = "/bin/busybox"


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(relpath: str) -> str:
    return _norm(Path(relpath).name.split(".ko")[0])


def _lines(path: Path) -> list[str]:
    # Either file may be absent: a kernel with everything built in has no
    # modules.dep entries to offer, only modules.builtin.
    return path.read_text().splitlines() if path.exists() else []


def module_closure(kernel: Kernel, wanted: tuple[str, ...] = GUEST_MODULES) -> list[str]:
    """Module files (relative to /lib/modules/R) to insmod, dependencies first.

    Modules built into the kernel (modules.builtin) are left out, and a kernel
    gupctl built from source (no modules) needs none at all.
    """
    if kernel.modules is None:
        return []
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in _lines(kernel.modules / "modules.dep"):
        path, _, rest = line.partition(":")
        deps[_module_name(path)] = (path, rest.split())
    builtin = {_module_name(p) for p in _lines(kernel.modules / "modules.builtin")}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in builtin or any(_module_name(p) == name for p in order):
            return
        if name not in deps:
            raise VmError(f"kernel {kernel.release} has no module {name}", "kernel")
        path, needs = deps[name]
        for dep in reversed(needs):  # modules.dep lists the deepest dependency last
            visit(_module_name(dep))
        order.append(path)

    for name in wanted:
        visit(_norm(name))
    return order


def _decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        raise VmError(f"{path}: zstd-compressed modules are not supported yet", "kernel")
    return data


class Cpio:
    """A minimal newc writer: directories, regular files, device nodes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               mtime: int = 0) -> None:  # fmt: skip
        fields = (self.ino, mode, 0, 0, 1, mtime, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0)  # fmt: skip
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        self.parts += [header, b"\0" * (-len(header) % 4), data, b"\0" * (-len(data) % 4)]

    def dir(self, name: str, mtime: int = 0) -> None:
        self._entry(name, 0o040755, mtime=mtime)

    def file(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        """A regular file; `mtime` is kept (init/initramfs.c sets it on unpacking)."""
        self._entry(name, 0o100000 | mode, data, mtime=mtime)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def build(kernel: Kernel, dest: Path, busybox: Path = Path(BUSYBOX)) -> Path:
    """Write the initramfs for `kernel` to `dest` (a .cpio.gz) and return it.
    `busybox`: a static busybox for the kernel's architecture."""
    if not busybox.exists():
        raise VmError(f"no busybox at {busybox} (Debian: busybox-static)", "tool")
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "host", "lib", "lib/modules"):
        archive.dir(d)
    archive.chardev("dev/console", 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    init = resources.files("gupctl.vm").joinpath("guest-init.sh").read_bytes()
    archive.file("init", init, 0o755)
    names = []
    for rel in module_closure(kernel):
        assert kernel.modules is not None  # module_closure() is empty otherwise
        name = Path(rel).name.split(".ko")[0] + ".ko"
        archive.file(f"lib/modules/{name}", _decompressed(kernel.modules / rel))
        names.append(name)
    # One name a line, and no line at all when every module is built in:
    # guest-init.sh would insmod an empty name.
    archive.file("modules.list", "".join(f"{n}\n" for n in names).encode())
    dest.write_bytes(gzip.compress(archive.finish(), compresslevel=1))
    return dest
