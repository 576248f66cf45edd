"""The facts the required rows share, read once, and the route they imply."""

from __future__ import annotations

import dataclasses
import errno
import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from gupctl import abi, device, lockdown, module

# What the probes read; tests point these at trees of their own.
PROC_MODULES = Path("/proc/modules")
MODULES_DISABLED = Path("/proc/sys/kernel/modules_disabled")
OS_RELEASE = Path("/etc/os-release")
LOCKDOWN = lockdown.LOCKDOWN
EFI = Path("/sys/firmware/efi")  # MOK keys are enrolled through EFI

# Per distribution family (os-release ID and ID_LIKE): install, headers, QEMU.
PACKAGES = {
    "debian": ("sudo apt-get install", "linux-headers-$(uname -r)", "qemu-system-x86"),
    "fedora": ("sudo dnf install", "kernel-devel-$(uname -r)", "qemu-system-x86"),
    "suse": ("sudo zypper install", "kernel-default-devel", "qemu-x86"),
    "arch": ("sudo pacman -S", "linux-headers", "qemu-system-x86"),
}
FAMILIES = {"ubuntu": "debian", "rhel": "fedora", "centos": "fedora", "opensuse": "suse",
            "sles": "suse", "sle": "suse"}  # fmt: skip

# The next step towards a gup_test this user can open (route()).
READY, EXPLICIT, USE_MISC_ROUTE, GROUP_ROUTE = "ready", "explicit", "use-misc", "group"
DEBUGFS_ROUTE, VM_ROUTE, LOAD_ROUTE, INSTALL_ROUTE = "debugfs", "vm", "load", "install"


@dataclass(frozen=True)
class Facts:
    """What the probes share, read once."""

    release: str
    user: str
    root: bool
    groups: frozenset[int]  # of this session
    group_gid: int | None  # of the gupctl group
    path: str | None  # what gupctl would open
    open_errno: int | None  # None: it opens; ENOENT: nothing found
    explicit: bool  # --device / $GUPCTL_DEVICE chose the path
    misc_errno: int | None  # opening /dev/gup_test
    config: bool | None  # CONFIG_GUP_TEST=y; None: unknown
    config_source: str | None
    no_modules: str | None  # why the kernel cannot load modules; None: it can
    debugfs: bool
    lockdown: str | None
    efi: bool
    kmod: module.ModuleStatus | None
    kmod_error: str | None
    route: str = READY
    #: What `path` is when it is not a gup_test file (device.identify): a
    #: $GUPCTL_DEVICE of /dev/null opens, and answers no gup_test ioctl.
    not_gup_test: str | None = None
    #: Why `path` opened but did not answer as gup_test (prove()); None: it did.
    unproven: str | None = None


def whoami() -> tuple[str, bool, frozenset[int]]:
    """This user's name, whether root, and the groups of this session."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid == 0, frozenset([*os.getgroups(), os.getegid()])


def group_gid() -> int | None:
    """The gupctl group's id, None where there is no such group."""
    try:
        return grp.getgrnam(module.GROUP).gr_gid
    except KeyError:
        return None


#: How the probes open a gup_test file (Device's way); tests replace it.
try_open = device.open_errno
identify = device.identify


def gather() -> Facts:
    user, root, groups = whoami()
    try:
        path: str | None = device.locate()
    except Exception:
        path = None
    explicit = bool(os.environ.get(device.ENV_VAR))
    config, source = device.kernel_config_from("CONFIG_GUP_TEST")
    try:
        kmod: module.ModuleStatus | None = module.status()
        kmod_error = None
    except Exception as e:
        kmod, kmod_error = None, f"{type(e).__name__}: {e}"
    what = identify(path) if path else None
    opened = errno.ENOTTY if what else try_open(path) if path else errno.ENOENT
    unproven = None
    if path and opened is None:  # it opens: now one harmless ioctl proves it
        opened, unproven = prove(path)
    f = Facts(
        release=os.uname().release, user=user, root=root, groups=groups, group_gid=group_gid(),
        path=path, open_errno=opened, explicit=explicit, not_gup_test=what, unproven=unproven,
        misc_errno=try_open(device.MISC_PATH), config=config, config_source=source,
        no_modules=modules_missing(), debugfs=device.debugfs_mounted(),
        lockdown=lockdown.level(LOCKDOWN), efi=EFI.is_dir(), kmod=kmod, kmod_error=kmod_error,
    )  # fmt: skip
    return dataclasses.replace(f, route=route(f))


def modules_missing() -> str | None:
    """Why this kernel cannot load modules, or None when it can."""
    if not PROC_MODULES.exists():
        return "this kernel cannot load modules (CONFIG_MODULES is not set)"
    try:
        if MODULES_DISABLED.read_text().strip() == "1":
            return "module loading is disabled until reboot (kernel.modules_disabled=1)"
    except OSError:
        pass
    return None


def route(f: Facts) -> str:
    """The next step towards a gup_test this user can open."""
    if f.open_errno is None:
        return READY
    if f.misc_errno is None:
        return USE_MISC_ROUTE  # /dev/gup_test opens, but gupctl looks elsewhere first
    if f.misc_errno in (errno.EACCES, errno.EPERM):
        return GROUP_ROUTE
    if f.explicit and (f.open_errno == errno.ENOENT or f.not_gup_test):
        return EXPLICIT
    if f.config and not lockdown.restricts_debugfs(f.lockdown) and not f.debugfs:
        return DEBUGFS_ROUTE
    if f.no_modules:
        return VM_ROUTE
    if f.kmod and (f.kmod.loaded or f.release in f.kmod.dkms_installed):
        return LOAD_ROUTE
    return INSTALL_ROUTE


def family() -> str:
    """The distribution family whose package commands the fixes use (default Debian's)."""
    try:
        text = OS_RELEASE.read_text()
    except OSError:
        return "debian"
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip("\"'").lower().split()
    for i in ids:
        name = FAMILIES.get(i.split("-")[0], i)
        if name in PACKAGES:
            return name
    return "debian"


def package_fix(what: str) -> str:
    """The command that installs `what` ("headers", "dkms", "qemu") on this distribution."""
    install, headers, qemu = PACKAGES[family()]
    return f"{install} {dict(headers=headers, dkms='dkms', qemu=qemu)[what]}"


def prove(path: str) -> tuple[int | None, str | None]:
    """Whether `path` answers as gup_test does: GUP_FAST_BENCHMARK over one
    page of fresh memory, a reference taken and dropped (no pin), and that
    page's size written back.  (None, None) if it does; else the errno and
    what went wrong."""
    from gupctl.device import Device
    from gupctl.errors import GupctlError
    from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

    arg = abi.ffi.new("struct gup_test *")
    try:
        with Mapping(MemorySpec(), PAGE_SIZE) as m, Device(path) as dev:
            arg.addr, arg.size, arg.nr_pages_per_call = m.addr, PAGE_SIZE, 1
            dev.ioctl(abi.GUP_FAST_BENCHMARK, arg)
    except GupctlError as e:
        code = e.errno or errno.EIO
        return code, f"opens, but GUP_FAST_BENCHMARK of one page fails: {os.strerror(code)}"
    if arg.size != PAGE_SIZE:
        return errno.EPROTO, (f"opens, but GUP_FAST_BENCHMARK of one page wrote back "
                              f"{arg.size} bytes, not {PAGE_SIZE}")  # fmt: skip
    return None, None
