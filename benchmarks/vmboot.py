"""Boot to exit: `gupctl vm -- true` against virtme-ng on the same kernel image.

virtme-ng (PyPI: virtme-ng) is installed into a venv in gupctl's cache the
first time.  Both run `true` on the same vmlinuz under TCG (KVM hangs guests
here: --disable-kvm) with the same 2 vCPUs and 4 GiB, alternating, so drift
on the host hits both alike; gupctl without its kmod, which virtme-ng has no
counterpart of.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gupctl.cache import cache_dir
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


def measure(kernel: str, boots: int) -> dict[str, object]:
    """Seconds from start to exit of each tool, `boots` times each, alternating."""
    image = find(kernel).image
    binary, version = vng()
    here = Path(__file__).resolve().parents[1]
    ours = [sys.executable, "-m", "gupctl", "vm", "--kernel", kernel, "--no-kmod", "--", "true"]
    theirs = [str(binary), "-r", str(image), "--disable-kvm", "--cpus", "2", "--memory", "4G",
              "--exec", "true"]  # fmt: skip
    print(f"benchmark: boot to exit on {kernel}, {boots} boots each", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {"gupctl": [], "vng": []}
    for i in range(boots):
        order = (("gupctl", ours), ("vng", theirs))
        for name, argv in order if i % 2 == 0 else order[::-1]:
            times[name].append(_seconds(argv, here))
    return {"kernel": kernel, "image": str(image), "vng_version": version,
            "vng_command": " ".join(["vng", *theirs[1:]]), **times}  # fmt: skip
