"""benchmarks/run.py's raw data as the README's Markdown, goals marked."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.stats import Ratio, median_interval, pooled_median, ratio, scalar_ratio
from gupctl import abi, results
from gupctl import release as _release
from gupctl.cache import cache_dir
from gupctl.memory import PAGE_SIZE, size_label

GOALS = {"loop": 1.2, "startup": 2.0, "boot": 1 / 3, "selftest": 0.5, "help_ms": 150}
#: Where .ci/run appends its wall time (benchmarks/ci_time.py).
CI_TIMES = "ci-times.jsonl"


def ci_times() -> dict[str, dict | None]:
    """The newest recorded .ci/run of each kind: cold (an empty gupctl cache) and warm."""
    latest: dict[str, dict | None] = {"cold": None, "warm": None}
    try:
        lines = (cache_dir() / CI_TIMES).read_text().splitlines()
    except OSError:
        return latest
    for line in lines:
        record = json.loads(line)
        latest[record["cache"]] = record
    return latest


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _where(loop: dict) -> str:
    """'@1,0' for threads bound one by one, 'free' for threads bound to nothing,
    '' for runs saved before gupctl bench had --cpus, which do not say."""
    if "cpus" not in loop:
        return ""
    return "@" + ",".join(map(str, loop["cpus"])) if loop["cpus"] else "free"


def loop_table(loops: list[dict], profile: dict) -> list[str]:
    lines = ["| threads, CPUs | bare C ns/ioctl | gupctl ns/ioctl | gupctl/C [95% CI] (goal ≤ 1.2) "
             "| A/A: C'/C [95% CI] | upstream selftest ns/ioctl | selftest/C |",
             "|---|---:|---:|---|---|---:|---:|"]  # fmt: skip
    for loop in loops:
        g, aa = scalar_ratio(loop["a"], loop["g"]), scalar_ratio(loop["a"], loop["b"])
        st = scalar_ratio(loop["a"], loop["selftest"])
        lines.append(
            f"| {loop['threads']} {_where(loop)} | {statistics.median(loop['a']):.0f} "
            f"| {statistics.median(loop['g']):.0f} | {g} {_verdict(g.value <= GOALS['loop'])} "
            f"| {aa} | {statistics.median(loop['selftest']):.0f} | {st.value:.2f} |"
        )
    lines += ["", f"Profile of gupctl's loop ({profile['repeats']:,} repeats, one thread, "
              f"{profile['chunks']} chunks): {profile['loop_ns']:.0f} ns per repeat, of which "
              f"{profile['in_c_ns']:.0f} inside the C loop (the ioctl and two sample stores) and "
              f"{profile['python_ns']:.1f} in Python between chunks."]  # fmt: skip
    return lines


def startup_table(startup: dict[str, dict[str, list[float]]]) -> list[str]:
    """Wall ms of each command, and (saved runs from 2026-12-06-full.json on) ms from its execve
    to its first gup_test ioctl, traced: the goal's own measure."""
    wall, first = startup["wall"], startup.get("first_ioctl")
    head = "| command (in the guest) | wall median ms | min–max | wall ÷ python -c pass [95% CI] |"
    rule = "|---|---:|---:|---|"
    if first:
        head += " to first ioctl, traced, ms | ÷ python -c pass, traced [95% CI] |"
        rule += "---:|---|"
    lines = [head, rule]
    for name, ms in wall.items():
        ratios = [scalar_ratio(wall["python -c pass"], ms)]
        cells = [f"`{name}`", f"{statistics.median(ms):.0f}", f"{min(ms):.0f}–{max(ms):.0f}"]
        if first:
            ratios.append(scalar_ratio(first["python -c pass"], first[name]))
            cells += [str(ratios[0]), f"{statistics.median(first[name]):.0f}"]
        cells.append(str(ratios[-1]))  # the goal's measure: traced, where the run has it
        if name.startswith(("gupctl bench", "gupctl selftest")):
            cells[-1] += f" (goal ≤ 2: {_verdict(ratios[-1].value <= GOALS['startup'])})"
        lines.append(f"| {' | '.join(cells)} |")
    if first:
        lines += ["", "Traced: strace stops the process at each ioctl (python makes one per "
                  "file it opens) and at execve; the end is the first gup_test ioctl, or the "
                  "exit for a command that issues none."]  # fmt: skip
    return lines


