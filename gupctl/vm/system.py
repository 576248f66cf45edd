"""A whole Debian system to test gupctl as its users install it.

Where gupctl's usual VM borrows the host's root over 9p and runs one command
as PID 1's child, this one is a machine in its own right: a trixie root
filesystem made with mmdebstrap (systemd, udev, DKMS, the 7.3 kernel and its
headers from trixie-backports, Python), booted from its own disk with its own
initramfs.  A systemd unit in it mounts the run directory the host shares
over 9p, runs job.sh there as root, and powers the machine off.

The image is cached, keyed by its package list (with versions) and by what
this file writes into it; each boot writes to a throw-away snapshot.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gupctl import cache
from gupctl.errors import VmError
from gupctl.vm import debian

SUITE = "trixie"
#: Where the kernel comes from: backports, pinned as high as the suite.
BACKPORTS = "trixie-backports"
SERIES = "7.3"
#: The non-root user of the test, as an administrator would have one.
USER = "tester"
#: What a user's machine has before gupctl: systemd and udev, DKMS with its
#: compiler, Python with venv, and what the selftest's file cases use.
BASE_PACKAGES = (
    "systemd-sysv", "udev", "dbus", "kmod", "dkms", "gcc", "make", "libc6-dev", "openssl",
    "initramfs-tools", "zstd", "python3", "python3-venv", "passwd", "procps", "e2fsprogs",
    "util-linux",
)  # fmt: skip
IMAGE_SIZE = "4G"

#: The unit that runs the host's job once the system is up.
UNIT = """\
[Unit]
Description=gupctl: the host's job from the 9p share gupctl_run
ConditionKernelCommandLine=gupctl_job=1
After=multi-user.target
Wants=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/gupctl-job
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""
#: Runs job.sh with its output on hvc0 (a file on the host), keeps the status
#: and dmesg beside it, then powers off.
JOB_RUNNER = """\
#!/bin/sh
run=/run/gupctl
mkdir -p "$run"
# The share's virtio channel can appear after this unit starts (a first boot
# seen to say "9pnet_virtio: no channels available"): wait up to 30 s for it.
tries=30
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 gupctl_run "$run"; do
	tries=$((tries - 1))
	if [ "$tries" -le 0 ]; then
		echo "gupctl-job: FATAL: cannot mount the run directory" > /dev/console
		systemctl poweroff --force
		exit 1
	fi
	sleep 1
done
(cd "$run" && sh ./job.sh) > /dev/hvc0 2>&1
echo $? > "$run/status"
dmesg > "$run/dmesg"
sync
systemctl poweroff --no-block
"""
FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"


@dataclass(frozen=True)
class SystemImage:
    """A bootable root filesystem image and the kernel that boots it."""

    disk: Path
    kernel: Path
    initrd: Path
    release: str


def packages(apt: debian.Apt | None = None) -> list[str]:
    """The image's package list: the base, and the 7.3 kernel and headers pinned
    to the versions the archive has now (a new upload makes a new image)."""
    apt = apt or debian.Apt()
    release = debian.resolve(SERIES, apt)
    pinned = [apt.newest(f"linux-{kind}-{release}") for kind in ("image", "headers")]
    return [*BASE_PACKAGES, *(f"{p.name}={p.version}" for p in pinned)]


def _hooks(overlay: Path) -> list[str]:
    """mmdebstrap hooks: backports pinned like the suite, then gupctl's files,
    the job unit enabled, and the test's user."""
    return [
        debian.pin_hook(BACKPORTS),
        f'--customize-hook=cp -a "{overlay}/." "$1/"',
        '--customize-hook=chroot "$1" systemctl enable gupctl-job.service',
        # systemd's getty generator would put a login prompt on hvc0, the job's output.
        '--customize-hook=chroot "$1" systemctl mask serial-getty@hvc0.service',
        f'--customize-hook=chroot "$1" useradd --create-home --shell /bin/bash {USER}',
        '--customize-hook=echo gupctl-system > "$1/etc/hostname"',
    ]


def _overlay(dest: Path) -> None:
    files = {
        "etc/systemd/system/gupctl-job.service": (UNIT, 0o644),
        "usr/local/sbin/gupctl-job": (JOB_RUNNER, 0o755),
        "etc/fstab": (FSTAB, 0o644),
    }
    for rel, (text, mode) in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)


def image() -> SystemImage:
    """The trixie system image, made once (a few minutes) and then cached."""
    for name in ("mmdebstrap", "mkfs.ext4"):
        debian.tool(name)
    apt = debian.Apt()
    include = packages(apt)

    def make(scratch: Path) -> None:
        root, overlay = scratch / "root", scratch / "overlay"
        _overlay(overlay)
        sources = [f"deb {debian.MIRROR} {s} main" for s in (SUITE, BACKPORTS)]
        argv = ["mmdebstrap", "--variant=apt", "--mode=root", "--include=" + ",".join(include),
                *_hooks(overlay), SUITE, str(root), *sources]  # fmt: skip
        _check(argv, f"mmdebstrap of the {SUITE} system image")
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if len(kernels) != 1:
            raise VmError(f"the system image has {len(kernels)} kernels, not one", "build")
        release = kernels[0].name.removeprefix("vmlinuz-")
        shutil.copy2(kernels[0], scratch / "vmlinuz")
        shutil.copy2(root / "boot" / f"initrd.img-{release}", scratch / "initrd.img")
        (scratch / "release").write_text(release + "\n")
        # mke2fs copies the tree with its owners and modes, no mount needed.
        mkfs = ["mkfs.ext4", "-q", "-F", "-L", "gupctl-root", "-d", str(root),
                str(scratch / "root.img"), IMAGE_SIZE]  # fmt: skip
        _check(mkfs, "mkfs.ext4 of the system image")
        shutil.rmtree(root)
        shutil.rmtree(overlay)

    key = cache.key([*include, UNIT, JOB_RUNNER, FSTAB, USER, IMAGE_SIZE, *_hooks(Path("/"))])
    entry = cache.entry("system", f"{SUITE}-{key}", make)
    release = (entry / "release").read_text().strip()
    return SystemImage(entry / "root.img", entry / "vmlinuz", entry / "initrd.img", release)


def _check(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise VmError(f"{what} failed", "build", tail)
