"""Building kmod/ for a guest kernel, cached by kernel and sources.

On this machine's own root when the kernel's headers are installed here;
otherwise in a chroot into the build root that carries them (a root of the
headers' own Debian suite, gupctl/vm/debian.py), with the sources
bind-mounted at /gupctl-build in a private mount namespace.

A kernel gupctl built from source (gupctl/vm/build.py) has a module build
tree with the signing key its build generated: gupctl.ko is signed with it,
so that the kernel loads it under lockdown (`gupctl vm --lockdown`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gupctl import cache
from gupctl.errors import EnvError, VmError
from gupctl.vm import arch as _arch
from gupctl.vm import resolve
from gupctl.vm.build import SIGNING_CERT, SIGNING_KEY, compiler_version
from gupctl.vm.debian import tool
from gupctl.vm.kernel import Kernel

#: What the build leaves beside the sources; not part of the key, not copied.
_PRODUCTS = (".o", ".ko", ".mod", ".cmd", ".symvers", ".order", ".a", ".log", ".tmp")
#: Where the build root sees the sources.
CHROOT_DIR = "/gupctl-build"


def source_dir() -> Path:
    """The kmod's sources: $GUPCTL_KMOD_DIR, else this checkout's kmod/, else
    the copy an installed wheel carries (setup.py puts it in gupctl/kmod-src)."""
    explicit = os.environ.get("GUPCTL_KMOD_DIR")
    if explicit and not (Path(explicit) / "Kbuild").exists():
        raise EnvError("GUPCTL_KMOD_DIR", explicit, "holds no kmod sources (no Kbuild)", "kmod_dir")
    package = Path(__file__).resolve().parents[1]
    tried = [Path(explicit)] if explicit else [package.parent / "kmod", package / "kmod-src"]
    for path in tried:
        if (path / "Kbuild").exists():
            return path
    raise VmError(f"the kmod's sources are not at {tried[0]}: point GUPCTL_KMOD_DIR at a "
                  "gupctl checkout's kmod/, or reinstall gupctl", "usage")  # fmt: skip


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
    """`make` for kmod/ in `work` against `kernel`'s headers, chrooted if need
    be, and cross-compiling for a kernel of another architecture."""
    assert kernel.headers is not None
    target = _arch.get(kernel.arch)
    if not _arch.native(target):
        targets = (f"ARCH={target.kbuild}", f"CROSS_COMPILE={target.triplet}-", *targets)
    if kernel.buildroot is None:
        return [tool("make"), "-C", str(work), f"KDIR={kernel.headers}", *targets]
    make = ["make", "-C", CHROOT_DIR, f"KDIR={kernel.headers}", *targets]
    return in_root(kernel.buildroot, [(work, CHROOT_DIR)], make)


def in_root(root: Path, binds: list[tuple[Path, str]], argv: list[str]) -> list[str]:
    """`argv` run chrooted into `root`, with each (host path, path inside)
    of `binds` bind-mounted, in a mount namespace of its own."""
    # objtool wants /proc; the bind mounts and /proc die with the namespace.
    # chroot by full path, and with a clean environment: the host's CC, ARCH
    # or MAKEFLAGS must not reach the other suite's kbuild.
    mounts = "".join(f'mount --bind {shlex.quote(str(host))} "$1"{shlex.quote(inside)} && '
                     for host, inside in binds)  # fmt: skip
    script = (f'mount -t proc proc "$1/proc" && {mounts}root=$1 && shift && '
              'exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 '
              '"$(command -v chroot || echo /usr/sbin/chroot)" "$root" "$@"')  # fmt: skip
    unshare = ["unshare", "--mount", "--propagation=private", "--fork"]
    return [*unshare, "sh", "-c", script, "sh", str(root), *argv]


@dataclass(frozen=True)
class UserCompiler:
    """gcc for `arch`'s userspace programs (upstream's selftests, the
    benchmarks' C): the host's for its own machine, else the cross compiler
    in the root that cross-builds the kmod."""

    cc: str  # the command, as argv[0]
    identity: str  # what a cache key needs of it: its version, or the root's path
    root: Path | None  # the cross root; None: natively

    def argv(self, argv: list[str], work: Path) -> list[str]:
        """`argv`, whose files are all under `work`, as it runs: natively, or
        chrooted into the cross root with `work` at CHROOT_DIR."""
        if self.root is None:
            return argv
        inside = [a.replace(str(work), CHROOT_DIR) for a in argv]
        return in_root(self.root, [(work, CHROOT_DIR)], inside)


def user_compiler(arch_name: str, series: str) -> UserCompiler:
    """The UserCompiler for `arch_name`, with the cross root of `series`'
    kernel headers (resolve.find) where the machine is not this one."""
    target = _arch.get(arch_name)
    if _arch.native(target):
        return UserCompiler("gcc", compiler_version(), None)
    root = resolve.find(series, arch=target.name).buildroot
    assert root is not None  # find() with headers gives a cross root
    return UserCompiler(f"{target.triplet}-gcc", str(root), root)


def signing_key(kernel: Kernel) -> tuple[Path, Path] | None:
    """The (key, certificate) `kernel`'s modules are signed with, where gupctl
    has them: a kernel it built from source.  Debian keeps its key to itself."""
    if kernel.headers is None or kernel.buildroot is not None:
        return None
    key, cert = kernel.headers / SIGNING_KEY, kernel.headers / SIGNING_CERT
    return (key, cert) if key.is_file() and cert.is_file() else None


def sign(kernel: Kernel, module: Path) -> None:
    """Append `kernel`'s signature to `module`, as kbuild's cmd_sign does
    (scripts/Makefile.modinst).  Not through `make modules_install`: that
    signs only into a module tree, and for an out-of-tree module it ignores a
    failure to sign (`|| true`), which here must stop the build."""
    keys = signing_key(kernel)
    assert keys is not None and kernel.headers is not None
    config = (kernel.headers / ".config").read_text()
    algo = re.search(r'^CONFIG_MODULE_SIG_HASH="(\w+)"', config, re.MULTILINE)
    if algo is None:
        raise VmError(f"{kernel.headers}/.config names no CONFIG_MODULE_SIG_HASH", "build")
    argv = [str(kernel.headers / "scripts" / "sign-file"), algo.group(1), *map(str, keys),
            str(module)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VmError(f"signing {module.name} for {kernel.release} failed: "
                      f"{first_error(proc.stderr)}", "build", proc.stderr)  # fmt: skip


def build(kernel: Kernel) -> Path:
    """gupctl.ko built against `kernel`'s headers (and signed with its key where
    gupctl has it: signing_key()); rebuilt only when sources or the kernel change."""
    src = source_dir()
    if kernel.headers is None:
        if kernel.gup_test_builtin:
            raise VmError(f"kernel {kernel.release} was built without a module build tree "
                          "(its source has no scripts/package/install-extmod-build): "
                          "pass --no-kmod", "usage")  # fmt: skip
        raise VmError(f"no headers for {kernel.release} (Debian: linux-headers-"
                      f"{kernel.release})", "kernel")  # fmt: skip
    files = sources(src)
    keys = signing_key(kernel)
    # A kernel built from source keeps its release across rebuilds, and each
    # build makes a new signing key: its tree's path and its certificate say
    # which kernel this is.
    kernel_id: list[str | bytes] = [kernel.release, str(kernel.buildroot), str(kernel.headers)]
    if keys is not None:
        kernel_id.append(keys[1].read_bytes())
    key = cache.key([*kernel_id, *(
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
        if keys is not None:
            sign(kernel, scratch / "gupctl.ko")
        log_path.unlink(missing_ok=True)

    return cache.entry("kmod", name, make) / "gupctl.ko"


def first_error(output: str) -> str:
    """The line of a kbuild log that says what went wrong first."""
    for line in output.splitlines():
        if "error:" in line or line.startswith("ERROR:"):
            return line.strip()
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else "no output"
