"""Changing the kmod's state on this machine: `gupctl kmod build|install|...`.

Every step that fails undoes what the command did before it: a failed DKMS
build leaves no /usr/src/gupctl-VERSION and no DKMS entry behind, and a user
name that does not exist stops the command before anything changed.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gupctl import module
from gupctl.errors import ModuleError
from gupctl.module import GROUP, NAME

#: What is left to do where Secure Boot wants a key the firmware does not know.
MOK_STEP = f"sudo mokutil --import {module.MOK_PUB}, reboot and enroll the key in MokManager"


@dataclass(frozen=True)
class Installed:
    """What `gupctl kmod install` did, for the table and --json."""

    version: str
    release: str
    source_dir: str
    module: str
    signer: str | None
    users: list[str] = field(default_factory=list)
    #: the one command the administrator still has to run, if any
    next_step: str | None = None


def _run(argv: list[str], command: str, kind: str, log: str | None = None) -> str:
    """Run one tool; its failure becomes a ModuleError naming it."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    except OSError as e:
        raise ModuleError(f"{argv[0]} could not run: {e.strerror}", kind, command) from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        detail = said[-1] if said else f"exit status {proc.returncode}"
        raise ModuleError(f"`{' '.join(argv)}` failed: {detail}", kind, command, log)
    return proc.stdout


def build(rel: str | None = None) -> Path:
    """gupctl.ko for kernel `rel` (default: running), from its installed headers;
    cached like the VM's builds (gupctl/vm/kmod.py)."""
    from gupctl.vm import kmod
    from gupctl.vm.kernel import BOOT, MODULES, Kernel

    rel = rel or module.release()
    kdir = module.headers(rel)
    if kdir is None:
        raise ModuleError(f"no headers for kernel {rel}", "headers", "build", release=rel)
    return kmod.build(Kernel(rel, BOOT / f"vmlinuz-{rel}", MODULES / rel, kdir))


def _check_users(users: list[str]) -> None:
    for user in users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise ModuleError(f"there is no user {user!r}", "user", "install") from None


def _dkms_remove_all() -> None:
    """Every gupctl version DKMS knows, and their sources in /usr/src."""
    for src in sorted(module.SRC_ROOT.glob(f"{NAME}-*")):
        ver = src.name.removeprefix(f"{NAME}-")
        subprocess.run(["dkms", "remove", f"{NAME}/{ver}", "--all"], capture_output=True)
        shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(module.DKMS_TREE / NAME, ignore_errors=True)


def _dkms_install(src: Path, ver: str, rel: str) -> Path:
    from gupctl.vm.kmod import sources

    dest = module.SRC_ROOT / f"{NAME}-{ver}"
    _dkms_remove_all()
    log = str(module.DKMS_TREE / NAME / ver / "build" / "make.log")
    try:  # BaseException: a signal (cli/signals.py) mid-copy or mid-build undoes it too
        for relpath in sources(src):
            (dest / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / relpath, dest / relpath)
        _run(["dkms", "add", f"{NAME}/{ver}"], "install", "dkms")
        _run(["dkms", "build", f"{NAME}/{ver}", "-k", rel], "install", "build", log)
        _run(["dkms", "install", f"{NAME}/{ver}", "-k", rel], "install", "dkms")
    except BaseException:
        _dkms_remove_all()
        raise
    return dest


def _allow(users: list[str]) -> None:
    """The group, its members, the udev rule that gives it the device, and the
    memlock limit its members' pins are charged to (at their next login)."""
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        _run(["groupadd", "--system", GROUP], "install", "user")
    for user in users:
        _run(["usermod", "--append", "--groups", GROUP, user], "install", "user")
    module.UDEV_RULE.parent.mkdir(parents=True, exist_ok=True)
    module.UDEV_RULE.write_text(module.RULE_TEXT)
    module.LIMITS.parent.mkdir(parents=True, exist_ok=True)
    module.LIMITS.write_text(module.LIMITS_TEXT)
    if shutil.which("udevadm"):
        subprocess.run(["udevadm", "control", "--reload-rules"], capture_output=True)


