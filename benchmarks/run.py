"""gupctl against the upstream C gup_test, side by side, in one run.

    python benchmarks/run.py [--rounds 3] [--repeats 5] [--output FILE]

Builds tools/testing/selftests/mm/gup_test.c from Debian's linux-source-6.12
(the source of the VM's default kernel), boots gupctl's VM once, and there
alternates C and gupctl on every configuration (benchmarks/guest.py).  Then it
times `gupctl --help` and `gupctl --version` here, and prints the ratios as a
Markdown table (the README's).  A benchmark, not a test: it reports, it never
fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import cbuild  # noqa: E402
from gupctl.cache import cache_dir  # noqa: E402

GOALS = {"timing": (0.95, 1.05), "overhead": 1.2, "startup_ms": 150}


def startup_ms(args: list[str], runs: int = 10) -> float:
    """Median wall time of `gupctl ARGS` on this machine, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gupctl", *args], capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def machine() -> str:
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = models[0] if models else platform.machine()
    return f"{cpu}, {os.cpu_count()} cores; guest: QEMU TCG, 2 vCPUs, 4 GiB"


def verdict(ratio: float, low: float, high: float) -> str:
    return "met" if low <= ratio <= high else "missed"


def markdown(data: dict) -> str:
    lo, hi = GOALS["timing"]
    lines = [f"Kernel {data['kernel']} in the VM; host: {data['machine']}.", "",
             "| command | THP | pages/call | C get µs | gupctl get µs | get ratio "
             "| C put µs | gupctl put µs | put ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in data["timings"]:
        get, put = r["gupctl_get"] / r["c_get"], r["gupctl_put"] / r["c_put"]
        lines.append(
            f"| {r['command']} | {'on' if r['thp'] else 'off'} | {r['per_call']} "
            f"| {r['c_get']:g} | {r['gupctl_get']:g} | {get:.2f} ({verdict(get, lo, hi)})"
            f" | {r['c_put']:g} | {r['gupctl_put']:g} | {put:.2f} "
            f"({verdict(put, lo, hi)}) |"
        )
    lines += ["", "| 1,000 one-page PIN_FAST_BENCHMARK ioctls | C s | gupctl s "
              "| ratio (goal ≤ 1.2) |", "|---|---:|---:|---:|"]  # fmt: skip
    for o in data["overhead"]:
        ratio = o["gupctl_seconds"] / o["c_seconds"]
        lines.append(
            f"| {o['threads']} thread(s) | {o['c_seconds']:.3f} | "
            f"{o['gupctl_seconds']:.3f} | {ratio:.2f} ({verdict(ratio, 0, 1.2)}) |"
        )
    lines += ["", "| start-up (host) | ms (goal ≤ 150) |", "|---|---:|"]
    for name, ms in data["startup_ms"].items():
        lines.append(f"| `gupctl {name}` | {ms:.0f} ({verdict(ms, 0, 150)}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="C/gupctl alternations")
    parser.add_argument("--repeats", type=int, default=5, help="ioctls per invocation")
    parser.add_argument("--kernel", help="gupctl vm --kernel (default: Debian 6.12)")
    parser.add_argument("--output", type=Path, default=cache_dir() / "benchmarks" / "latest.json")
    args = parser.parse_args()
    c_bin, c_pages = cbuild.build(cache_dir() / "benchmarks")
    vm = [sys.executable, "-m", "gupctl", "vm", *(["--kernel", args.kernel] if args.kernel else []),
          "--", sys.executable, str(HERE / "guest.py"), "--c", str(c_bin), "--c-pages",
          str(c_pages), "--rounds", str(args.rounds), "--repeats", str(args.repeats)]  # fmt: skip
    proc = subprocess.run(vm, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    if proc.returncode != 0:
        print(f"benchmark run in the VM failed (status {proc.returncode})", file=sys.stderr)
        return proc.returncode
    data = json.loads(proc.stdout)
    data["machine"] = machine()
    data["startup_ms"] = {"--help": startup_ms(["--help"]), "--version": startup_ms(["--version"])}
    data["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))
    print(f"\n(results saved to {args.output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
