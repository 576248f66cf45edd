"""SIGINT, SIGTERM and SIGHUP at any point of a command leave nothing behind.

Each case starts a real gupctl command that would run far longer than the
test waits, sends it one signal after a delay, and checks what it left:

- the exit status is the shell's: 128 + N once gupctl's handlers are in place
  (gupctl/cli/signals.py), or death by the signal itself before Python has
  installed them (the shell shows the same 128 + N);
- no traceback on stderr;
- no file it made: the `--create` backing file, `--save` and `--junit` output
  and their temporaries (the command's directory must be empty again);
- no mount, no loop device, no /dev/shm scratch directory;
- no process of its own (selftest's case children, their COW sharers);
- no pin outstanding on the memory-only node (acquired delta == released delta);
- a clean kernel log (conftest's autouse fixture).

Each command gets each signal once, at one of three phases: during Python's
start-up (its imports), as soon as its set-up exists (the created file, the
loop mount, the first pins), or a random time into the work.  Which signal
goes where, and the delays, come from a seeded generator, printed so that a
failure can be replayed (GUPCTL_SIGNAL_SEED).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import oracle_counters

SEED = int(os.environ.get("GUPCTL_SIGNAL_SEED") or random.randrange(1 << 32))
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Commands that each run for minutes under TCG unless stopped, over every
#: kind of state a signal could strand: a created file, a loop-mounted ext4,
#: forked case children, output written at the end, held longterm pins.
COMMANDS = {
    "bench": lambda d: ["bench", "pin_fast_benchmark", "gup_fast_benchmark", "-s", "2M",
                        "-r", "10000000", "--file", f"{d}/backing", "--create",
                        "--save", f"{d}/runs.json", "--check-balance"],
    "test": lambda d: ["test", "pin_basic_test", "gup_basic_test", "-s", "4M", "-r", "10000000",
                       "--memfd"],
    "selftest": lambda d: ["selftest", "-s", "2M", "--junit", f"{d}/junit.xml",
                           "longterm.ext4.*", "pin.*"],
    "longterm": lambda d: ["longterm", "start", "-s", "4M", "-w", "--file", f"{d}/backing",
                           "--create"],
}  # fmt: skip
#: When each command has reached its set-up (something to clean up exists).
READY = {
    "bench": lambda d, node, base: (d / "backing").exists(),
    "test": lambda d, node, base: oracle_counters(node)[0] > base[0],
    "selftest": lambda d, node, base: any("/dev/loop" in m for m in _mounts()),
    "longterm": lambda d, node, base: _outstanding(node) > base[0] - base[1],
}


def _plan() -> list[tuple[str, signal.Signals, str]]:
    """Every command gets every signal once, each at another phase: in Python's
    start-up, as soon as its set-up exists, or some time into the work."""
    rng = random.Random(SEED)
    plan = []
    for name in COMMANDS:
        phases = ["start-up", "set-up", "work"]
        rng.shuffle(phases)
        plan += [(name, sig, phase) for sig, phase in zip(SIGNALS, phases)]
    return plan


class _Stderr(threading.Thread):
    """Drains the command's stderr; notes when Python has imported gupctl.

    For the start-up phase the command runs with PYTHONPROFILEIMPORTTIME=1:
    before the line for `gupctl` a signal lands in CPython's own start-up
    (site, the venv's .pth files), where no code of gupctl's runs yet and a
    SIGINT is CPython's "Fatal Python error"; after it come click, rich and
    gupctl's commands, gupctl's start-up."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines, self.imported = stream, [], threading.Event()

    def run(self) -> None:
        for line in self.stream:
            if line.startswith("import time:"):
                if line.rstrip().endswith("| gupctl"):
                    self.imported.set()
            else:
                self.lines.append(line)

    def text(self) -> str:
        self.join(timeout=30)
        return "".join(self.lines)


def _wait_for(phase: str, proc: subprocess.Popen, err: _Stderr, ready,
              rng: random.Random) -> str:  # fmt: skip
    """Sleep until `phase` of `proc`; say how long that took."""
    start = time.monotonic()
    if phase == "start-up":
        assert err.imported.wait(timeout=120), "gupctl was never imported"
        time.sleep(rng.uniform(0, 1.0))
    else:
        while not ready() and proc.poll() is None and time.monotonic() - start < 120:
            time.sleep(0.02)
        assert ready(), f"never reached its set-up in {time.monotonic() - start:.0f} s"
        if phase == "work":
            time.sleep(rng.uniform(0.1, 2.0))
    return f"{time.monotonic() - start:.2f} s"


def _mounts() -> list[str]:
    return sorted(Path("/proc/self/mounts").read_text().splitlines())


def _loops() -> list[str]:
    return sorted(str(p) for p in Path("/sys/block").glob("loop*/loop/backing_file"))


def _procs(tag: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if p.name.isdigit() and tag in cmdline:
            found.append(f"{p.name}: {cmdline.strip()}")
    return found


def _outstanding(node: int | None) -> int:
    acquired, released = oracle_counters(node)
    return acquired - released


def _before_gupctl(stderr: str, sig: signal.Signals) -> bool:
    """Whether `stderr` is CPython's KeyboardInterrupt from before gupctl's first
    line: SIGINT while runpy still looks for the module, every frame frozen.
    The interpreter installs its SIGINT handler before it runs any of the
    program, and nothing a program can do reaches further back (__main__.py
    catches it from its own first line on).  The exit is still 130."""
    frames = re.findall(r'^\s*File "([^"]*)"', stderr, re.MULTILINE)
    return (
        sig == signal.SIGINT
        and stderr.rstrip().endswith("KeyboardInterrupt")
        and stderr.count("Traceback") == 1
        and all(f.startswith("<frozen ") for f in frames)
    )


def test_seed_is_printed() -> None:
    print(f"signal test seed: GUPCTL_SIGNAL_SEED={SEED}")


@pytest.mark.parametrize(("name", "sig", "phase"), _plan(),
                         ids=lambda v: getattr(v, "name", str(v)))  # fmt: skip
def test_signal_leaves_nothing_behind(name: str, sig: signal.Signals, phase: str,
                                      node: int | None, tmp_path: Path) -> None:  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    before = (_mounts(), _loops(), sorted(os.listdir("/dev/shm")), _outstanding(node))
    base = oracle_counters(node)
    rng = random.Random(f"{SEED}{name}{sig}")
    env = {**os.environ, **({"PYTHONPROFILEIMPORTTIME": "1"} if phase == "start-up" else {})}
    argv = [sys.executable, "-m", "gupctl", *COMMANDS[name](work)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    err = _Stderr(proc.stderr)
    err.start()
    delay = _wait_for(phase, proc, err, lambda: READY[name](work, node, base), rng)
    assert proc.poll() is None, f"{name} ended before the signal: {err.text()}"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    stderr = err.text()
    where = f"(seed {SEED}: {name}, {sig.name} in {phase}, after {delay})"
    if not _before_gupctl(stderr, sig):
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, f"{where}\n{stderr}"
    # longterm's documented end of a hold is a signal: it unpins, reports, exits 0.
    allowed = {128 + sig, -sig} | ({0} if name == "longterm" else set())
    assert proc.returncode in allowed, f"{where} exit {proc.returncode}: {stderr}"
    assert sorted(os.listdir(work)) == [], f"{where} left files behind"
    assert _procs(str(work)) == [], f"{where} left processes behind"
    after = (_mounts(), _loops(), sorted(os.listdir("/dev/shm")), _outstanding(node))
    assert after[0] == before[0], f"{where} left a mount behind"
    assert after[1] == before[1], f"{where} left a loop device behind"
    assert after[2] == before[2], f"{where} left /dev/shm scratch behind"
    assert after[3] == before[3], f"{where} left {after[3] - before[3]} pins outstanding"
