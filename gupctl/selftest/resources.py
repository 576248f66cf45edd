"""What the selftest sets up once, and undoes: a scratch ext4 filesystem, swap,
huge page pools and THP sizes.

gup_longterm.c needs a file on a filesystem with writeback (ext4, xfs, btrfs)
to see R/W longterm pins refused.  Where none is given, a loop-mounted image
in tmpfs serves (root, mkfs.ext4 and loop support needed).  cow.c's
swapped-out layouts need swap: where there is none, a loop device over tmpfs
serves (root, mkswap and swapon).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

IMAGE_MB = 64


def _run(*argv: str) -> str | None:
    """None when `argv` succeeded; else why not, in one line."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return f"{argv[0]} failed: {last}"


@contextmanager
def scratch_ext4(where: str = "/dev/shm") -> Iterator[tuple[str | None, str]]:
    """Yield (the mount point of a fresh ext4 filesystem, "") or (None, why not):
    the step that failed (mkfs.ext4 missing, mkfs or mount failing) and what
    it said.  Everything it created is removed on exit.
    """
    if not shutil.which("mkfs.ext4"):
        yield None, "mkfs.ext4 is not installed (e2fsprogs)"
        return
    work = Path(tempfile.mkdtemp(prefix="gupctl-ext4-", dir=where))
    image, mnt = work / "image", work / "mnt"
    mounted = False
    try:
        with open(image, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        mnt.mkdir()
        # The kernel may have ext4 and loop as modules (Debian): load them.
        _run("modprobe", "-q", "loop")
        _run("modprobe", "-q", "ext4")
        why = _run("mkfs.ext4", "-q", "-F", str(image)) or _run(
            "mount", "-t", "ext4", "-o", "loop", str(image), str(mnt))  # fmt: skip
        mounted = why is None
        yield (str(mnt), "") if mounted else (None, why or "")
    finally:
        # ismount too: a signal during `mount` (cli/signals.py) ends _run with
        # an exception, the mount may be made all the same.
        if mounted or os.path.ismount(mnt):
            _run("umount", str(mnt))
        shutil.rmtree(work, ignore_errors=True)


SWAP_MB = 64  # cow.c's largest swapped-out layout is one PMD-sized THP


def swap_active() -> bool:
    """Whether any swap is on (/proc/swaps lists more than its header)."""
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) > 1
    except OSError:
        return False  # a kernel without CONFIG_SWAP has no /proc/swaps


@contextmanager
def scratch_swap(where: str = "/dev/shm") -> Iterator[str]:
    """Swap for cow.c's swapped-out layouts where the machine has none: a
    SWAP_MB file in tmpfs over a loop device, on for the block, then off and
    gone.  Yields "" when swap is there (the machine's, or this), else why
    not; then those cases skip, as cow.c's do on a machine without swap."""
    if swap_active():
        yield ""
        return
    work = Path(tempfile.mkdtemp(prefix="gupctl-swap-", dir=where))
    image, loop = work / "image", ""
    try:
        with open(image, "wb") as f:
            f.truncate(SWAP_MB << 20)
        _run("modprobe", "-q", "loop")
        proc = subprocess.run(["losetup", "--find", "--show", str(image)],
                              capture_output=True, text=True)  # fmt: skip
        loop = proc.stdout.strip()
        why = (None if loop else f"losetup failed: {proc.stderr.strip()}") or _run(
            "mkswap", "-q", loop) or _run("swapon", loop)  # fmt: skip
        yield why or ""
    finally:
        if loop:  # swapoff too if swapon failed: a signal may have cut it short after its work
            _run("swapoff", loop)
            _run("losetup", "--detach", loop)
        shutil.rmtree(work, ignore_errors=True)


HUGEPAGES = Path("/sys/kernel/mm/hugepages")


def hugepages_root(node: int | None) -> Path:
    """The pools the cases draw from: node `node`'s when they are bound to it
    (a task bound by MPOL_BIND may reserve only the free huge pages of its
    nodes: hugetlb_acct_memory()), else the system's."""
    if node is None:
        return HUGEPAGES
    return Path(f"/sys/devices/system/node/node{node}/hugepages")


@contextmanager
def hugetlb_pools(need: dict[int, int], root: Path = HUGEPAGES) -> Iterator[None]:
    """Pools of huge pages under `root` with `need[size]` free pages of each
    size for the block, as upstream's hugetlb_setup() grows them (vm_util.c):
    each pool short of pages is grown by what it lacks, and set back to its
    old size on exit.  Where it cannot be grown (not root, no memory), the
    cases that need it skip, as upstream's do."""
    grown: list[tuple[Path, str]] = []
    try:
        for size, pages in need.items():
            pool = root / f"hugepages-{size // 1024}kB"
            try:
                free = int((pool / "free_hugepages").read_text())
                total = (pool / "nr_hugepages").read_text()
                if free < pages:
                    (pool / "nr_hugepages").write_text(str(int(total) + pages - free))
                    grown.append((pool / "nr_hugepages", total))
            except OSError:
                continue  # no such pool, or not root: the cases report it
        yield
    finally:
        for path, total in reversed(grown):
            with contextlib.suppress(OSError):
                path.write_text(total)
