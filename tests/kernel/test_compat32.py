"""32-bit (i386) processes on the 64-bit kernel, through gupctl.ko's compat_ioctl.

Static i386 clients (tests/compat32.py) run against /dev/gup_test: upstream's
gup_test.c must move node 1's pin counters exactly as the 64-bit gupctl does
for the same request, and compat32 covers what gup_test.c does not (the
PIN_LONGTERM_TEST_* commands, the size written back, validation).

Upstream's gup_test opens /sys/kernel/debug/gup_test and nothing else, and
debugfs's proxy has no compat_ioctl: the binary runs unmodified in a private
mount namespace with /dev/gup_test bind-mounted over that path.  Its memory
lands on node 1 because the child calls set_mempolicy(MPOL_BIND) before
exec: a task's memory policy survives execve() (numactl --membind works so).
Both happen in the forked child itself, with no helper process (unshare,
mount, a shell) in between: those are dynamically linked, and the library
reads of a process bound to node 1 pin pages there (9p reads into user
buffers), which moved the counters by some 25 pins a run.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import oracle_counters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import compat32  # noqa: E402
import upstream_names  # noqa: E402

# The misc device is the kmod's; the compat ABI is x86_64's i386 one.
pytestmark = [pytest.mark.kmod, pytest.mark.x86_64]

DEVICE = "/dev/gup_test"
DEBUGFS = "/sys/kernel/debug/gup_test"
PAGE = os.sysconf("SC_PAGE_SIZE")
# <sched.h>, <sys/mount.h>
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000


def _missing(reason: str) -> None:
    """Fail in CI and in the VM, where everything must be there; skip elsewhere."""
    if os.environ.get("CI") or os.environ.get("GUPCTL_IN_VM"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bins() -> Path:
    """gup_test32 and compat32, built (or found in the cache) and runnable."""
    try:
        path = compat32.build()
    except compat32.Missing as e:
        _missing(str(e))
    try:
        subprocess.run([str(path / "compat32")], capture_output=True, check=False)
    except OSError as e:
        if e.errno != errno.ENOEXEC:
            raise
        _missing("this kernel cannot run i386 programs (CONFIG_IA32_EMULATION, "
                 "ia32_emulation=)")  # fmt: skip
    if not Path(DEVICE).exists():
        _missing(f"no {DEVICE}: is gupctl.ko loaded?")
    return path


def run32(
    argv: list[str], node: int | None, debugfs_is_device: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run an i386 client with its memory bound to `node`, and if asked with
    /dev/gup_test bind-mounted over the debugfs file in a mount namespace of
    its own: both set up in the child between fork and exec."""
    from gupctl.numa import bind_task

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            raise OSError(ctypes.get_errno(), what)

    def child() -> None:
        if debugfs_is_device:
            check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount / private")
            check(libc.mount(DEVICE.encode(), DEBUGFS.encode(), None, MS_BIND, None),
                  f"mount --bind {DEVICE} {DEBUGFS}")  # fmt: skip
        if node is not None:
            bind_task(node)

    return subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=child)


def counted32(
    argv: list[str], node: int | None
) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """run32(), and node `node`'s acquired and released deltas around it."""
    before = oracle_counters(node)
    proc = run32(argv, node)
    after = oracle_counters(node)
    return proc, after[0] - before[0], after[1] - before[1]


def upstream(
    bins: Path, node: int | None, *args: str
) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """gup_test32 ARGS on /dev/gup_test, and node `node`'s deltas around it."""
    if not Path(DEBUGFS).exists():
        pytest.fail(f"no {DEBUGFS} to bind-mount {DEVICE} over (gupctl.ko debugfs=0?)")
    before = oracle_counters(node)
    proc = run32([str(bins / "gup_test32"), *args], node, debugfs_is_device=True)
    after = oracle_counters(node)
    return proc, after[0] - before[0], after[1] - before[1]


@upstream_names.each_gup_test_command
def test_i386_gup_test_pins_like_gupctl(
    bins: Path, counted, node, option: str, kind: str, command: str, pins: int, per_call: str
) -> None:
    run = upstream_names.gup_test_run(option, kind, command, pins, per_call, PAGE)
    proc, acquired32, released32 = upstream(bins, node, *run.upstream)
    assert proc.returncode == 0 and upstream_names.gup_test_passed(proc.stdout), proc.stdout
    _, acquired64, released64 = counted(*run.gupctl, "--device", DEVICE)
    assert (acquired32, released32) == (run.pins, run.pins)
    assert (acquired64, released64) == (acquired32, released32)


def test_i386_longterm_pins_like_gupctl(bins: Path, counted, node) -> None:
    pages = 64
    proc, acquired32, released32 = counted32(
        [str(bins / "compat32"), "longterm", DEVICE, str(pages)], node
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not ok" not in proc.stdout and proc.stdout.count("ok ") == 4, proc.stdout
    data, acquired64, released64 = counted("longterm", "read", "--device", DEVICE, "-s",
                                           f"{pages * PAGE}")  # fmt: skip
    assert data["matched"] == pages
    assert (acquired32, released32) == (pages, pages) == (acquired64, released64)


def test_i386_size_written_back_and_nothing_beyond(bins: Path, node) -> None:
    proc, acquired, released = counted32([str(bins / "compat32"), "layout", DEVICE], node)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (acquired, released) == (4, 4)


def test_i386_fields_still_validated(bins: Path, node) -> None:
    proc, acquired, released = counted32([str(bins / "compat32"), "einval", DEVICE], node)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not ok" not in proc.stdout and proc.stdout.count("ok ") == 8, proc.stdout
    assert (acquired, released) == (0, 0)


def test_i386_on_debugfs_is_enotty(bins: Path) -> None:
    """debugfs's proxy drops compat_ioctl: 32-bit callers must use /dev/gup_test."""
    if not Path(DEBUGFS).exists():
        pytest.fail(f"no {DEBUGFS} (gupctl.ko debugfs=0?)")
    proc = run32([str(bins / "compat32"), "debugfs", DEBUGFS], None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