def _apply_rule() -> None:
    """Make the loaded device match the rule: udev does it on `add`; where no
    udevd runs (containers), do what the rule says ourselves."""
    if shutil.which("udevadm"):
        subprocess.run(["udevadm", "trigger", "--action=add", "--subsystem-match=misc",
                        "--sysname-match=gup_test"], capture_output=True)  # fmt: skip
        subprocess.run(["udevadm", "settle", "--timeout=30"], capture_output=True)
    st = module.DEVICE.stat()
    gid = grp.getgrnam(GROUP).gr_gid
    if st.st_gid != gid or (st.st_mode & 0o777) != 0o660:
        os.chown(module.DEVICE, 0, gid)
        os.chmod(module.DEVICE, 0o660)


def install(users: list[str]) -> Installed:
    """Install through DKMS for the running kernel, load now and at boot, and
    let `users` (via the gupctl group) open /dev/gup_test."""
    module.require_root("install")
    _check_users(users)
    src = module.sources()
    if src is None:
        raise ModuleError("the kmod's sources are missing from this gupctl", "sources",
                          "install")  # fmt: skip
    if shutil.which("dkms") is None:
        raise ModuleError("dkms is not installed", "dkms", "install")
    rel = module.release()
    if module.headers(rel) is None:
        raise ModuleError(f"no headers for the running kernel {rel}", "headers", "install")
    ver = module.version(src)
    dest = _dkms_install(src, ver, rel)
    module.MODULES_LOAD.parent.mkdir(parents=True, exist_ok=True)
    module.MODULES_LOAD.write_text(f"# gupctl kmod install: /dev/gup_test at boot\n{NAME}\n")
    if users:
        _allow(users)
    if module.SYS_MODULE.joinpath(NAME).is_dir():
        unload("install")  # the version just built replaces the one running
    next_step = None
    try:
        load("install")
    except ModuleError as e:
        if e.kind != "signing":
            raise
        # Installed and signed, but by a key the firmware does not trust yet.
        next_step = MOK_STEP
    if users and next_step is None:
        _apply_rule()
    return Installed(ver, rel, str(dest), NAME, module.signer(rel), users, next_step)


def load(command: str = "load") -> None:
    """modprobe the installed kmod, else insmod a build for the running kernel."""
    module.require_root(command)
    if module.SYS_MODULE.joinpath(NAME).is_dir():
        return
    if module.dkms_installed(module.version()) or _modinfo_finds():
        argv = ["modprobe", NAME]
    else:
        argv = ["insmod", str(build())]
    try:
        _run(argv, command, "load")
    except ModuleError as e:
        if module.sig_enforced() and "rejected" in e.what.lower():
            raise ModuleError(f"{e.what} (this kernel loads only signed modules)", "signing",
                              command) from None  # fmt: skip
        raise


def _modinfo_finds() -> bool:
    proc = subprocess.run(["modinfo", "-F", "filename", NAME], capture_output=True, text=True)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def unload(command: str = "unload") -> None:
    """rmmod: refused while a process holds /dev/gup_test open."""
    module.require_root(command)
    if not module.SYS_MODULE.joinpath(NAME).is_dir():
        return
    try:
        _run(["rmmod", NAME], command, "busy")
    except ModuleError as e:
        if "in use" not in e.what:
            e.kind = "load"
        raise


def uninstall() -> list[str]:
    """Unload, remove from DKMS, and remove what install wrote; returns what went."""
    module.require_root("uninstall")
    unload("uninstall")
    gone = [str(p) for p in sorted(module.SRC_ROOT.glob(f"{NAME}-*"))]
    if shutil.which("dkms"):
        _dkms_remove_all()
    for path in (module.MODULES_LOAD, module.UDEV_RULE, module.LIMITS):
        if path.exists():
            path.unlink()
            gone.append(str(path))
    try:
        grp.getgrnam(GROUP)
        _run(["groupdel", GROUP], "uninstall", "user")
        gone.append(f"group {GROUP}")
    except KeyError:
        pass
    if shutil.which("udevadm"):
        subprocess.run(["udevadm", "control", "--reload-rules"], capture_output=True)
    return gone
