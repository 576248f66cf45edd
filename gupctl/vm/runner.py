"""Run one command in a VM on a real kernel and return its exit status.

The host side of gupctl's VM: find the kernel, build the kmod and the
initramfs (both cached), write the job script into a shared run directory,
boot QEMU, and read back the status, the console and dmesg.  Any oops, BUG,
WARN or panic the guest kernel reports makes the run fail, whatever the
command's own status.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gupctl import cache, kmsg
from gupctl.errors import VmError
from gupctl.vm import arch as _arch
from gupctl.vm import debian, initramfs, kmod, pyimage, qemu, userland
from gupctl.vm.kernel import MODULES, Kernel
from gupctl.vm.resolve import find

#: What fails a run: any kernel problem, or the guest init giving up.
PROBLEM = re.compile(f"{kmsg.PROBLEM.pattern}|gupctl-(init|job): FATAL")
#: The run directory's subdirectory for the job's outputs ($GUPCTL_VM_OUT).
OUT = "out"
#: Host variables the guest command sees too.
PASSTHROUGH = ("CI", "NO_COLOR", "TERM", "COLUMNS", "PYTHONPATH")


@dataclass
class VmResult:
    """How the guest command ended, and what the guest kernel said."""

    status: int
    kernel: str
    accel: str
    seconds: float
    problems: list[str] = field(default_factory=list)
    dmesg: str = ""
    log_dir: str | None = None  # kept only when the guest kernel reported problems
    outputs: dict[str, bytes] = field(default_factory=dict)  # what the job left in $GUPCTL_VM_OUT

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.problems


@dataclass
class Plan:
    """Everything needed to boot: for running, and for --dry-run.

    `streams` are the host ends of the sockets behind the guest's hvc0/hvc1.
    """

    kernel: Kernel
    run_dir: Path
    argv: list[str]
    job: str
    accel: str
    streams: list[tuple[socket.socket, socket.socket]]

    def discard(self) -> None:
        """Release what plan() made, for a plan that will not be executed."""
        for host_end, guest_end in self.streams:
            host_end.close()
            guest_end.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _initrd(kernel: Kernel, python_image: bool, guest: userland.Guest | None = None) -> Path:
    files = resources.files("gupctl.vm")
    # The init script, the code that packs it (and picks the modules), the
    # modules' origin (two kernels may share a release) and the busybox.
    busybox = userland.busybox(guest.root) if guest else Path(initramfs.BUSYBOX)
    parts: list[str | bytes] = [kernel.release, str(kernel.modules), str(busybox)]
    parts += [files.joinpath(name).read_bytes() for name in ("guest-init.sh", "initramfs.py")]

    def make(scratch: Path) -> None:
        initramfs.build(kernel, scratch / "initrd.cpio.gz", busybox)

    name = f"{kernel.release}-{cache.key(parts)}"
    initrd = cache.entry("initramfs", name, make) / "initrd.cpio.gz"
    if guest is not None:  # the host's Python files are of no use there
        return pyimage.in_front_of(initrd, pyimage.layer(guest.layer))
    return pyimage.in_front_of(initrd) if python_image else initrd


def _foreign_modules(kernel: Kernel) -> Path | None:
    """The kernel's module tree when the host's /lib/modules lacks it: modprobe
    in the guest (ext4 and loop for the selftest) looks there."""
    if kernel.modules is None or kernel.modules == MODULES / kernel.release:
        return None
    return kernel.modules


def job_script(
    command: list[str],
    cwd: str,
    env: dict[str, str],
    machine: qemu.Machine | None = None,
    out: Path | None = None,
    guest: userland.Guest | None = None,
) -> str:
    """The shell script the guest runs: the caller's cwd, PATH and environment.
    For another architecture's `guest`, its Python runs the host's gupctl."""
    path = [
        *([] if guest else [os.path.dirname(sys.executable)]),
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    variables = {k: os.environ[k] for k in PASSTHROUGH if os.environ.get(k)}
    variables.update(
        HOME="/tmp", PATH=":".join(path), GUPCTL_IN_VM="1", PYTHONDONTWRITEBYTECODE="1"
    )
    # The host's cache, read through the overlay: what the host built (the
    # kmod, test clients) is there; what the guest adds stays in the guest.
    variables["GUPCTL_CACHE"] = str(cache.cache_dir())
    if out is not None:
        # Files the job writes here come back in VmResult.outputs (the rest
        # of the guest's writes stay in guest memory).
        variables["GUPCTL_VM_OUT"] = str(out)
    variables.setdefault("COLUMNS", str(shutil.get_terminal_size((160, 24)).columns))
    # Node 1 is the memory-only node of qemu.Machine: exact pin balance.
    if (machine or qemu.Machine()).numa_node is not None:
        variables["GUPCTL_NUMA_NODE"] = "1"
    if guest is not None:
        theirs = variables.get("PYTHONPATH")
        variables["PYTHONPATH"] = ":".join([*guest.pythonpath, *([theirs] if theirs else [])])
        command = userland.command(command)
    variables.update(env)
    lines = ["#!/bin/sh", f"cd {shlex.quote(cwd)} || exit 125"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(variables.items())]
    lines.append("exec " + shlex.join(command))
    return "\n".join(lines) + "\n"


def precompile() -> None:
    """Compile gupctl's own modules to bytecode, here, before the boot.

    The guest writes no bytecode (PYTHONDONTWRITEBYTECODE: its root is the
    host's, read-only under an overlay that vanishes), and a checkout has
    none, so each Python start in the guest would compile the 40-odd modules
    a command imports, under TCG: about a second.  pip compiled an installed
    gupctl already; compileall skips what is up to date, and where the
    package is not writable it fails quietly (the guest then compiles).
    """
    import compileall

    package = Path(__file__).resolve().parents[1]
    compileall.compile_dir(str(package), quiet=2)
    if os.geteuid() == 0:
        give_back_bytecode(package)


def give_back_bytecode(package: Path) -> None:
    """Each __pycache__ that root made in someone else's directory (`sudo
    gupctl vm` in a user's checkout) goes to that directory's owner, so that
    the user's own runs can still rewrite it.  Best effort: what cannot be
    given back stays root's, which only costs those runs a compile."""
    for pycache in package.rglob("__pycache__"):
        try:
            owner = pycache.parent.stat()
            for path in (pycache, *pycache.iterdir()):
                if path.lstat().st_uid == 0 != owner.st_uid:
                    os.lchown(path, owner.st_uid, owner.st_gid)
        except OSError:
            continue


def plan(
    command: list[str],
    kernel: str | None = None,
    use_kmod: bool = True,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    machine: qemu.Machine | None = None,
    lockdown: str | None = None,
) -> Plan:
    """Prepare a run (kernel, kmod, initramfs, run directory) without booting.
    `lockdown`: boot with lockdown=LEVEL (qemu.cmdline)."""
    machine = machine or qemu.Machine()
    target = _arch.get(machine.arch)
    k = find(kernel, headers=use_kmod, arch=target.name)
    if lockdown and use_kmod and kmod.signing_key(k) is None:
        raise VmError(f"under lockdown {k.release} loads only modules signed with its own "
                      "key, which gupctl has only for a kernel it built: use --kernel "
                      "source[:SERIES], or --no-kmod", "usage")  # fmt: skip
    precompile()
    runs = cache.cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    streams = [socket.socketpair(), socket.socketpair()]
    try:
        if use_kmod:
            shutil.copy2(kmod.build(k), run_dir / "gupctl.ko")
        guest = None
        if not _arch.native(target):
            toolchain = k.buildroot or debian.cross_buildroot(k.release, target)
            guest = userland.prepare(target, toolchain)
        (run_dir / OUT).mkdir()
        job = job_script(command, cwd or os.getcwd(), env or {}, machine, run_dir / OUT, guest)
        (run_dir / "job.sh").write_text(job)
        kvm = qemu.kvm_usable()
        argv = qemu.argv(
            k.image,
            _initrd(k, machine.python_image, guest),
            run_dir,
            qemu.cmdline(
                run_dir,
                use_kmod,
                machine,
                sys.stdout.isatty(),
                _foreign_modules(k),
                lockdown,
                guest is not None,
            ),  # fmt: skip
            run_dir / "console.log",
            streams[0][1].fileno(),
            streams[1][1].fileno(),
            machine,
            kvm,
            guest.root if guest else None,
        )
    except BaseException:
        Plan(k, run_dir, [], "", "", streams).discard()
        raise
    return Plan(k, run_dir, argv, job, "kvm" if kvm else "tcg", streams)


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _relay(source: socket.socket, sink: int) -> None:
    while data := source.recv(65536):
        os.write(sink, data)


def execute(p: Plan, timeout: float = 1800) -> VmResult:
    """Boot the planned VM, wait for it, and collect the result."""
    start = time.monotonic()
    relays = [
        threading.Thread(target=_relay, args=(host_end, fd), daemon=True)
        for (host_end, _), fd in zip(p.streams, (1, 2))
    ]
    for t in relays:
        t.start()
    guest_fds = [guest_end.fileno() for _, guest_end in p.streams]
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(p.argv, stdin=subprocess.DEVNULL, pass_fds=guest_fds)
        for _, guest_end in p.streams:
            guest_end.close()  # QEMU holds them now: EOF when it exits
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise VmError(
            f"the VM ran longer than {timeout:g} s", "timeout", str(p.run_dir / "console.log")
        ) from None
    except (KeyboardInterrupt, SystemExit):
        # SIGINT, or SIGTERM turned into an exit (gupctl/cli/vm.py): QEMU, which
        # does not get our signal, must not outlive us, nor its run directory.
        _kill(proc)
        shutil.rmtree(p.run_dir, ignore_errors=True)
        raise
    finally:
        for t in relays:
            t.join(timeout=10)
        for host_end, guest_end in p.streams:
            host_end.close()
            guest_end.close()
    seconds = time.monotonic() - start
    dmesg = read_log(p.run_dir / "dmesg")
    status_text = read_log(p.run_dir / "status").strip()
    if not status_text.isdigit():
        # A kernel that oopsed before the job started (no `started` from
        # guest-init.sh) died booting: nothing of the command ran.
        booting = not (p.run_dir / "started").exists()
        console = read_log(p.run_dir / "console.log").splitlines()
        if booting and kmsg.problems(console):  # the kernel's, not guest-init's FATAL
            raise VmError(f"the guest kernel {p.kernel.release} died while booting", "boot",
                          str(p.run_dir / "console.log"))  # fmt: skip
        raise VmError(
            f"the VM ended (QEMU status {proc.returncode}) without the command's status",
            "lost",
            str(p.run_dir / "console.log"),
        )
    found = problems(read_log(p.run_dir / "console.log") + dmesg)
    result = VmResult(int(status_text), p.kernel.release, p.accel, seconds, found, dmesg)
    result.outputs = {f.name: f.read_bytes() for f in sorted((p.run_dir / OUT).glob("*"))
                      if f.is_file()}  # fmt: skip
    if found:  # kept for the report, and said where (cli/vm_run.py finish)
        result.log_dir = str(p.run_dir)
    else:  # the command's own failure is its status, and its output said why
        shutil.rmtree(p.run_dir, ignore_errors=True)
    return result


def problems(log: str) -> list[str]:
    """The lines of a console log or dmesg that fail a run (PROBLEM), once each."""
    return sorted({line.strip() for line in kmsg.problems(log.splitlines(), PROBLEM)})


def read_log(path: Path) -> str:
    """A file the guest left in the run directory; "" where it left none."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
