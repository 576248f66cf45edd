"""What a PIN_LONGTERM_TEST START/STOP loop costs a second process's mmap(),
with the kmod before issue 22 (an mmu_notifier registered per START) and
after it (one per mm, mmu_notifier_get()).

    python benchmarks/notifier.py [--kernel 7.3] [--rounds 8] [--before REV]

Registering a notifier runs mm_take_all_locks(): the global
mm_all_locks_mutex, then every anon_vma lock and i_mmap_rwsem of the
caller's VMAs, libc's and python's among them.  A second process that
maps and unmaps one of those files needs that i_mmap_rwsem for writing.
One boot per kmod: in the guest, process B (bound to CPU 0) times batches
of mmap()+munmap() of the python binary, in rounds that alternate idle
with process A (CPU 1) looping START/STOP on one page.  Prints, per kmod,
B's loaded/idle ratio with its 95% interval (benchmarks/stats.py) and A's
START/STOP rate.  A benchmark: it reports, it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import stats  # noqa: E402

BEFORE = "e748d48~1"  # the kmod as issue 22 found it
BATCH, BATCHES = 100, 30  # mmap()+munmap() pairs per sample, samples per round


def _starts_stops(counter: int) -> None:
    """Process A: START/STOP one page until SIGTERM; the count goes to `counter`.
    Never returns: a forked copy of the caller."""
    from gupctl import longterm
    from gupctl.device import Device
    from gupctl.errors import DeviceError
    from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

    n, began = 0, time.monotonic()
    try:
        os.sched_setaffinity(0, {1})
        done = [False]
        signal.signal(signal.SIGTERM, lambda *_: done.__setitem__(0, True))
        with Device("/dev/gup_test") as dev, Mapping(MemorySpec(), PAGE_SIZE) as m:
            os.write(counter, b"+")  # looping from now on
            began = time.monotonic()
            while not done[0]:
                try:
                    longterm.start(dev, m.addr, PAGE_SIZE, write=True, fast=False)
                except DeviceError:
                    if done[0]:  # mm_take_all_locks() gives up for the signal: -EINTR
                        break
                    raise
                longterm.stop(dev)
                n += 1
    finally:
        os.write(counter, json.dumps([n, time.monotonic() - began]).encode())
        os._exit(0)


def _maps(path: str) -> list[float]:
    """Process B's samples: µs per mmap()+munmap() of `path`, BATCHES of BATCH."""
    out = []
    with open(path, "rb") as f:
        for _ in range(BATCHES):
            began = time.perf_counter_ns()
            for _ in range(BATCH):
                mmap.mmap(f.fileno(), mmap.PAGESIZE, mmap.MAP_PRIVATE, mmap.PROT_READ).close()
            out.append((time.perf_counter_ns() - began) / BATCH / 1000)
    return out


def guest(rounds: int) -> dict:
    """Alternating idle and loaded rounds, in the guest with the kmod loaded."""
    os.sched_setaffinity(0, {0})
    idle, loaded, rates = [], [], []
    for _ in range(rounds):
        idle.append(_maps(sys.executable))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _starts_stops(w)
        os.close(w)
        with os.fdopen(r, "rb") as from_a:
            assert from_a.read(1) == b"+", "process A ended before it looped"
            loaded.append(_maps(sys.executable))
            os.kill(pid, signal.SIGTERM)
            n, seconds = json.loads(from_a.read())
        os.waitpid(pid, 0)
        rates.append(n / seconds)
    return {"idle": idle, "loaded": loaded, "starts_per_s": rates}


def host(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="gupctl-notifier-") as tmp:
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.before, "kmod"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for label, kmod_dir in ((f"before ({args.before})", f"{tmp}/kmod"), ("after", None)):
            env = dict(os.environ)
            if kmod_dir:
                env["GUPCTL_KMOD_DIR"] = kmod_dir
            inside = [sys.executable, str(HERE / "notifier.py"), "--guest", "--rounds",
                      str(args.rounds)]  # fmt: skip
            out = subprocess.run(
                [sys.executable, "-m", "gupctl", "vm", "--kernel", args.kernel, "--kmod", "--",
                 *inside], env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
            data = json.loads(out.strip().splitlines()[-1])
            r = stats.ratio(data["idle"], data["loaded"])
            idle = stats.pooled_median(data["idle"])
            rate = sorted(data["starts_per_s"])[len(data["starts_per_s"]) // 2]
            print(f"{args.kernel} kmod {label}: mmap+munmap {idle:.1f} µs idle, "
                  f"x{r.value:.3f} [{r.low:.3f}, {r.high:.3f}] while another process "
                  f"loops START/STOP ({rate:.0f} a second)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="7.3")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--before", default=BEFORE, help="git revision of the old kmod")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guest:
        print(json.dumps(guest(args.rounds)))
    else:
        host(args)


if __name__ == "__main__":
    main()