def image_lines(image: dict, ninep: dict) -> list[str]:
    """What the Python image changes, per command: its time over the time over
    9p, from the two boots (unpaired), traced where the run has it."""
    kind = "first_ioctl" if "first_ioctl" in image else "wall"
    lines = [f"The Python image against 9p ({'traced' if kind != 'wall' else 'wall'} ms, "
             "image ÷ 9p [95% CI]):", ""]  # fmt: skip
    for name, ms in image[kind].items():
        over = ninep[kind][name]
        r = ratio([[v] for v in over], [[v] for v in ms], paired=False)
        lines.append(f"- `{name}`: {statistics.median(ms):.0f} against "
                     f"{statistics.median(over):.0f}: {r}")  # fmt: skip
    return lines


def thp_table(thp: dict[str, dict]) -> list[str]:
    """Each kernel's get µs and THP share per memory; each later kernel against
    the first (unpaired: two boots)."""
    names = list(thp)
    lines = ["| memory | " + " | ".join(f"{n}: µs (THP share)" for n in names)
             + "".join(f" | {n}/{names[0]} [95% CI]" for n in names[1:]) + " |",
             "|---|" + "---:|" * len(names) + "---|" * (len(names) - 1)]  # fmt: skip
    labels = {"anon": "anonymous, PMD-aligned (gupctl's)", "zero": "private /dev/zero (C's)"}
    for kind, label in labels.items():
        cells = [f"{statistics.median(thp[n][kind]['get_usec']):g} "
                 f"({statistics.median(thp[n][kind]['thp']):.0%})" for n in names]  # fmt: skip
        base = [[v] for v in thp[names[0]][kind]["get_usec"]]
        cells += [str(ratio(base, [[v] for v in thp[n][kind]["get_usec"]], paired=False))
                  for n in names[1:]]  # fmt: skip
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return lines


def selftest_line(st: dict) -> str:
    """The whole selftest's wall time per case, boot included, against its floor."""
    per_case = st["seconds"] / st["cases"]
    return (f"The whole selftest on {st['kernel']}: {st['cases']} cases in {st['seconds']:.0f} s "
            f"from the host, boot included: {per_case:.2f} s a case (goal ≤ 0.5: "
            f"{_verdict(per_case <= GOALS['selftest'])}). The cases' own time: "
            f"{st['case_seconds']:.0f} s; the kernel-timed GUP work in them (the floor): "
            f"{st['kernel_seconds']:.1f} s.")  # fmt: skip


def _timing_verdict(r: Ratio, aa: Ratio) -> tuple[str, str]:
    if r.contains(1.0):
        return "ok", "contains 1"
    if r.within(aa):
        return "ok", "inside A/A"
    return "miss", "**outside**"


def timings_table(rows: list[dict]) -> tuple[list[str], dict[str, int]]:
    lines = ["| command | THP | pages/call | phase | C µs | gupctl µs "
             "| gupctl/C [95% CI] | A/A C'/C [95% CI] | verdict |",
             "|---|---|---|---|---:|---:|---|---|---|"]  # fmt: skip
    counts = {"contains 1": 0, "inside A/A": 0, "**outside**": 0}
    for row in rows:
        for phase, i in (("get", 0), ("put", 1)):
            a, g, b = ([run[i] for run in row[k]] for k in ("a", "g", "b"))
            r, aa = ratio(a, g), ratio(a, b)
            _, why = _timing_verdict(r, aa)
            counts[why] += 1
            c_med, g_med = pooled_median(a), pooled_median(g)
            lines.append(
                f"| {row['command']} | {'on' if row['thp'] else 'off'} | {row['per_call']} "
                f"| {phase} | {c_med:g} | {g_med:g} | {r} | {aa} | {why} |"
            )
    return lines, counts


def placement_table(rows: list[dict]) -> list[str]:
    """Each tool free to move across CPUs, against bound to one: kernel-timed get."""
    lines = ["| command | THP | pages/call | C µs: one CPU → free | C free/one [95% CI] "
             "| gupctl µs: one CPU → free | gupctl free/one [95% CI] |",
             "|---|---|---|---:|---|---:|---|"]  # fmt: skip
    for row in rows:
        cells = []
        for one, free in (("c_one", "c_free"), ("g_one", "g_free")):
            a, b = ([run[0] for run in row[k]] for k in (one, free))
            cells += [f"{pooled_median(a):g} → {pooled_median(b):g}", str(ratio(a, b))]
        lines.append(f"| {row['command']} | {'on' if row['thp'] else 'off'} | {row['per_call']} "
                     f"| {' | '.join(cells)} |")  # fmt: skip
    return lines


