"""Boot to exit: `gupctl vm -- true` against virtme-ng and against a bare
boot of the same kernel image (benchmarks/bareboot.py).

virtme-ng (PyPI: virtme-ng) is installed into a venv in gupctl's cache the
first time.  Each runs `true` on the same kernel under TCG (KVM hangs guests
here: --disable-kvm) with 2 vCPUs, alternating, so drift on the host hits all
alike; gupctl without its kmod, which virtme-ng has no counterpart of.  On
another architecture virtme-ng needs a root of that architecture it can run
(--root): it is tried once with gupctl's userland, and where it fails its
own words are kept instead of its times.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import bareboot
from gupctl.cache import cache_dir
from gupctl.vm import arch as vm_arch
from gupctl.vm import userland
from gupctl.vm.resolve import find

VENV = cache_dir() / "benchmarks" / "vng-venv"


def vng() -> tuple[Path, str]:
    """virtme-ng's vng, installed once; and its version."""
    binary = VENV / "bin" / "vng"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        "virtme-ng"], check=True)  # fmt: skip
    show = subprocess.run([str(VENV / "bin" / "pip"), "show", "virtme-ng"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    version = next(line.split(":", 1)[1].strip() for line in show.splitlines()
                   if line.startswith("Version:"))  # fmt: skip
    return binary, version


def _seconds(argv: list[str], cwd: Path) -> float:
    # vng runs virtme-run by name: its venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    if proc.returncode != 0:
        tail = proc.stdout[-1500:].decode(errors="replace") + proc.stderr[-1500:].decode(
            errors="replace"
        )
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {tail}")
    return time.perf_counter() - start


def _vng_argv(binary: Path, image: Path, arch_name: str) -> list[str]:
    argv = [str(binary), "-r", str(image), "--disable-kvm", "--cpus", "2", "--memory", "4G"]
    target = vm_arch.get(arch_name)
    if not vm_arch.native(target):
        argv += ["--arch", target.kbuild, "--root", str(userland.root(target))]
    return [*argv, "--exec", "true"]


#: What a failed virtme-ng boot says of why, in its --verbose console.
WHY = re.compile(r"virtme initramfs: your host's .*|switch_root: .*|Kernel panic - .*|"
                 r"vng: error: .*|[A-Za-z]*Error: .*")  # fmt: skip


def _fails(argv: list[str], cwd: Path) -> str | None:
    """None if `argv` boots and exits 0; else its status and why, in its own words."""
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
    proc = subprocess.run([argv[0], "--verbose", *argv[1:]], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", env=env)  # fmt: skip
    if proc.returncode == 0:
        return None
    why = [m.group(0).strip() for m in WHY.finditer(proc.stdout + proc.stderr)]
    return f"exit {proc.returncode}: " + ("; ".join(why) or (proc.stdout + proc.stderr)[-300:])


def measure(kernel: str, boots: int, arch_name: str = "x86_64") -> dict[str, object]:
    """Seconds from start to exit of each tool, `boots` times each, alternating."""
    image = find(kernel, arch=arch_name).image
    binary, version = vng()
    here = Path(__file__).resolve().parents[1]
    ours = [sys.executable, "-m", "gupctl", "vm", "--arch", arch_name, "--kernel", kernel,
            "--no-kmod", "--", "true"]  # fmt: skip
    theirs = _vng_argv(binary, image, arch_name)
    out: dict[str, object] = {"kernel": kernel, "arch": arch_name, "image": str(image),
                              "vng_version": version,
                              "vng_command": " ".join(["vng", *theirs[1:]])}  # fmt: skip
    failed = _fails(theirs, here)  # once, untimed: does it work here at all?
    if failed:
        out["vng_error"] = failed
    print(f"benchmark: boot to exit on {arch_name} {kernel}, {boots} boots each",
          file=sys.stderr, flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gupctl-bareboot-") as tmp:
        initrd = bareboot.initrd(arch_name, Path(tmp) / "initrd.cpio")
        bare = bareboot.argv(image, initrd, Path(tmp) / "console.log", arch_name)
        tools = {"gupctl": ours, "bare": bare, **({} if "vng_error" in out else {"vng": theirs})}
        times: dict[str, list[float]] = {name: [] for name in tools}
        for i in range(boots):
            order = list(tools.items())
            for name, argv in order if i % 2 == 0 else order[::-1]:
                times[name].append(_seconds(argv, here))
    return {**out, **times}
