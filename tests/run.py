"""Run every check gupctl has: lint, unit tests, kmod builds, kernel tests in VMs.

    python tests/run.py                 # everything (the README's test command)
    python tests/run.py --unit          # lint and unit tests only
    python tests/run.py --kernel 6.1    # kernel tests on one kernel only (also source:7.3)
    python tests/run.py --no-vm         # all but the VMs; --vm-only --kernel 6.1: only its VM
    python tests/run.py --kernel lockdown   # the lockdown tests only
    python tests/run.py --vm-only --arch ppc64el   # another architecture's steps only

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
#: Kernels for the VM tests: Debian's with the kmod (7.3 from trixie-backports,
#: fetched into gupctl's cache), and 6.12 and 7.3 built from Debian's
#: linux-source with CONFIG_GUP_TEST=y (gupctl/vm/gup_test.config).
KERNELS = {"7.3": "Debian 7.3 + kmod", "6.12": "Debian 6.12 + kmod", "6.1": "Debian 6.1 + kmod",
           "source:7.3": "7.3 with the in-kernel gup_test",
           "source:6.12": "6.12 with the in-kernel gup_test"}  # fmt: skip
#: What .ci/run runs of them.  The in-kernel gup_test is source:7.3's too,
#: from the newest source: source:6.12 repeats it on an older tree, with a
#: kernel build of its own, and makes room for arm64 (issue 24).  It runs
#: through `tests/run.py --kernel source:6.12` and in the GitHub workflow.
CI_KERNELS = ("7.3", "6.12", "6.1", "source:7.3")
#: Debian kernels the kmod must build against with -Werror.
KMOD_KERNELS = ("7.3", "6.12", "6.1")
#: Other architectures' Debian kernels (`gupctl vm --arch`), as ARCH:SERIES,
#: with the kmod cross-built, and what runs on each: "full", the kernel
#: tests (ARCH_FULL_IGNORE aside), the selftest subset and the anchors;
#: "light", the benchmark (every THP size among it), the subset and the
#: anchors (ARCH_LIGHT).  ppc64el and s390x have only trixie's 6.12 in the
#: archive as served here.
ARCH_KERNELS = {"arm64:7.3": "full", "arm64-16k:7.3": "light", "ppc64el:6.12": "light",
                "s390x:6.12": "light"}  # fmt: skip
#: What .ci/run runs of them (the rest: `tests/run.py --arch ARCH`).
CI_ARCH_KERNELS = ("arm64:7.3", "arm64-16k:7.3")
#: The "light" steps.
ARCH_LIGHT = ("tests/kernel/test_bench.py", "tests/kernel/test_thp_sizes.py",
              "tests/kernel/test_selftest.py::test_selftest_subset",
              "tests/kernel/test_anchors.py", "tests/kernel/test_abi_machine.py")  # fmt: skip
#: Kernels whose tests run upstream's gup_test and gup_longterm (tests/anchors.py
#: builds them for the series; 6.1's tree has no gup_longterm).
ANCHOR_KERNELS = ("7.3",)
ANCHOR_TESTS = "tests/kernel/test_anchors.py"
SHELL_FILES = [".ci/run", ".ci/setup", ".ci/user-install", "gupctl/vm/guest-init.sh"]
SUMMARY = re.compile(r"=+ (.*\b(passed|failed|error|errors|skipped|no tests ran)\b.*) in [\d.]+s")


#: CI's limit on one .ci/run, the aim for a cold one (issue 21), and what
#: .ci/setup takes of it on a fresh machine (apt, the venv), outside this script.
LIMIT_MINUTES = 90
AIM_MINUTES = 75
SETUP_MINUTES = 4.5
#: Minutes each part may take on a cold run: what it took on 2 cores under TCG
#: (README, "How long the test run takes": the cold run of 9789109, 64.6
#: minutes with .ci/setup's 4.4), with a margin.  A part is the host steps,
#: one kernel's VM steps, or one whole-install step.  What the parts are not
#: given of AIM_MINUTES - SETUP_MINUTES is kept for what comes next.
BUDGET = {"host": 6.5, "7.3": 16.5, "6.12": 7.5, "6.1": 6, "source:7.3": 11.5,
          "source:6.12": 10, "arm64:7.3": 7.5, "arm64-16k:7.3": 4.5, "ppc64el:6.12": 8,
          "s390x:6.12": 8, "lockdown": 1.5, "sdist": 1, "kernels": 1, "system": 6}  # fmt: skip


class Totals:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0
        self.steps_failed: list[str] = []
        self.spent: dict[str, float] = {}  # part -> seconds
        self.part = "host"

    def budget_lines(self) -> list[str]:
        """What each part was given and spent, in minutes, and what is left."""
        room = AIM_MINUTES - SETUP_MINUTES
        lines = [f"budget: {room} minutes cold ({AIM_MINUTES} aimed at for .ci/run, CI's limit "
                 f"{LIMIT_MINUTES}, less {SETUP_MINUTES} for .ci/setup); by part:"]  # fmt: skip
        for part, seconds in self.spent.items():
            given = BUDGET.get(part)
            over = " (over)" if given is not None and seconds > given * 60 else ""
            shown = "-" if given is None else f"{given:g}"
            lines.append(f"  {part:<12} given {shown:>3}  spent {seconds / 60:5.1f}{over}")
        total = sum(self.spent.values()) / 60
        given = sum(BUDGET.get(part, 0) for part in self.spent)
        lines.append(f"  {'all':<12} given {given:>3}  spent {total:5.1f}; "
                     f"{room - total:.1f} left, {room - sum(BUDGET[p] for p in DEFAULT)} kept "
                     "for what comes next")  # fmt: skip
        return lines

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
    began = time.monotonic()
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
    seconds = time.monotonic() - began
    totals.spent[totals.part] = totals.spent.get(totals.part, 0.0) + seconds
    took = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    print(f"==> {name}: {took}", flush=True)
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
    # .github/workflows (actionlint runs shellcheck on their run: blocks too);
    # the binary comes with the dev extra.
    actionlint = Path(PY).with_name("actionlint")
    missing = [PY, "-c", "import sys; sys.exit('actionlint is missing: pip install -e .[dev]')"]
    step("actionlint", [str(actionlint)] if actionlint.exists() else missing, totals)
    # Every source: the .c files, the uapi and internal headers, the probes;
    # not what a build in kmod/ writes beside them.
    kmod = [
        str(p.relative_to(ROOT))
        for pattern in ("kmod/*.c", "kmod/*.h", "kmod/probes/*.c")
        for p in sorted(ROOT.glob(pattern))
        if not p.name.endswith(".mod.c") and p.name != "gupctl_config.h"
    ]
    checkpatch_argv = ["perl", str(checkpatch()), "--no-tree", "--strict", "-q"]
    step("checkpatch", [*checkpatch_argv, "-f", *kmod], totals)


def kmod_builds(totals: Totals) -> None:
    """kmod/ against each Debian kernel's headers, warnings as errors."""
    from gupctl.vm import kmod, resolve

    for part in (*KMOD_KERNELS, *CI_ARCH_KERNELS):
        arch, _, series = part.rpartition(":")
        k = resolve.find(series, arch=arch or None)
        work = Path(f"/tmp/gupctl-kmod-check-{k.release}")
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "kmod", work)
        step(f"kmod build {k.release}", kmod.make_argv(k, work, "KCFLAGS=-Werror"), totals)
        shutil.rmtree(work, ignore_errors=True)


