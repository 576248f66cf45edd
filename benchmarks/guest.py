"""The measurements, run inside gupctl's VM by benchmarks/run.py: raw samples
as JSON on stdout; run.py does the statistics on the host.

Every process measured (upstream's C gup_test, the bare C loop, gupctl) runs
bound to the same memory-only node by set_mempolicy(), as `gupctl check`
binds its command, so that buffer, page tables and all else a run allocates
come from the same node whoever runs it; gupctl also mbinds its buffer there
(--numa-node), which makes its pin balance exact.  A one-thread run is also
bound to one CPU, the same for all: upstream issues its ioctls from a second
thread, free to run on either vCPU, and under TCG a GUP free to move took up
to twice as long, in some processes and not others (the placement part
measures it).  Two-thread runs of the bare loop and of gupctl bind each
thread to a CPU of its own (gupctl bench --cpus).

Each round runs C (A), gupctl (G) and C again (A'), in an order that
changes from round to round (ORDERS): over six rounds each runs twice in
each place, and each runs before each other three times.  Whatever favours a
place (the first run after a THP switch, TCG's translation cache warmed by
the run before) favours none of them, and A against A' is the noise floor.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import loop_profile, strace  # noqa: E402
from gupctl import device, numa  # noqa: E402
from gupctl.memory import anon_huge_bytes  # noqa: E402

COMMANDS = {"gup_fast_benchmark": "-u", "pin_fast_benchmark": "-a", "pin_longterm_benchmark": "-L"}
PER_CALL = {"1": "1", "512": "512", "all": "-1"}  # gupctl's spelling -> C's -n
C_TIME = re.compile(r"Time: get:(\d+) put:(\d+) us")
# Memory set up as gup_test.c does: a private mapping of /dev/zero.  (gupctl's
# default, MAP_ANONYMOUS, is THP-aligned by the kernel since v6.7; a /dev/zero
# mapping is not on 6.12, so with THP on the two would pin different folios.)
LIKE_C = ["--file", "/dev/zero"]
#: The buffer of every kernel-timed run, both tools' default, said explicitly.
SIZE_MIB = 128
#: The console script, as users run it (python -m would add runpy's imports):
#: the venv's beside its python, or another architecture's guest wrapper
#: (gupctl/vm/userland.py's WRAPPER, on PATH).
_BESIDE = Path(sys.executable).with_name("gupctl")
GUPCTL = [str(_BESIDE) if _BESIDE.exists() else shutil.which("gupctl") or "gupctl"]
Samples = list[list[int]]  # [get µs...], [put µs...]
PARTS = ("startup", "loop", "placement", "timings", "thp")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs a command bound to `node`, and to `cpus` if given; returns its
    stdout, or exits on failure."""

    def __init__(self, node: int, cpus: set[int] | None = None) -> None:
        self.node, self.cpus = node, cpus

    def _bind(self) -> None:
        numa.bind_task(self.node)
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def __call__(self, argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, preexec_fn=self._bind)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr[-2000:]}")
        return out.stdout

    def wall(self, argv: list[str]) -> float:
        start = time.perf_counter()
        self(argv)
        return time.perf_counter() - start


def c_samples(out: str) -> Samples:
    pairs = C_TIME.findall(out)
    if not pairs or "truncated" in out:
        raise SystemExit(f"C gup_test printed no timings: {out[-2000:]}")
    return [[int(g) for g, _ in pairs], [int(p) for _, p in pairs]]


#: Round r runs A, G and A' (0, 1, 2) in ORDERS[r % 6]: two Latin squares, the
#: second the first reversed, so six rounds balance both places and pairs.
ORDERS = ((0, 1, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0), (1, 0, 2), (0, 2, 1))


def ordered(round_no: int, a: Callable[[], object], g: Callable[[], object],
            b: Callable[[], object]) -> None:  # fmt: skip
    """A, G and A' in round `round_no`'s order."""
    steps = (a, g, b)
    for i in ORDERS[round_no % len(ORDERS)]:
        steps[i]()


