"""Booting the whole-system image (gupctl/vm/system.py) and running a job in it.

The host writes job.sh (and whatever it needs) into a run directory; the
guest's gupctl-job unit mounts that directory over 9p, runs the job as root
with its output on hvc0 (job.log here, streamed to our stdout as it grows),
and leaves the status and dmesg beside it before powering off.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gupctl.errors import VmError
from gupctl.vm import qemu
from gupctl.vm.runner import problems, read_log
from gupctl.vm.system import SystemImage

#: Like a small real machine: one NUMA node, so no memory-only node for the
#: pin balance (gupctl then checks it with quiet windows, gupctl/vmstat.py).
MEMORY_MIB = 4096
CPUS = 2
#: Reserved at boot so that `gupctl doctor` finds hugetlb pages.
HUGEPAGES_2M = 64


@dataclass
class SystemResult:
    """How the job ended, and what the guest kernel said."""

    status: int
    seconds: float
    log: str
    problems: list[str] = field(default_factory=list)
    dmesg: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.problems


def argv(img: SystemImage, run_dir: Path, kvm: bool) -> list[str]:
    """The QEMU argv: the image's own disk (a snapshot: writes are discarded),
    kernel and initramfs; the run directory over 9p; job output on hvc0."""
    cmdline = ["root=/dev/vda", "rw", "console=ttyS0", "panic=-1", "oops=panic",
               f"hugepagesz=2M hugepages={HUGEPAGES_2M}", "gupctl_job=1"]  # fmt: skip
    return [
        qemu.binary(),
        *qemu.accel(kvm),
        "-machine", "q35", "-smp", str(CPUS), "-m", f"{MEMORY_MIB}M",
        *qemu.HEADLESS,
        # The console (kernel and systemd) kept in a file; the job's output on hvc0.
        *qemu.console(run_dir / "console.log"),
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=job,path={run_dir / 'job.log'}",
        "-device", "virtconsole,chardev=job",
        *qemu.run_share(run_dir),
        "-drive", f"file={img.disk},format=raw,if=virtio,snapshot=on",
        "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", " ".join(cmdline),
    ]  # fmt: skip


def _follow(path: Path, done: threading.Event) -> None:
    """Copy what the guest appends to `path` to our stdout until `done`."""
    offset = 0
    while True:
        finished = done.is_set()
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        if finished:
            return
        time.sleep(0.5)


def run(img: SystemImage, run_dir: Path, timeout: float = 2400) -> SystemResult:
    """Boot `img` with `run_dir` (holding job.sh) shared, and wait for the job."""
    if not (run_dir / "job.sh").is_file():
        raise VmError(f"no job.sh in {run_dir}", "usage")
    start = time.monotonic()
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(run_dir / "job.log", done), daemon=True)
    follower.start()
    proc = subprocess.Popen(argv(img, run_dir, qemu.kvm_usable()), stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VmError(f"the system VM ran longer than {timeout:g} s", "timeout",
                      str(run_dir / "console.log")) from None  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        done.set()
        follower.join(timeout=10)
    status = read_log(run_dir / "status").strip()
    if not status.isdigit():
        raise VmError(f"the system VM ended (QEMU status {proc.returncode}) without the "
                      "job's status", "lost", str(run_dir / "console.log"))  # fmt: skip
    dmesg = read_log(run_dir / "dmesg")
    found = problems(read_log(run_dir / "console.log") + dmesg)
    return SystemResult(int(status), time.monotonic() - start, read_log(run_dir / "job.log"),
                        found, dmesg)  # fmt: skip