#: Kernels that run the full selftest (about 950 cases, minutes under TCG):
#: the newest Debian kernel with the kmod.  The others run test_selftest.py's
#: SUBSET, the cases where kernels differ.  source:7.3 ran the full one too
#: until issue 24: the same series' mm, the in-kernel gup_test instead of the
#: kmod; its subset (longterm, cow, dump) and its other kernel tests keep
#: what differs between the two, and the minutes went to arm64.
FULL_SELFTEST = ("7.3",)


#: `gupctl check` measures the kernel's own pin paths, not gup_test: the Debian
#: kernels cover them.  The source kernels (the same series, from a small
#: config) have no SysV shared memory, which fio needs.
CHECK_TESTS = "tests/kernel/test_check.py"


#: Kernels that run tests/kernel/test_signals.py (a minute under TCG): what a
#: signal leaves behind is gupctl's doing, so one kernel of each kind.
SIGNAL_KERNELS = ("7.3", "source:7.3")


def kernel_tests(totals: Totals, series: str) -> None:
    # -rP: the output of passed tests too, so the log shows the selftest's KTAP.
    skip = ["test_selftest_subset" if series in FULL_SELFTEST else "test_full_selftest"]
    if series not in SIGNAL_KERNELS:
        skip.append("test_signal_leaves_nothing_behind")
    # --durations: where a step's minutes go, in every CI log.
    pytest = [PY, "-m", "pytest", "tests/kernel", "-v", "-rP", "-p", "no:cacheprovider",
              "--durations=15",
              "-k", " and ".join(f"not {name}" for name in skip),
              f"--ignore={WINDOWS_TESTS}", f"--ignore={PLACEMENT_TESTS}", f"--ignore={CMA_TESTS}",
              *([] if series in ANCHOR_KERNELS else [f"--ignore={ANCHOR_TESTS}"]),
              *([f"--ignore={CHECK_TESTS}"] if series.startswith("source") else [])]  # fmt: skip
    kmod = "--no-kmod" if series.startswith("source") else "--kmod"
    if series in ANCHOR_KERNELS:
        step(f"upstream anchors {series}", [PY, "tests/anchors.py", "--kernel", series], totals)
    step(f"kernel tests on {KERNELS.get(series, series)}",
         [PY, "-m", "gupctl", "vm", "--kernel", series, kmod, "--", *pytest], totals)  # fmt: skip
    if series == WINDOWS_KERNEL:
        pytest = [PY, "-m", "pytest", *NO_NODE_TESTS, "-v", "-p", "no:cacheprovider"]
        step(f"kernel tests on {KERNELS[series]} without a memory-only node, with "
             f"movablecore={MOVABLECORE}",
             [PY, "-m", "gupctl", "vm", "--kernel", series, kmod, "--no-memory-only-node",
              "--movablecore", MOVABLECORE, "--", *pytest], totals)  # fmt: skip


