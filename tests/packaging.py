"""Packaging checks shared by tests/run.py and tests/system: the sdist, the
wheel built from it, and a wheelhouse for an offline guest.

    python tests/packaging.py sdist-install   # item 1 of issue 8, run by tests/run.py

`sdist-install` builds the sdist, installs it into a fresh venv outside the
checkout, checks that gupctl comes from there (with the kmod's sources in
it), runs the unit tests against that install, and boots the VM from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Where the whole-system image's Python is (trixie's python3).
GUEST_PYTHON = "3.13"


def sdist(dest: Path) -> Path:
    """`python -m build --sdist` of this checkout into `dest`."""
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "-o", str(dest), str(ROOT)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"building the sdist failed:\n{proc.stdout}{proc.stderr}")
    (found,) = dest.glob("gupctl-*.tar.gz")
    return found


def wheel(dest: Path) -> Path:
    """The wheel built from the sdist (not from the checkout): what pip builds
    for a user who installs the sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        src = sdist(Path(tmp))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                        str(src)], check=True)  # fmt: skip
    (found,) = dest.glob("gupctl-*.whl")
    return found


def dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def wheelhouse(dest: Path) -> None:
    """gupctl's wheel and its dependencies' wheels for the guest's Python, from
    PyPI: the guest has no network."""
    wheel(dest)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                    "--python-version", GUEST_PYTHON, "--implementation", "cp",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(dest), *dependencies()], check=True)  # fmt: skip


def sdist_install() -> int:
    """Issue 8 item 1: the sdist installs, and works, outside any checkout."""
    with tempfile.TemporaryDirectory(prefix="gupctl-sdist-") as tmp:
        work = Path(tmp)
        src = sdist(work)
        venv = work / "venv"
        py = str(venv / "bin" / "python")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # The sdist as a user installs it, plus what the unit tests import.
        subprocess.run([py, "-m", "pip", "install", "-q", str(src), "pytest", "junitparser"],
                       check=True)  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GUPCTL_KMOD_DIR")}
        where = subprocess.run(
            [py, "-c", "import gupctl, gupctl.vm.kmod as k; print(gupctl.__file__); "
             "print(k.source_dir()); import gupctl._loop"],
            cwd=work, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        print(f"gupctl from {where[0]}, kmod sources {where[1]}", flush=True)
        if not all(p.startswith(str(venv)) for p in where):
            print(f"not the installed gupctl: {where}", file=sys.stderr)
            return 1
        steps = [
            [py, "-m", "pytest", str(ROOT / "tests" / "unit"), "-q", "-p", "no:cacheprovider"],
            [str(venv / "bin" / "gupctl"), "vm", "--", "gupctl", "bench", "--check-balance",
             "pin_fast_benchmark", "pin_longterm_benchmark"],
        ]  # fmt: skip
        for argv in steps:
            print(f"==> {' '.join(argv)}", flush=True)
            if subprocess.run(argv, cwd=work, env=env).returncode != 0:
                return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["sdist-install"]:
        sys.exit(__doc__)
    sys.exit(sdist_install())
