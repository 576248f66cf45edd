"""Kernel tests: the real gupctl against a real gup_test, checked by independent oracles.

They run inside gupctl's VM (tests/run.py starts it) or on any machine whose
kernel has gup_test.  Where none is found they fail in the VM or in CI, and
skip only on a developer's machine outside both.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gupctl import kmsg
from gupctl.vm import arch as vm_arch

DEVICES = ("/sys/kernel/debug/gup_test", "/dev/gup_test")
PROBLEM = kmsg.PROBLEM


def pytest_report_header(config: pytest.Config) -> str:
    """The kernel these tests run on, as its own uname says, at the top of the log."""
    u = os.uname()
    if os.path.exists("/sys/module/gupctl"):
        served = "gupctl's kmod"
    elif any(os.path.exists(d) for d in DEVICES):
        served = "the in-kernel gup_test"
    else:
        served = "nothing"
    return f"kernel: uname -m {u.machine}, uname -r {u.release}; gup_test served by {served}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-1g", action="store_true",
                     help="the full selftest leaves out cow.c's 1 GB huge page cases")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kmod: tests of gupctl's kmod, not of gup_test's ABI")
    config.addinivalue_line("markers", "lockdown: tests of a kernel booted with lockdown=")
    config.addinivalue_line("markers", "extract: GUPCTL_EXTRACT where it works: the kmod on "
                            "a kernel with iov_iter_extract_pages()")  # fmt: skip
    config.addinivalue_line("markers", "no_extract: GUPCTL_EXTRACT where it cannot work")
    config.addinivalue_line("markers", "x86_64: tests of an x86_64 kernel's own ABIs (i386)")
    config.addinivalue_line("markers", "huge: tests of hugetlb or THP, which a machine whose "
                            "record says huge=False (s390x under TCG) cannot map")  # fmt: skip


def extract_available() -> bool:
    """Whether GUPCTL_EXTRACT can work here: gupctl's kmod is loaded, and the
    kernel has iov_iter_extract_pages() (v6.3+), as /proc/kallsyms lists it:
    the kernel's word, not the kmod's probe."""
    if not os.path.exists("/sys/module/gupctl"):
        return False
    with open("/proc/kallsyms") as f:
        return any(line.rstrip().endswith(" iov_iter_extract_pages") for line in f)


def locked_down() -> bool:
    """Whether this kernel is locked down, or its command line asks it to be (so
    that a kernel ignoring lockdown= fails the lockdown tests, not skips them)."""
    from gupctl import lockdown

    try:
        asked = "lockdown=" in Path("/proc/cmdline").read_text()
    except OSError:
        asked = False
    return asked or lockdown.restricts_debugfs(lockdown.level())


def _deselect(config: pytest.Config, items: list[pytest.Item], marker: str, on: bool) -> None:
    """Deselect the items that carry `marker` (on) or lack it (not on)."""
    drop = [i for i in items if bool(i.get_closest_marker(marker)) == on]
    config.hook.pytest_deselected(items=drop)
    items[:] = [i for i in items if i not in drop]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Lockdown's tests apply only under lockdown, and only they: the others run
    # in the VMs without it (deselected, not skipped: nothing is missing).
    _deselect(config, items, "lockdown", on=not locked_down())
    # x86's i386 ABI exists only there (deselected elsewhere: nothing is missing).
    if platform.machine() != "x86_64":
        _deselect(config, items, "x86_64", on=True)
    # The machine's record, not the guest, says whether huge pages can exist:
    # a kernel that lost them where they can fails.
    if not vm_arch.running().huge:
        _deselect(config, items, "huge", on=True)
    if any(os.path.exists(d) for d in DEVICES):
        # Deselected, not skipped: where the kernel lacks the feature the
        # no_extract tests check the refusal instead.
        _deselect(config, items, "no_extract" if extract_available() else "extract", on=True)
        if not os.path.exists("/sys/module/gupctl"):
            # The kernel's own gup_test: tests of the kmod do not apply (deselected,
            # not skipped: nothing is missing).
            _deselect(config, items, "kmod", on=True)
        return
    reason = "no gup_test device (tests/run.py runs these in the VM)"
    if os.environ.get("GUPCTL_IN_VM") or os.environ.get("CI"):
        # A kernel test that cannot find its kernel fails; never a skip.
        pytest.exit(f"{reason}: kernel tests cannot run", returncode=1)
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def oracle_counters(node: int | None) -> tuple[int, int]:
    """nr_foll_pin_acquired/released read directly, not through gupctl."""
    Path("/proc/sys/vm/stat_refresh").write_text("1")
    path = Path(f"/sys/devices/system/node/node{node}/vmstat" if node is not None
                else "/proc/vmstat")  # fmt: skip
    values = dict(line.split() for line in path.read_text().splitlines())
    return int(values["nr_foll_pin_acquired"]), int(values["nr_foll_pin_released"])


@pytest.fixture(scope="session")
def node() -> int | None:
    """The NUMA node holding only test memory ($GUPCTL_NUMA_NODE, set by the VM)."""
    value = os.environ.get("GUPCTL_NUMA_NODE")
    return int(value) if value else None


@pytest.fixture(scope="session")
def exact(node) -> bool:
    """Whether pins can be counted exactly: on a memory-only node, which
    gupctl's VM makes on every machine whose QEMU takes -numa.  Elsewhere
    (s390x) gupctl counts between control windows and labels it `system`."""
    if node is None and vm_arch.running().numa:
        pytest.fail("exact balance needs a memory-only node: run in gupctl's VM")
    return node is not None


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@pytest.fixture
def gupctl():
    """Run the real gupctl command line in a child process."""

    def run(*args: str, check: bool = True, timeout: float = 600) -> Ran:
        proc = subprocess.run([sys.executable, "-m", "gupctl", *args], capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        ran = Ran(proc.returncode, proc.stdout, proc.stderr)
        if check:
            assert ran.returncode == 0, f"gupctl {' '.join(args)} failed: {ran.stderr}"
        return ran

    return run


@pytest.fixture
def counted(gupctl, node):
    """Run `gupctl ARGS... --json`: its JSON, and the node's acquired and
    released deltas around it, read by oracle_counters()."""

    def run(*args: str) -> tuple[Any, int, int]:
        before = oracle_counters(node)
        data = gupctl(*args, "--json").json()
        after = oracle_counters(node)
        return data, after[0] - before[0], after[1] - before[1]

    return run


@pytest.fixture(autouse=True)
def dmesg_stays_clean():
    """No WARN, BUG, oops or "gup_test failure" appears while a test runs, except
    between kmsg.EXPECTED_BEGIN and EXPECTED_END (upstream's known WARNs).

    Read through /dev/kmsg from its end, not by counting dmesg's lines: a test
    that fills the ring buffer (the fuzzer) would rotate problems out of sight."""
    log = kmsg.KernelLog()
    try:
        yield
        bad = kmsg.problems(log.read_new())
    finally:
        log.close()
    assert not bad, "kernel problems during the test:\n" + "\n".join(bad)


@pytest.fixture
def held(node):
    """Pins outstanding on the memory-only node since the test began
    (procs.outstanding_since(), imported here: procs imports this module)."""
    from procs import outstanding_since

    return outstanding_since(node)


def check_placement(gupctl, node: int | None, pattern: str, cases: int, region: str) -> None:
    """`gupctl selftest PATTERN` (placement cases): all `cases` pass, every
    longterm pin moved its pages out of `region` and every short-term pin
    left them there, and the node's pins balance."""
    before = oracle_counters(node)
    report = gupctl("selftest", "--json", pattern, check=False).json()
    after = oracle_counters(node)
    bad = [f"{r['name']}: {r['status']} {r.get('reason')}" for r in report["results"]
           if r["status"] != "pass"]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert report["counts"]["pass"] == cases
    longterm = [r for r in report["results"] if ".longterm." in r["name"]]
    assert all(r["details"]["moved"] > 0 for r in longterm)  # the pins moved pages
    assert all(region not in r["details"]["zones_after"] for r in longterm)
    short = [r for r in report["results"] if ".shortterm." in r["name"]]
    assert all(r["details"]["moved"] == 0 for r in short)
    assert all(r["details"]["zones_after"] == [region] for r in short)
    if node is not None:
        assert after[0] - before[0] == after[1] - before[1] > 0