def kernels_table(kernels: dict[str, dict]) -> list[str]:
    """Each kernel's kernel-timed µs against the first's, per page, for both
    tools: rounds bound to one CPU, so unlike the sweep each side has rounds,
    and the interval (unpaired: two boots) says whether the kernels differ."""
    (name_a, a), *others = ((n, k) for n, k in kernels.items() if "timings" in k and "size" in k)
    pages = a["size"] // PAGE_SIZE
    lines: list[str] = []
    for name_b, b in others:
        lines += [""] if lines else []
        lines += [f"A: {a['kernel']} ({name_a}), B: {b['kernel']} ({name_b}); {pages:,} pages "
                  f"an ioctl ({size_label(a['size'])}); gupctl's samples (G), and C's (A and A′, "
                  "each run a round).", "",
                  "| command | THP | pages/call | phase | G ns/page A → B | G B/A [95% CI] "
                  "| C B/A [95% CI] | change |", "|---|---|---|---|---:|---|---|---|"]  # fmt: skip
        for row_a, row_b in zip(a["timings"], b["timings"], strict=True):
            same = ("command", "thp", "per_call")
            assert all(row_a[k] == row_b[k] for k in same), "kernels ran different configurations"
            lines += _kernel_rows(row_a, row_b, pages)
    return lines


def _kernel_rows(row_a: dict, row_b: dict, pages: int) -> list[str]:
    lines = []
    for phase, i in (("get", 0), ("put", 1)):
        g_a, g_b = ([run[i] for run in row["g"]] for row in (row_a, row_b))
        c_a, c_b = ([run[i] for run in row["a"] + row["b"]] for row in (row_a, row_b))
        g, c = ratio(g_a, g_b, paired=False), ratio(c_a, c_b, paired=False)
        ns_a, ns_b = (pooled_median(side) * 1000 / pages for side in (g_a, g_b))
        change = _change(g, c)
        lines.append(f"| {row_a['command']} | {'on' if row_a['thp'] else 'off'} "
                     f"| {row_a['per_call']} | {phase} | {_ns(ns_a)} → {_ns(ns_b)} | {g} | {c} "
                     f"| {change} |")  # fmt: skip
    return lines


def _change(g: Ratio, c: Ratio) -> str:
    """What both tools' intervals say of B against A: a change is claimed only
    where both exclude 1 on the same side."""
    sides = {"faster" if r.high < 1 else "slower" for r in (g, c) if not r.contains(1.0)}
    if len(sides) > 1:
        return "tools disagree"
    if not sides:
        return "none seen"
    return "one tool only" if g.contains(1.0) or c.contains(1.0) else sides.pop()


def boot_table(boot: dict) -> list[str]:
    """gupctl's boot to exit against virtme-ng's (where it ran) and the bare
    boot's (runs that predate it have none)."""
    g = boot["gupctl"]
    where = f"{boot.get('arch', 'x86_64')} {boot['kernel']}"
    lines = [f"Boot to exit on {where}, {len(g)} boots each, alternating "
             f"(virtme-ng {boot['vng_version']}: `{boot['vng_command']}`).", "",
             "| tool | median s | min–max s |", "|---|---:|---:|"]  # fmt: skip
    names = {"gupctl": "`gupctl vm -- true`", "vng": "virtme-ng",
             "bare": "bare QEMU, busybox `poweroff -f` as init"}  # fmt: skip
    for key, name in names.items():
        if key in boot:
            t = boot[key]
            lines.append(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f}–{max(t):.2f} |")
    lines.append("")
    if "vng" in boot:
        r = scalar_ratio(boot["vng"], g)
        lines.append(f"gupctl/virtme-ng: {r} (goal ≤ 0.33: "
                     f"{_verdict(r.value <= GOALS['boot'])})")  # fmt: skip
    else:
        lines.append(f"virtme-ng did not run `true` here ({boot.get('vng_error', '?')}).")
    if "bare" in boot:
        lines.append(
            f"gupctl/bare boot: {scalar_ratio(boot['bare'], g)}: what gupctl's "
            "initramfs, 9p shares, Python and command add to the kernel's own boot."
        )
    return lines


def sweep_table(directory: str) -> list[str]:
    """Per-page cost of the sweep on each kernel, side by side: the files that
    `gupctl vm --kernel A --kernel B --out DIR` saved, paired as `gupctl compare`
    pairs them, with its verdict (each median outside the other's range)."""
    where = Path(__file__).resolve().parents[1] / directory  # relative: to the checkout
    saved = sorted(where.glob("*.json"), key=lambda p: _release.sort_key(p.stem))
    a, *others = (results.load(str(p)) for p in saved)
    lines: list[str] = []
    for b in others:  # each kernel against the first, as gupctl vm prints them
        lines += [""] if lines else []
        lines += [f"A: {a.kernel}, B: {b.kernel}.", "", *_pairs(a, b)]
    return lines


