"""Building kmod/ for a guest kernel, cached by kernel and sources.

On this machine's own root when the kernel's headers are installed here;
otherwise in a chroot into the build root that carries them (a root of the
headers' own Debian suite, gupctl/vm/debian.py), with the sources
bind-mounted at /gupctl-build in a private mount namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gupctl import cache
from gupctl.errors import VmError
from gupctl.vm.debian import tool
from gupctl.vm.kernel import Kernel

#: What the build leaves beside the sources; not part of the key, not copied.
_PRODUCTS = (".o", ".ko", ".mod", ".cmd", ".symvers", ".order", ".a", ".log", ".tmp")
#: Where the build root sees the sources.
CHROOT_DIR = "/gupctl-build"


def source_dir() -> Path:
    """kmod/ of this checkout, or $GUPCTL_KMOD_DIR."""
    explicit = os.environ.get("GUPCTL_KMOD_DIR")
    path = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "kmod"
    if not (path / "Kbuild").exists():
        raise VmError(f"kmod sources not found at {path}: set GUPCTL_KMOD_DIR to a gupctl "
                      "checkout's kmod/", "usage")  # fmt: skip
    return path


def sources(src: Path) -> list[Path]:
    """The kmod's source files, relative to `src`: all but hidden files and
    what a build leaves beside them."""
    return sorted(
        p.relative_to(src)
        for p in src.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.endswith(_PRODUCTS)
        and not p.name.endswith(".mod.c")
        and p.name != "gupctl_config.h"
    )


def make_argv(kernel: Kernel, work: Path, *targets: str) -> list[str]:
    """`make` for kmod/ in `work` against `kernel`'s headers, chrooted if need be."""
    assert kernel.headers is not None
    if kernel.buildroot is None:
        return [tool("make"), "-C", str(work), f"KDIR={kernel.headers}", *targets]
    make = ["make", "-C", CHROOT_DIR, f"KDIR={kernel.headers}", *targets]
    # objtool wants /proc; the bind mount and /proc die with the namespace.
    # chroot by full path, and with a clean environment: the host's CC, ARCH
    # or MAKEFLAGS must not reach the other suite's kbuild.
    script = ('mount -t proc proc "$1/proc" && mount --bind "$2" "$1$3" && root=$1 && '
              'shift 3 && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 '
              '"$(command -v chroot || echo /usr/sbin/chroot)" "$root" "$@"')  # fmt: skip
    unshare = ["unshare", "--mount", "--propagation=private", "--fork"]
    return [*unshare, "sh", "-c", script, "sh", str(kernel.buildroot), str(work), CHROOT_DIR,
            *make]  # fmt: skip


def build(kernel: Kernel) -> Path:
    """gupctl.ko built against `kernel`'s headers; rebuilt only when sources change."""
    src = source_dir()
    if kernel.gup_test_builtin:
        raise VmError(f"kernel {kernel.release} has gup_test built in and takes no modules: "
                      "pass --no-kmod", "usage")  # fmt: skip
    if kernel.headers is None:
        raise VmError(f"no headers for {kernel.release} (Debian: linux-headers-"
                      f"{kernel.release})", "kernel")  # fmt: skip
    files = sources(src)
    key = cache.key([kernel.release, str(kernel.buildroot), *(
        part for rel in files for part in (str(rel), (src / rel).read_bytes()))])  # fmt: skip

    name = f"{kernel.release}-{key}"
    log_path = cache.cache_dir() / "kmod" / f"{name}.log"

    def make(scratch: Path) -> None:
        for rel in files:
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, scratch / rel)
        proc = subprocess.run(make_argv(kernel, scratch), capture_output=True, text=True)
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr
            log_path.write_text(output)
            raise VmError(
                f"building the kmod against {kernel.release} failed: "
                f"{first_error(output)} (build log: {log_path})",
                "build",
                output,
            )
        log_path.unlink(missing_ok=True)

    return cache.entry("kmod", name, make) / "gupctl.ko"


def first_error(output: str) -> str:
    """The line of a kbuild log that says what went wrong first."""
    for line in output.splitlines():
        if "error:" in line or line.startswith("ERROR:"):
            return line.strip()
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else "no output"