def arch_tests(totals: Totals, part: str) -> None:
    """ARCH_KERNELS[part]'s steps: upstream's programs built for the
    architecture on the host, then its kernel tests in its VM."""
    arch, series = part.split(":")
    step(f"upstream anchors {part}", [PY, "tests/anchors.py", "--arch", arch, "--kernel",
                                      series], totals)  # fmt: skip
    if ARCH_KERNELS[part] == "full":
        # As on x86_64, less what is x86_64's own (compat32 deselects itself)
        # or one kernel's there: the full selftest, signals, windows.
        tests = ["tests/kernel", "-k", "not test_full_selftest and not "
                 "test_signal_leaves_nothing_behind", f"--ignore={WINDOWS_TESTS}",
                 f"--ignore={PLACEMENT_TESTS}", f"--ignore={CMA_TESTS}"]  # fmt: skip
    else:
        tests = list(ARCH_LIGHT)
    pytest = [PY, "-m", "pytest", *tests, "-v", "-rP", "-p", "no:cacheprovider",
              "--durations=15"]  # fmt: skip
    step(f"kernel tests on {arch} {series}",
         [PY, "-m", "gupctl", "vm", "--arch", arch, "--kernel", series, "--kmod", "--",
          *pytest], totals)  # fmt: skip
    if ARCH_KERNELS[part] == "full":
        pytest = [PY, "-m", "pytest", CMA_TESTS, "-v", "-rP", "-p", "no:cacheprovider"]
        step(f"kernel tests on {arch} {series} with {CMA} of CMA on node 1",
             [PY, "-m", "gupctl", "vm", "--arch", arch, "--kernel", series, "--kmod", "--cma",
              CMA, "--", *pytest], totals)  # fmt: skip


#: The CMA placement cases, in a boot whose node 1 is mostly CMA (so that the
#: pages land there first): arm64's kernels have CONFIG_DMA_NUMA_CMA, x86's
#: no CMA at all.
CMA_TESTS = "tests/kernel/test_cma.py"
CMA = "1536M"


#: The pin balance between control windows (system-wide counters), in a VM
#: shaped like most real machines: no memory-only node.  One short extra boot
#: on one kernel (about a minute and a half under TCG), after its other tests.
WINDOWS_TESTS = "tests/kernel/test_balance_windows.py"
WINDOWS_KERNEL = "6.12"
#: That boot also has a ZONE_MOVABLE, which longterm pins must leave (the
#: selftest's placement.* cases), and runs the per-page oracle of `gupctl pins`,
#: the exact one there.  512M: with 1G the node's ZONE_NORMAL is all 1 GiB
#: huge page, and kernel allocations bound there fail.
MOVABLECORE = "512M"
PLACEMENT_TESTS = "tests/kernel/test_placement.py"
NO_NODE_TESTS = [WINDOWS_TESTS, PLACEMENT_TESTS, "tests/kernel/test_regress.py",
                 "tests/kernel/test_pins.py::test_own_range_while_held_and_after"]  # fmt: skip


