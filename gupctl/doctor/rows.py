"""The rows on the way to a gup_test this user can open, and the two that explain them."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from gupctl import device, lockdown, module
from gupctl.doctor import facts
from gupctl.doctor.facts import Facts, package_fix

OK, MISSING, WARN, INFO = "ok", "missing", "warn", "info"

# The fixes; README.md and CI use the same words.
INSTALL = "sudo gupctl kmod install"
INSTALL_USER = "sudo gupctl kmod install --user $USER"
LOAD = "sudo gupctl kmod load"
NEWGRP = f"newgrp {module.GROUP}"
MOUNT_DEBUGFS = f"sudo mount -t debugfs none {device.DEBUGFS_MOUNT}"
ENROLL = "sudo mokutil --import /var/lib/dkms/mok.pub"
IN_VM = "gupctl vm -- gupctl bench"
USE_MISC = "export GUPCTL_DEVICE=/dev/gup_test"
UNSET = "unset GUPCTL_DEVICE"


@dataclass(frozen=True)
class Check:
    """One row: `status` is "ok", "missing", "warn" or "info"; `fix` the one
    command that fixes a missing or warn row (None: nothing to run); `why` what
    gupctl needs the item for (on a missing device row: why this fix)."""

    name: str
    required: bool
    status: str
    found: str
    fix: str | None
    why: str


def _kmod_name(f: Facts) -> str:
    return f"the gupctl kmod {f.kmod.version}" if f.kmod else "the gupctl kmod"


def device_row(f: Facts) -> Check:
    name = "gup_test device"
    why = ("what every command opens: --device, $GUPCTL_DEVICE, "
           f"{device.DEBUGFS_PATH}, then {device.MISC_PATH}")  # fmt: skip
    if f.route == facts.READY:
        kmod_serves = f.path == device.MISC_PATH or (f.kmod and f.kmod.loaded and not f.config)
        by = _kmod_name(f) if kmod_serves else "the kernel's gup_test (CONFIG_GUP_TEST)"
        return Check(name, True, OK, f"{f.path}: {f.user} opens it, served by {by}", None, why)
    if f.path and f.not_gup_test:
        found = f"{f.path} is {f.not_gup_test}, not a gup_test file"
    elif f.path and f.unproven:
        found = f"{f.path} {f.unproven}"
    elif f.path and f.open_errno != errno.ENOENT:
        found = f"{f.path}: {os.strerror(f.open_errno or errno.EIO)}"
    elif f.explicit:
        found = f"${device.ENV_VAR}={os.environ.get(device.ENV_VAR)} does not exist"
    else:
        found = f"none: no {device.DEBUGFS_PATH}, no {device.MISC_PATH}"
    fix, step = _next_step(f)
    return Check(name, True, MISSING, found, fix, step)


def _next_step(f: Facts) -> tuple[str, str]:
    """The command that brings this user nearer a gup_test, and why it is the one."""
    misc, kmod = device.MISC_PATH, _kmod_name(f)
    if f.route == facts.USE_MISC_ROUTE:
        return USE_MISC, f"{misc} opens; gupctl would try {f.path} first"
    if f.route == facts.GROUP_ROUTE:
        return _membership(f)[1], f"{misc} exists; {f.user} may not open it"
    if f.route == facts.EXPLICIT:
        return UNSET, "then gupctl looks in the usual places"
    if f.route == facts.DEBUGFS_ROUTE:
        return MOUNT_DEBUGFS, "the kernel's gup_test lives in debugfs"
    if f.route == facts.VM_ROUTE:
        return IN_VM, f"{f.no_modules}: run gupctl in its VM instead"
    # A user who may not open /dev/gup_test once it is there needs --user too.
    opens_later = f.root or (f.kmod and f.kmod.udev_rule and f.user in f.kmod.group_members)
    if f.route == facts.LOAD_ROUTE:
        return (
            LOAD if opens_later else INSTALL_USER
        ), f"{kmod} is installed for {f.release}, not loaded"
    return (INSTALL if opens_later else INSTALL_USER), f"{kmod} is not installed for {f.release}"


def config_row(f: Facts) -> Check:
    why = "no distribution kernel enables CONFIG_GUP_TEST; gupctl's kmod serves the same ABI"
    if f.config is None:
        found = f"unknown: no {device.BOOT}/config-{f.release}, no {device.PROC_CONFIG}"
    elif f.config:
        found = f"CONFIG_GUP_TEST=y ({f.config_source}): gup_test in debugfs"
    else:
        found = f"CONFIG_GUP_TEST is not set ({f.config_source})"
    return Check("kernel config", False, INFO, found, None, why)


def modules_row(f: Facts) -> Check:
    why = "the kmod is a module: without module loading, use gupctl's VM"
    if not f.no_modules:
        return Check("module loading", True, OK, f"supported ({facts.PROC_MODULES})", None, why)
    status, fix = (MISSING, IN_VM) if f.route == facts.VM_ROUTE else (INFO, None)
    return Check("module loading", True, status, f.no_modules, fix, why)


def debugfs_row(f: Facts) -> Check:
    why = ("only the kernel's own gup_test (CONFIG_GUP_TEST) needs it; "
           f"the kmod serves {device.MISC_PATH}")  # fmt: skip
    if f.debugfs:
        return Check("debugfs", True, OK, f"mounted at {device.DEBUGFS_MOUNT}", None, why)
    status, fix = (MISSING, MOUNT_DEBUGFS) if f.route == facts.DEBUGFS_ROUTE else (INFO, None)
    return Check("debugfs", True, status, f"not mounted at {device.DEBUGFS_MOUNT}", fix, why)


def lockdown_row(f: Facts) -> Check:
    why = ("under integrity or confidentiality, debugfs refuses gup_test (EPERM) and modules "
           f"must be signed: gupctl then uses the kmod's {device.MISC_PATH}")  # fmt: skip
    if f.lockdown is None:
        found = f"no lockdown ({facts.LOCKDOWN} absent)"
    elif lockdown.restricts_debugfs(f.lockdown):
        found = f"{f.lockdown}: debugfs gup_test refused, only signed modules load"
    else:
        found = f"{f.lockdown}: debugfs and unsigned modules allowed"
    return Check("lockdown", False, INFO, found, None, why)


def _builds(f: Facts) -> bool:
    """Whether the next step builds the kmod for this kernel."""
    return f.route == facts.INSTALL_ROUTE


def headers_row(f: Facts) -> Check:
    why = "DKMS builds the kmod against them, now and for every later kernel"
    if f.kmod is None:
        return Check("kernel headers", True, WARN, f"unknown: {f.kmod_error}", None, why)
    if f.kmod.headers:
        return Check("kernel headers", True, OK, f.kmod.headers, None, why)
    found = f"not installed for {f.release}"
    if _builds(f):
        return Check("kernel headers", True, MISSING, found, package_fix("headers"), why)
    return Check("kernel headers", True, INFO, f"{found} (not needed now)", None, why)


def dkms_row(f: Facts) -> Check:
    why = "installs the kmod, rebuilds it for new kernels and signs it with its MOK key"
    if f.kmod is None:
        return Check("DKMS", True, WARN, f"unknown: {f.kmod_error}", None, why)
    if f.kmod.dkms:
        kernels = ", ".join(f.kmod.dkms_installed)
        installed = f"installed for {kernels}" if kernels else "not installed"
        found = f"{f.kmod.dkms}; gupctl/{f.kmod.version} {installed}"
        return Check("DKMS", True, OK, found, None, why)
    if _builds(f):
        return Check("DKMS", True, MISSING, "not installed", package_fix("dkms"), why)
    return Check("DKMS", True, INFO, "not installed (not needed now)", None, why)


def signing_row(f: Facts) -> Check:
    name = "module signing"
    why = ("where signatures are enforced (sig_enforce, lockdown) the kmod loads only when "
           "DKMS's key is enrolled: import it, reboot, confirm it in MokManager")  # fmt: skip
    k = f.kmod
    if k is None:
        return Check(name, True, WARN, f"unknown: {f.kmod_error}", None, why)
    signed = f"; the kmod is signed by {k.signer}" if k.signer else ""
    if not k.sig_enforced:
        return Check(name, True, OK, f"not enforced{signed}", None, why)
    if k.loaded:
        return Check(name, True, OK, f"enforced; the loaded kmod passed{signed}", None, why)
    if k.mok_enrolled:
        return Check(name, True, OK, f"enforced; DKMS's key {k.mok_pub} is enrolled", None, why)
    if k.mok_pub is None:
        found = "enforced; DKMS has no key yet (its first build makes /var/lib/dkms/mok.pub)"
    elif k.mok_enrolled is None:
        found = f"enforced; cannot tell whether {k.mok_pub} is enrolled (no mokutil or no EFI)"
    else:
        found = f"enforced; DKMS's key {k.mok_pub} is not enrolled"
    if f.route not in (facts.LOAD_ROUTE, facts.INSTALL_ROUTE):
        return Check(name, True, INFO, f"{found} (not needed now)", None, why)
    if not f.efi:  # no firmware to enroll a MOK key in: no command fixes it
        found += "; no EFI, so no MOK: only keys built into the kernel count"
        return Check(name, True, MISSING, found, None, why)
    status = WARN if k.mok_pub and k.mok_enrolled is None else MISSING
    return Check(name, True, status, found, ENROLL, why)


def _membership(f: Facts) -> tuple[str, str]:
    """This user and the gupctl group, and the command that lets it open /dev/gup_test."""
    k = f.kmod
    members = ", ".join(k.group_members) if k and k.group_members else "none"
    if not (k and f.user in k.group_members):
        return f"{f.user} is not in it (members: {members})", INSTALL_USER
    if f.group_gid not in f.groups:
        return f"{f.user} is in it, not yet in this session", NEWGRP
    access = f"{k.device_mode} root:{k.device_group}" if k.device else "absent"
    return f"{f.user} is in it; {device.MISC_PATH} is {access}", INSTALL_USER


def group_row(f: Facts) -> Check:
    name = f"{module.GROUP} group"
    why = (f"{device.MISC_PATH} is root-only until `gupctl kmod install --user` opens it to "
           f"the {module.GROUP} group; then log in again (or `{NEWGRP}`)")  # fmt: skip
    if f.root:
        return Check(name, True, OK, "root: not needed", None, why)
    found, fix = _membership(f)
    if f.route == facts.READY:
        return Check(name, True, OK, f"{f.path} opens for {f.user}", None, why)
    if f.route not in (facts.GROUP_ROUTE, facts.LOAD_ROUTE, facts.INSTALL_ROUTE):
        return Check(name, True, INFO, found, None, why)
    return Check(name, True, MISSING, found, fix, why)