def c_argv(c_bin: str, command: str, thp: bool, per_call: str, repeats: int) -> list[str]:
    """Upstream's C gup_test running one configuration."""
    c_n = PER_CALL[per_call]
    return [c_bin, COMMANDS[command], "-t" if thp else "-T", "-m", str(SIZE_MIB), "-n", c_n,
            "-r", str(repeats)]  # fmt: skip


def gupctl_argv(commands: list[str], thp: bool, per_calls: list[str], repeats: int,
                node: int) -> list[str]:  # fmt: skip
    """gupctl bench running commands x per_calls, memory set up as C's."""
    return [*GUPCTL, "bench", *commands, "--thp" if thp else "--no-thp", "-s", f"{SIZE_MIB}M",
            "-n", ",".join(per_calls), "-r", str(repeats), "--json",
            "--numa-node", str(node), "--check-balance", *LIKE_C]  # fmt: skip


def timings(run: Runner, c_bin: str, rounds: int, repeats: int,
            separate: bool = False) -> list[dict[str, object]]:  # fmt: skip
    """Kernel-timed get and put µs of every configuration: per round, C's
    samples (A and A') and gupctl's.  One gupctl process runs a THP setting's
    nine configurations (its start-up is not what is measured here); with
    `separate`, one process each, as C runs them."""
    rows = {}
    for command in COMMANDS:
        for thp in (True, False):
            for per_call in PER_CALL:
                rows[command, thp, per_call] = {"command": command, "thp": thp,
                                                "per_call": per_call, "a": [], "g": [],
                                                "b": []}  # fmt: skip
    for r in range(rounds):
        for thp in (True, False):

            def c(which: str, thp: bool = thp) -> None:
                for command in COMMANDS:
                    for per_call in PER_CALL:
                        argv = c_argv(c_bin, command, thp, per_call, repeats)
                        rows[command, thp, per_call][which].append(c_samples(run(argv)))

            def g(thp: bool = thp) -> None:
                # One process for the nine, or (separate) one per configuration as C has
                every = list(itertools.product(COMMANDS, PER_CALL))
                groups = [[config] for config in every] if separate else [every]
                for configs in groups:
                    commands = list(dict.fromkeys(name for name, _ in configs))
                    per_calls = list(dict.fromkeys(n for _, n in configs))
                    argv = gupctl_argv(commands, thp, per_calls, repeats, run.node)
                    results = json.loads(run(argv))
                    # bench runs commands x pages-per-call, in the order given
                    assert len(results) == len(configs), len(results)
                    for (command, per_call), result in zip(configs, results):
                        assert result["command"] == command, (result["command"], command)
                        rows[command, thp, per_call]["g"].append(
                            [result["get_usec"], result["put_usec"]]
                        )

            ordered(r, lambda: c("a"), g, lambda: c("b"))
        log(f"timings: round {r + 1} of {rounds} done")
    return list(rows.values())


#: Configurations whose C timings were bimodal, process by process, before
#: every run was bound to one CPU (benchmarks/results/2026-12-06.json).
PLACEMENT = (("gup_fast_benchmark", False, "512"), ("pin_fast_benchmark", False, "1"),
             ("pin_longterm_benchmark", True, "512"))  # fmt: skip


def placement(one: Runner, free: Runner, c_bin: str, rounds: int,
              repeats: int) -> list[dict[str, object]]:  # fmt: skip
    """Kernel-timed µs of a few configurations under upstream's C and under
    gupctl, each bound to one CPU (`one`, as timings() runs them) and free to
    move (`free`): what binding to a CPU changes, for each tool."""
    rows: list[dict[str, object]] = []
    for command, thp, per_call in PLACEMENT:
        c = c_argv(c_bin, command, thp, per_call, repeats)
        g = gupctl_argv([command], thp, [per_call], repeats, one.node)
        samples = _placed(one, free, c, g, rounds)
        rows.append({"command": command, "thp": thp, "per_call": per_call, **samples})
        log(f"placement: {command} done")
    return rows