#: The kernel tests under lockdown=integrity: 7.3 built from source, with the
#: kmod signed with that build's key (tests/kernel/test_lockdown.py).
LOCKDOWN = "lockdown"


def lockdown_tests(totals: Totals) -> None:
    # Upstream's gup_test from linux-source-7.3, built on the host into the
    # cache the guest reads: minutes under TCG, a second here.
    step("upstream gup_test 7.3", [PY, "tests/kernel/test_lockdown.py"], totals)
    pytest = [PY, "-m", "pytest", "tests/kernel/test_lockdown.py", "-v", "-rP",
              "-p", "no:cacheprovider"]  # fmt: skip
    step("kernel tests on 7.3 locked down (integrity, signed kmod)",
         [PY, "-m", "gupctl", "vm", "--kernel", "source:7.3", "--kmod", "--lockdown",
          "integrity", "--", *pytest], totals)  # fmt: skip


#: Steps that test gupctl as users install it (issue 8), selected like kernels.
WHOLE = {
    # The sdist, installed into a venv outside the checkout: unit tests and a VM.
    "sdist": ("sdist install", [PY, "tests/packaging.py", "sdist-install"]),
    # One benchmark on 6.12 and 7.3 through `gupctl vm --kernel A --kernel B`.
    "kernels": ("one benchmark on two kernels", [PY, "-m", "pytest", "tests/host", "-v",
                                                 "-p", "no:cacheprovider"]),
    # A booted Debian trixie with 7.3: pip install, doctor, kmod install, non-root use.
    "system": ("whole-system test", [PY, "-m", "pytest", "tests/system", "-v", "-rP",
                                     "-p", "no:cacheprovider"]),
}  # fmt: skip


#: .ci/run's parts, in order.
DEFAULT = ("host", *CI_KERNELS, *CI_ARCH_KERNELS, LOCKDOWN, *WHOLE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", action="store_true", help="lint and unit tests only")
    parser.add_argument("--kernel", action="append",
                        help="a kernel for the VM tests (ARCH:SERIES for another "
                        "architecture's), or lockdown, sdist, system")  # fmt: skip
    parser.add_argument("--arch", action="append", choices=sorted({p.split(":")[0] for p in
                        ARCH_KERNELS}), help="another architecture's VM steps "
                        f"({', '.join(ARCH_KERNELS)})")  # fmt: skip
    # CI's jobs (.github/workflows/ci.yml): one --no-vm, then one --vm-only per --kernel.
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--no-vm", action="store_true",
                      help="everything but the VM steps: lint, unit tests, kmod builds, "
                      "compat32 clients, kernel facts")  # fmt: skip
    only.add_argument("--vm-only", action="store_true",
                      help="only the VM steps (of --kernel), and the compat32 clients their "
                      "tests use")  # fmt: skip
    args = parser.parse_args()
    totals = Totals()
    host = not args.vm_only
    if host:
        lint(totals)
        step("unit tests", [PY, "-m", "pytest", "tests/unit", "-p", "no:cacheprovider"], totals)
    if not args.unit:
        if host:
            kmod_builds(totals)
        # The static i386 clients of tests/kernel/test_compat32.py, built on the
        # host (into the cache the guest reads) rather than in each guest.
        step("compat32 clients", [PY, "tests/compat32.py"], totals)
        # After the kmod builds, which fetch what these read (7.3's headers).
        if host:
            step("kernel facts", [PY, "-m", "pytest", "tests/facts", "-p", "no:cacheprovider"],
                 totals)  # fmt: skip
        chosen = [*(args.kernel or []), *(p for p in ARCH_KERNELS
                                          if p.split(":")[0] in (args.arch or []))]  # fmt: skip
        for series in [] if args.no_vm else chosen or DEFAULT[1:]:
            totals.part = series
            if series in ARCH_KERNELS:
                arch_tests(totals, series)
            elif series == LOCKDOWN:
                lockdown_tests(totals)
            elif series in WHOLE:
                step(WHOLE[series][0], WHOLE[series][1], totals)
            else:
                kernel_tests(totals, series)
    if totals.steps_failed:
        print(f"\nfailed steps: {', '.join(totals.steps_failed)}")
    print("\n" + "\n".join(totals.budget_lines()))
    print(f"\ntests: {totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped")
    return 1 if totals.steps_failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
