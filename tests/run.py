"""Run every check gupctl has: lint, unit tests, kmod builds, kernel tests in VMs.

    python tests/run.py                 # everything (the README's test command)
    python tests/run.py --unit          # lint and unit tests only
    python tests/run.py --kernel 6.1    # kernel tests on one kernel only (also source:7.3)

Each step's output streams through; the last line sums up the test counts.
A kernel test step boots gupctl's VM (`gupctl vm`) on a Debian kernel with
the kmod, and runs tests/kernel inside it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
#: Kernels for the VM tests: Debian's with the kmod (7.3 from trixie-backports,
#: fetched into gupctl's cache), and 6.12 and 7.3 built from Debian's
#: linux-source with CONFIG_GUP_TEST=y (gupctl/vm/gup_test.config).
KERNELS = {"7.3": "Debian 7.3 + kmod", "6.12": "Debian 6.12 + kmod", "6.1": "Debian 6.1 + kmod",
           "source:7.3": "7.3 with the in-kernel gup_test",
           "source:6.12": "6.12 with the in-kernel gup_test"}  # fmt: skip
#: Debian kernels the kmod must build against with -Werror.
KMOD_KERNELS = ("7.3", "6.12", "6.1")
SHELL_FILES = [".ci/run", ".ci/setup", ".ci/provision", "gupctl/vm/guest-init.sh"]
SUMMARY = re.compile(r"=+ (.*\b(passed|failed|error|errors|skipped|no tests ran)\b.*) in [\d.]+s")


class Totals:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0
        self.steps_failed: list[str] = []

    def add_pytest(self, summary: str) -> None:
        for count, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary):
            if word == "passed":
                self.passed += int(count)
            elif word == "skipped":
                self.skipped += int(count)
            else:
                self.failed += int(count)


def step(name: str, argv: list[str], totals: Totals, env: dict[str, str] | None = None) -> None:
    """Run one step, teeing its output; count pytest results; note failures."""
    print(f"\n==> {name}: {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    summary = None
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        m = SUMMARY.search(line)
        if m:
            summary = m.group(1)
    status = proc.wait()
    if summary:
        totals.add_pytest(summary)
    if status != 0:
        totals.steps_failed.append(name)
        if not summary:
            totals.failed += 1  # a failed step that is not a test run counts once


def checkpatch() -> Path:
    """scripts/checkpatch.pl (and the files it reads) from Debian's linux-source-6.12."""
    from gupctl.cache import cache_dir

    dest = cache_dir() / "checkpatch"
    script = dest / "scripts" / "checkpatch.pl"
    if script.exists():
        return script
    from gupctl.vm.build import extract

    tarball = Path("/usr/src/linux-source-6.12.tar.xz")
    wanted = ["scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch"]
    missing = extract(tarball, wanted, dest)
    if missing:
        sys.exit(f"{tarball} lacks {', '.join(missing)}")
    return script


def lint(totals: Totals) -> None:
    python = ["gupctl", "tests", "benchmarks"]
    step("ruff", [PY, "-m", "ruff", "check", *python], totals)
    step("ruff format", [PY, "-m", "ruff", "format", "--check", *python], totals)
    step("mypy", [PY, "-m", "mypy"], totals)
    shell = [f for f in SHELL_FILES if (ROOT / f).exists()]
    step("shellcheck", ["shellcheck", *shell], totals)
    kmod = [
        "kmod/gupctl.c",
        "kmod/gup_test.h",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "kmod/probes").glob("*.c")),
    ]
    checkpatch_argv = ["perl", str(checkpatch()), "--no-tree", "--strict", "-q"]
    step("checkpatch", [*checkpatch_argv, "-f", *kmod], totals)


def kmod_builds(totals: Totals) -> None:
    """kmod/ against each Debian kernel's headers, warnings as errors."""
    from gupctl.vm import kmod, resolve

    for series in KMOD_KERNELS:
        k = resolve.find(series)
        work = Path(f"/tmp/gupctl-kmod-check-{k.release}")
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "kmod", work)
        step(f"kmod build {k.release}", kmod.make_argv(k, work, "KCFLAGS=-Werror"), totals)
        shutil.rmtree(work, ignore_errors=True)


#: Kernels that run the full selftest (294 cases, minutes under TCG); the others run
#: test_selftest.py's SUBSET, the cases where kernels differ, so that a cold CI run
#: of all five kernels stays well inside its 90 minutes.
FULL_SELFTEST = ("7.3", "source:7.3")


def kernel_tests(totals: Totals, series: str) -> None:
    # -rP: the output of passed tests too, so the log shows the selftest's KTAP.
    skip = "test_selftest_subset" if series in FULL_SELFTEST else "test_full_selftest"
    pytest = [PY, "-m", "pytest", "tests/kernel", "-v", "-rP", "-p", "no:cacheprovider",
              "-k", f"not {skip}"]  # fmt: skip
    kmod = "--no-kmod" if series.startswith("source") else "--kmod"
    step(f"kernel tests on {KERNELS.get(series, series)}",
         [PY, "-m", "gupctl", "vm", "--kernel", series, kmod, "--", *pytest], totals)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", action="store_true", help="lint and unit tests only")
    parser.add_argument("--kernel", action="append", help="kernel series for the VM tests")
    args = parser.parse_args()
    totals = Totals()
    lint(totals)
    step("unit tests", [PY, "-m", "pytest", "tests/unit", "-p", "no:cacheprovider"], totals)
    if not args.unit:
        kmod_builds(totals)
        # The static i386 clients of tests/kernel/test_compat32.py, built on the
        # host (into the cache the guest reads) rather than in each guest.
        step("compat32 clients", [PY, "tests/compat32.py"], totals)
        # After the kmod builds, which fetch what these read (7.3's headers).
        step("kernel facts", [PY, "-m", "pytest", "tests/facts", "-p", "no:cacheprovider"], totals)
        for series in args.kernel or KERNELS:
            kernel_tests(totals, series)
    if totals.steps_failed:
        print(f"\nfailed steps: {', '.join(totals.steps_failed)}")
    print(f"\ntests: {totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped")
    return 1 if totals.steps_failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