def _placed(one: Runner, free: Runner, c: list[str], g: list[str],
            rounds: int) -> dict[str, list[Samples]]:  # fmt: skip
    """C and gupctl, each bound and free, per round; the four runs of a round
    go in the reverse order every other round."""
    out: dict[str, list[Samples]] = {"c_one": [], "c_free": [], "g_one": [], "g_free": []}

    def c_run(run: Runner, key: str) -> None:
        out[key].append(c_samples(run(c)))

    def g_run(run: Runner, key: str) -> None:
        (result,) = json.loads(run(g))
        out[key].append([result["get_usec"], result["put_usec"]])

    steps = [lambda: c_run(one, "c_one"), lambda: c_run(free, "c_free"),
             lambda: g_run(one, "g_one"), lambda: g_run(free, "g_free")]  # fmt: skip
    for r in range(rounds):
        for step in steps if r % 2 == 0 else steps[::-1]:
            step()
    return out


def loop_cost(run: Runner, bare: str, c_pages: str, rounds: int, repeats: int,
              threads: int, cpus: list[int] | None) -> dict[str, object]:  # fmt: skip
    """ns per one-page PIN_FAST_BENCHMARK ioctl and thread, per round: the bare
    C loop (A and A'), gupctl's in-process loop time (RunResult.ioctl_ns), and
    upstream's C selftest by wall(N+1 repeats) - wall(1 repeat).  With `cpus`,
    thread k is bound to cpus[k] by both the bare loop and gupctl (--cpus);
    without, neither binds anything, as a user who asks for nothing runs.
    Upstream's selftest cannot bind its threads."""
    path = device.locate()
    where = [",".join(map(str, cpus))] if cpus else []
    result: dict[str, object] = {"threads": threads, "cpus": cpus, "repeats": repeats,
                                 "a": [], "g": [], "b": [], "selftest": []}  # fmt: skip

    def bare_run(which: str) -> None:
        data = json.loads(run([bare, path, "1", str(repeats), str(threads), *where]))
        result[which].append(sum(data["loop_ns"]) / threads / repeats)  # type: ignore[attr-defined]

    def gupctl_run() -> None:
        argv = [*GUPCTL, "bench", "pin_fast_benchmark", "-s", "4K", "-n", "1", "-r", str(repeats),
                "-j", str(threads), *(["--cpus", *where] if where else []),
                "--numa-node", str(run.node), "--json"]  # fmt: skip
        (data,) = json.loads(run(argv))
        result["g"].append(data["ioctl_ns"])  # type: ignore[attr-defined]

    small = max(repeats // 10, 1)  # the selftest prints three lines a repeat

    def selftest(r: int) -> list[str]:
        return [c_pages, "-a", "-m", "1", "-n", "1", "-j", str(threads), "-r", str(r)]

    for r in range(rounds):
        ordered(r, lambda: bare_run("a"), gupctl_run, lambda: bare_run("b"))
        diff = run.wall(selftest(small + 1)) - run.wall(selftest(1))
        result["selftest"].append(diff * 1e9 / small)  # type: ignore[attr-defined]
    log(
        f"loop: {threads} thread(s) on {cpus or 'any CPU'}: bare C {result['a']}, "
        f"gupctl {result['g']}"
    )
    return result


def _thp_share(addr: int, size: int) -> float:
    """The share of [addr, addr + size) that THP backs (the mapping is its own VMA)."""
    return anon_huge_bytes(addr) / size


def thp_fast(node: int, cpu: int, rounds: int, repeats: int) -> dict[str, dict[str, list]]:
    """The sweep's 7.3 finding, at its smallest: GUP_FAST_BENCHMARK, one page a
    call, write, over SIZE_MIB of THP memory, in this process bound to `cpu`:
    gupctl's own anonymous mapping (PMD-aligned) and a private mapping of
    /dev/zero (placed where the kernel puts it, as gup_test.c's), alternating,
    each round's median get µs and the share of it THP backs."""
    from gupctl import abi
    from gupctl.device import Device
    from gupctl.memory import Mapping, MemorySpec

    size = SIZE_MIB << 20
    out: dict[str, dict[str, list]] = {k: {"get_usec": [], "thp": []} for k in ("anon", "zero")}
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with Device(device.locate()) as dev:
            for r in range(rounds):
                for kind in ("anon", "zero") if r % 2 == 0 else ("zero", "anon"):
                    spec = MemorySpec(thp=True, numa_node=node,
                                      file="/dev/zero" if kind == "zero" else None)  # fmt: skip
                    with Mapping(spec, size) as m:
                        arg = abi.ffi.new("struct gup_test *")
                        arg.addr, arg.nr_pages_per_call, arg.gup_flags = m.addr, 1, abi.FOLL_WRITE
                        got = dev.repeat(abi.GUP_FAST_BENCHMARK, arg, size, repeats)
                        out[kind]["get_usec"].append(sorted(got.get_usec)[len(got.get_usec) // 2])
                        out[kind]["thp"].append(_thp_share(m.addr, size))
    finally:
        os.sched_setaffinity(0, old)
    log(f"thp: {out}")
    return out


def first_ioctl(run: Runner, argv: list[str]) -> float:
    """Seconds from argv's execve to its first gup_test ioctl (to its exit if
    it issues none), traced."""
    with tempfile.NamedTemporaryFile("r", prefix="strace-") as log:
        run([*strace.ARGV, "-o", log.name, *argv])
        try:
            return strace.span(log.read())
        except ValueError as e:
            raise SystemExit(f"{' '.join(argv)} under strace: {e}") from None


def startup(run: Runner, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Python's own start-up, and gupctl commands that reach one ioctl and
    stop, in the same guest, interleaved: each command's wall ms, and its ms
    from execve to the first gup_test ioctl (to exit for those that issue
    none), traced."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "gupctl --version": [*GUPCTL, "--version"],
        "gupctl bench -s 4K -r 1 --json": [*GUPCTL, "bench", "-s", "4K", "-r", "1", "--json"],
        "gupctl selftest -s 4K pin_fast.thp.private.write.n1": [
            *GUPCTL, "selftest", "-s", "4K", "pin_fast.thp.private.write.n1"],
    }  # fmt: skip
    wall: dict[str, list[float]] = {name: [] for name in commands}
    first: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            wall[name].append(run.wall(argv) * 1000)
            first[name].append(first_ioctl(run, argv) * 1000)
    return {"wall": wall, "first_ioctl": first}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--c", required=True, help="upstream gup_test binary")
    parser.add_argument("--c-pages", required=True, help="the same, -m counting pages")
    parser.add_argument("--bare", required=True, help="benchmarks/bare_loop.c, built")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-repeats", type=int, default=300_000)
    parser.add_argument("--only", choices=PARTS, action="append")
    parser.add_argument("--separate", action="store_true",
                        help="one gupctl process per timed configuration, as C")  # fmt: skip
    args = parser.parse_args()
    node = int(os.environ["GUPCTL_NUMA_NODE"])  # set by gupctl vm: the memory-only node
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]  # the same for every one-thread run, and the first of two
    one, free, parts = Runner(node, {cpu}), Runner(node), set(args.only or PARTS)
    result: dict[str, object] = {"kernel": os.uname().release, "node": node, "cpu": cpu,
                                 "rounds": args.rounds, "size": SIZE_MIB << 20}  # fmt: skip
    if "startup" in parts:
        result["startup"] = startup(one, args.rounds)
    if "loop" in parts:
        # Bound (two threads: one on each CPU, each tool binding its own
        # threads), then free to move: the process bound to nothing.
        placed = ((one, 1, [cpu]), (free, 2, [cpu, cpus[0]]), (free, 1, None), (free, 2, None))
        result["loop"] = [loop_cost(run, args.bare, args.c_pages, args.rounds, args.loop_repeats,
                                    n, where) for run, n, where in placed]  # fmt: skip
        # bound like the runs it explains, in a process of its own
        argv = [sys.executable, loop_profile.__file__, str(node), str(args.loop_repeats)]
        result["profile"] = json.loads(one(argv))
    if "placement" in parts:
        result["placement"] = placement(one, free, args.c, args.rounds, args.repeats)
    if "timings" in parts:
        result["timings"] = timings(one, args.c, args.rounds, args.repeats, args.separate)
        result["separate"] = args.separate
    if "thp" in parts:
        result["thp"] = thp_fast(node, cpu, args.rounds, args.repeats)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
