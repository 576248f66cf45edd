"""The kmod on this machine: its state, DKMS install, loading, and who may open it.

`gupctl kmod` is a thin layer over this.  Installing goes through DKMS (as
v4l2loopback's packaging does), so the module is rebuilt for every kernel
the machine later installs; DKMS signs it with its MOK key where the kernel
checks signatures.  /dev/gup_test stays root-only (the kmod's misc device is
0600) until the administrator names users: then a udev rule gives the
`gupctl` group read-write access, and the kmod charges those users' longterm
pins to RLIMIT_MEMLOCK as RDMA and vfio do.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gupctl import lockdown
from gupctl.errors import ModuleError

NAME = "gupctl"
GROUP = "gupctl"
DEVICE = Path("/dev/gup_test")
SYS_MODULE = Path("/sys/module")
MODULES = Path("/lib/modules")
SRC_ROOT = Path("/usr/src")
DKMS_TREE = Path("/var/lib/dkms")
MOK_PUB = DKMS_TREE / "mok.pub"
SIG_ENFORCE = Path("/sys/module/module/parameters/sig_enforce")
UDEV_RULE = Path("/etc/udev/rules.d/70-gupctl.rules")
MODULES_LOAD = Path("/etc/modules-load.d/gupctl.conf")
LIMITS = Path("/etc/security/limits.d/90-gupctl.conf")
#: The kmod's misc device node, opened to the group (udev applies it on add).
#: RLIMIT_MEMLOCK a member of the group gets at login (pam_limits), in KiB:
#: the kmod charges every page a command holds to it (RDMA's users get one
#: the same way), and gupctl's default benchmark holds 128 MiB.
GROUP_MEMLOCK_KIB = 1 << 20
LIMITS_TEXT = (
    "# gupctl: what members of the gupctl group may pin through /dev/gup_test "
    "(written by `gupctl kmod install --user`)\n"
    f"@{GROUP} - memlock {GROUP_MEMLOCK_KIB}\n"
)
RULE_TEXT = (
    "# gupctl: members of the gupctl group may open /dev/gup_test "
    "(written by `gupctl kmod install --user`)\n"
    f'KERNEL=="gup_test", SUBSYSTEM=="misc", GROUP="{GROUP}", MODE="0660"\n'
)


@dataclass(frozen=True)
class ModuleStatus:
    """What `gupctl kmod status` and `gupctl doctor` report about the kmod."""

    release: str
    version: str
    sources: str | None
    headers: str | None
    dkms: str | None
    dkms_installed: list[str] = field(default_factory=list)
    loaded: bool = False
    device: str | None = None
    device_mode: str | None = None
    device_group: str | None = None
    udev_rule: str | None = None
    group_exists: bool = False
    group_members: list[str] = field(default_factory=list)
    sig_enforced: bool = False
    mok_pub: str | None = None
    mok_enrolled: bool | None = None
    signer: str | None = None


def release() -> str:
    """The running kernel's release (uname -r)."""
    return os.uname().release


def sources() -> Path | None:
    """The kmod sources gupctl builds and installs, or None."""
    from gupctl.errors import VmError
    from gupctl.vm import kmod

    try:
        return kmod.source_dir()
    except VmError:
        return None


def version(src: Path | None = None) -> str:
    """The kmod's version: PACKAGE_VERSION of its dkms.conf."""
    src = src or sources()
    if src is None:
        return "unknown"
    m = re.search(r'^PACKAGE_VERSION="?([^"\n]+)"?$', (src / "dkms.conf").read_text(), re.M)
    return m.group(1) if m else "unknown"


def headers(rel: str | None = None) -> Path | None:
    """The build tree of kernel `rel` (default: the running one), if installed."""
    from gupctl.vm.kernel import build_tree

    return build_tree(MODULES / (rel or release()))


def _run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def dkms_installed(ver: str) -> list[str]:
    """Kernel releases for which DKMS has gupctl/`ver` installed."""
    if shutil.which("dkms") is None:
        return []
    try:
        out = _run(["dkms", "status", f"{NAME}/{ver}"], timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    # "gupctl/0.1.0, 6.12.57+deb13-amd64, x86_64: installed" (DKMS 3.x)
    return [m.group(1) for m in re.finditer(r"^[^,]+, ([^,]+), [^:]+: installed", out, re.M)]


def sig_enforced() -> bool:
    """Whether this kernel loads only signed modules (sig_enforce, or lockdown)."""
    try:
        enforce = SIG_ENFORCE.read_text().strip() == "Y"
    except OSError:
        enforce = False
    return enforce or lockdown.restricts_debugfs(lockdown.level())


def mok_enrolled(cert: Path = MOK_PUB) -> bool | None:
    """`mokutil --test-key`: None where it cannot tell (no mokutil, no EFI)."""
    if shutil.which("mokutil") is None or not cert.exists():
        return None
    try:
        out = _run(["mokutil", "--test-key", str(cert)], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout + out.stderr
    if "is already enrolled" in text:
        return True
    if "is not enrolled" in text:
        return False
    return None


def signer(rel: str | None = None) -> str | None:
    """Who signed the module modprobe would load (modinfo -F signer)."""
    if shutil.which("modinfo") is None:
        return None
    try:
        out = _run(["modinfo", "-k", rel or release(), "-F", "signer", NAME], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def status() -> ModuleStatus:
    """The kmod's state on this machine, read without changing anything."""
    src = sources()
    ver = version(src)
    kdir = headers()
    dev = mode = owner = None
    try:
        st = DEVICE.stat()
        dev, mode = str(DEVICE), f"{stat.S_IMODE(st.st_mode):04o}"
        owner = _group_name(st.st_gid)
    except OSError:
        pass
    try:
        members, exists = list(grp.getgrnam(GROUP).gr_mem), True
    except KeyError:
        members, exists = [], False
    return ModuleStatus(
        release=release(),
        version=ver,
        sources=str(src) if src else None,
        headers=str(kdir) if kdir else None,
        dkms=shutil.which("dkms"),
        dkms_installed=dkms_installed(ver),
        loaded=(SYS_MODULE / NAME).is_dir(),
        device=dev,
        device_mode=mode,
        device_group=owner,
        udev_rule=str(UDEV_RULE) if UDEV_RULE.exists() else None,
        group_exists=exists,
        group_members=members,
        sig_enforced=sig_enforced(),
        mok_pub=str(MOK_PUB) if MOK_PUB.exists() else None,
        mok_enrolled=mok_enrolled(),
        signer=signer(),
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def require_root(command: str) -> None:
    """Installing, loading and unloading change the system: root only."""
    if os.geteuid() != 0:
        raise ModuleError(f"`gupctl kmod {command}` changes the system and needs root",
                          "root", command)  # fmt: skip