def _pairs(a: results.SavedResults, b: results.SavedResults) -> list[str]:
    comparison = results.compare(a, b, a.kernel, b.kernel)
    lines = ["| command | size | pages/call | get ns/page A → B | get | put ns/page A → B | put |",
             "|---|---:|---:|---:|---|---:|---|"]  # fmt: skip
    for pair in comparison.pairs:
        k, pages = pair.key, pair.key.size // PAGE_SIZE
        per_call = abi.per_call_label(k.pages_per_call, pages)
        cells = []
        for phase in (pair.get, pair.put):
            ns_a, ns_b = (m * 1000 / pages for m in (phase.median_a, phase.median_b))
            cells += [f"{_ns(ns_a)} → {_ns(ns_b)}", phase.verdict]
        lines.append(f"| {k.command} | {size_label(k.size)} | {per_call} | {' | '.join(cells)} |")
    return lines


def _ns(ns: float) -> str:
    return f"{ns:.1f}" if ns < 100 else f"{ns:.0f}"


def ci_lines(ci: dict[str, dict | None]) -> list[str]:
    lines = ["| `.ci/run` (CI=true, fresh clone) | wall time | when | commit |",
             "|---|---:|---|---|"]  # fmt: skip
    for kind in ("cold", "warm"):
        rec = ci.get(kind)
        if rec is None:
            lines.append(f"| {kind} gupctl cache | not recorded on this machine | | |")
        else:
            lines.append(f"| {kind} gupctl cache | {rec['seconds'] / 60:.1f} min "
                         f"| {rec['date']} | {rec['commit']} |")  # fmt: skip
    return lines


def markdown(data: dict) -> str:
    out = [f"Host: {data['machine']}; {data['date']}; the whole run took "
           f"{data['seconds'] / 60:.0f} minutes."]  # fmt: skip
    if "help_ms" in data:
        m = median_interval(data["help_ms"])
        out += ["", f"`gupctl --help` on the host: {m.value:.0f} ms [{m.low:.0f}, {m.high:.0f}] "
                f"(median of {len(data['help_ms'])} starts, 95% CI; goal ≤ 150 ms: "
                f"{_verdict(m.high <= GOALS['help_ms'])})."]  # fmt: skip
    for kernel, k in data["kernels"].items():
        cpu = f", one-thread runs on CPU {k['cpu']}" if "cpu" in k else ""
        out += ["", f"### Kernel {k['kernel']} ({kernel}), {k['rounds']} rounds, memory on node "
                f"{k['node']} for every tool{cpu}"]  # fmt: skip
        if "startup" in k or "startup_ms" in k:  # startup_ms: wall times only, in older runs
            startup = k.get("startup") or {"wall": k["startup_ms"]}
            out += ["", "Start-up:", "", *startup_table(startup)]
        if "startup_9p" in k:
            out += ["", "Start-up with every file read over 9p (`gupctl vm --no-python-image`), "
                    "in a boot of its own:", "", *startup_table(k["startup_9p"]),
                    "", *image_lines(k["startup"], k["startup_9p"])]  # fmt: skip
        if "loop" in k:
            out += ["", "One one-page PIN_FAST_BENCHMARK ioctl, timed in-process:", "",
                    *loop_table(k["loop"], k["profile"])]  # fmt: skip
        if "placement" in k:
            out += ["", "Bound to one CPU, or free to move (kernel-timed get):", "",
                    *placement_table(k["placement"])]  # fmt: skip
        if "timings" in k:
            lines, counts = timings_table(k["timings"])
            summary = ", ".join(f"{n} {why}" for why, n in counts.items())
            out += ["", f"Kernel-timed µs, medians over all rounds ({summary}):", "", *lines]
    timed = [k for k in data["kernels"].values() if "timings" in k and "size" in k]
    if len(timed) > 1:
        out += ["", "Per-page cost across kernels, from the kernel-timed rounds above:", "",
                *kernels_table(data["kernels"])]  # fmt: skip
    thp = {name: k["thp"] for name, k in data["kernels"].items() if "thp" in k}
    if thp:
        out += ["", "GUP_FAST_BENCHMARK, one page a call, write, 128 MiB of THP memory, bound to "
                "one CPU, median get µs of each round (the sweep's finding at its smallest):", "",
                *thp_table(thp)]  # fmt: skip
    if "sweep" in data:
        plot = Path(data["sweep"]["dir"]) / "plot.svg"
        out += ["", f"Per-page cost across kernels, median of 5 repeats, THP (plot: `{plot}`):", "",
                *sweep_table(data["sweep"]["dir"])]  # fmt: skip
    if "boot" in data:
        out += ["", *boot_table(data["boot"])]
    if "selftest" in data:
        out += ["", selftest_line(data["selftest"])]
    out += ["", *ci_lines(data["ci"])]
    return "\n".join(out)
