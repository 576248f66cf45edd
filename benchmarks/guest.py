"""The measurements, run inside gupctl's VM by benchmarks/run.py; JSON on stdout.

C and gupctl alternate, round after round, on the same configuration, so that
drift in the guest (page cache, THP availability, TCG's code cache) hits both
alike.  Neither is bound to a NUMA node: C's gup_test has no such option.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

COMMANDS = {"gup_fast_benchmark": "-u", "pin_fast_benchmark": "-a", "pin_longterm_benchmark": "-L"}
PER_CALL = {"1": "1", "512": "512", "all": "-1"}  # gupctl's spelling -> C's -n
C_TIME = re.compile(r"Time: get:(\d+) put:(\d+) us")
ENV = {k: v for k, v in os.environ.items() if k != "GUPCTL_NUMA_NODE"}
# Memory set up as gup_test.c does: a private mapping of /dev/zero.  (gupctl's
# default, MAP_ANONYMOUS, is THP-aligned by the kernel since v6.7; a /dev/zero
# mapping is not on 6.12, so with THP on the two would pin different folios.)
LIKE_C = ["--file", "/dev/zero"]
GUPCTL = [sys.executable, "-m", "gupctl"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_c(binary: str, args: list[str]) -> list[tuple[int, int]]:
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=ENV)
    samples = [(int(g), int(p)) for g, p in C_TIME.findall(out.stdout)]
    if out.returncode != 0 or not samples or "truncated" in out.stdout:
        raise SystemExit(f"C gup_test {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return samples


def run_gupctl(args: list[str]) -> list[tuple[int, int]]:
    out = subprocess.run([*GUPCTL, "bench", "--json", *args], capture_output=True, text=True,
                         env=ENV)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"gupctl bench {' '.join(args)} failed: {out.stderr}")
    (run,) = json.loads(out.stdout)
    return list(zip(run["get_usec"], run["put_usec"]))


def timings(binary: str, rounds: int, repeats: int) -> list[dict[str, object]]:
    """Median get and put µs of C and gupctl on every configuration."""
    rows = []
    for command, c_flag in COMMANDS.items():
        for thp in (True, False):
            for per_call, c_n in PER_CALL.items():
                c, py = [], []
                c_args = [c_flag, "-t" if thp else "-T", "-n", c_n, "-r", str(repeats)]
                py_args = [command, "--thp" if thp else "--no-thp", "-n", per_call,
                           "-r", str(repeats), *LIKE_C]  # fmt: skip
                for _ in range(rounds):
                    c += run_c(binary, c_args)
                    py += run_gupctl(py_args)
                row = {"command": command, "thp": thp, "per_call": per_call,
                       "c_get": statistics.median(g for g, _ in c),
                       "gupctl_get": statistics.median(g for g, _ in py),
                       "c_put": statistics.median(p for _, p in c),
                       "gupctl_put": statistics.median(p for _, p in py),
                       "samples": len(c)}  # fmt: skip
                log(
                    f"timings: {command} thp={thp} n={per_call}: C get {row['c_get']} µs, "
                    f"gupctl get {row['gupctl_get']} µs"
                )
                rows.append(row)
    return rows


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, env=ENV)
    return time.perf_counter() - start


def overhead(pages_binary: str, threads: int, rounds: int, n: int = 1000) -> dict[str, float]:
    """Seconds that n more one-page PIN_FAST_BENCHMARK ioctls cost, per tool.

    Measured as wall(n + 1 repeats) - wall(1 repeat), so process start-up
    (an interpreter for gupctl, almost nothing for C) cancels out; each wall
    time is the fastest of `rounds` runs, as start-up jitter under emulation
    is larger than the difference being measured.
    """

    def c(r: int) -> list[str]:
        return [pages_binary, "-a", "-m", "1", "-n", "1", "-j", str(threads), "-r", str(r)]

    def py(r: int) -> list[str]:
        return [*GUPCTL, "bench", "pin_fast_benchmark", "-s", "4K", "-n", "1",
                "-j", str(threads), "-r", str(r), "--json", *LIKE_C]  # fmt: skip

    walls: dict[str, list[float]] = {"c1": [], "cn": [], "py1": [], "pyn": []}
    for _ in range(rounds):
        walls["c1"].append(_wall(c(1)))
        walls["cn"].append(_wall(c(n + 1)))
        walls["py1"].append(_wall(py(1)))
        walls["pyn"].append(_wall(py(n + 1)))
    best = {k: min(v) for k, v in walls.items()}
    result = {"threads": threads, "ioctls": n, "c_seconds": best["cn"] - best["c1"],
              "gupctl_seconds": best["pyn"] - best["py1"]}  # fmt: skip
    log(
        f"overhead: {threads} thread(s): C {result['c_seconds']:.3f} s, "
        f"gupctl {result['gupctl_seconds']:.3f} s per {n} ioctls"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--c", required=True, help="upstream gup_test binary")
    parser.add_argument("--c-pages", required=True, help="the same, -m counting pages")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = {
        "kernel": os.uname().release,
        "timings": timings(args.c, args.rounds, args.repeats),
        "overhead": [overhead(args.c_pages, t, max(args.rounds, 5)) for t in (1, 2)],
    }
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
