"""Parity with upstream's gup selftests, read from each kernel's own sources.

For every Debian kernel of the matrix, this reads run_vmtests.sh (its
gup_test invocations, run through bash with run_test() stubbed), and the
test tables of gup_longterm.c and cow.c, and lists each result upstream
reports on a machine shaped like gupctl's VM (x86_64, 4 KiB pages: THP
sizes of orders 2 to 9, huge pages of 2 MB and 1 GB).  Each result maps to
the gupctl case that runs the same test, or is listed below: out of scope
(with why), or not yet built (issue 23).  A result upstream gains that is
in neither fails the test, the day a kernel carries it.

Run with -s to see the counts per group, beside upstream's (the README's).
"""

from __future__ import annotations

import getopt
import re
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from kernels_facts import SERIES, selftests_dir

from gupctl.selftest import cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from upstream_names import LONGTERM_BACKINGS, longterm_case  # noqa: E402

THP_SIZES = [(4 << 10) << order for order in range(2, 10)]  # 16 kB .. 2 MB
PMD_SIZE = 2 << 20
HUGETLB_SIZES = [2 << 20, 1 << 30]
DEFAULT_HUGETLB = 2 << 20

#: Upstream results gupctl leaves out on purpose, and why.
OUT_OF_SCOPE = {
    "cow: Basic COW*": "fork() COW with no GUP in it: not a pin test",
}
#: Upstream results not mapped yet.
NOT_YET: list[str] = []


def _selftest(series: str, name: str) -> str | None:
    """tools/testing/selftests/mm/`name` (vm/ before v6.3), or None if absent."""
    for directory in ("mm", "vm"):
        path = selftests_dir(series) / directory / name
        if path.is_file():
            return path.read_text()
    return None


def gup_test_runs(script: str) -> list[list[str]]:
    """run_vmtests.sh's gup_test argument lists, in order: run_gup_matrix()
    and every other `run_test ./gup_test` line, through bash."""
    matrix = re.search(r"^run_gup_matrix\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    lines = [m.group(0) for m in re.finditer(r"^\s*(CATEGORY=\S+ )?run_test \./gup_test\b.*$",
                                             script, re.MULTILINE)]  # fmt: skip
    body = (matrix.group(0) + "run_gup_matrix\n") if matrix else ""
    outside = [ln for ln in lines if not matrix or ln not in matrix.group(0)]
    # 6.12 sizes its hugetlb runs from needmem_KB, set at the top of the script:
    # max(256 MB, 2 huge pages per CPU), 256 MB on the VM's 2 CPUs.
    stubs = 'run_test() { shift; echo "$*"; }\nneedmem_KB=$((256 * 1024))\n'
    program = stubs + body + "\n".join(outside) + "\n"
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [line.split() for line in out.stdout.splitlines()]


def gup_test_case(argv: list[str]) -> str | None:
    """The gupctl case that runs `gup_test ARGV` (gup_test.c's getopt), or None."""
    opts, rest = getopt.getopt(argv, "m:r:n:F:f:abcj:tTLUuwWSHpz")
    o = dict(opts)
    cmd = next(
        (
            name
            for flag, name in (
                ("-u", "gup_fast"),
                ("-U", "gup"),
                ("-a", "pin_fast"),
                ("-b", "pin"),
                ("-L", "pin_longterm"),
                ("-c", "dump"),
            )
            if flag in o
        ),
        "gup_fast",
    )
    mem = "hugetlb" if "-H" in o else "thp" if "-t" in o else "nothp" if "-T" in o else "default"
    write = "-W" not in o or int(o.get("-F", "0"), 0) & 1
    n = {"1": "n1", "512": "n512", "123": "n123", "-1": "nall"}.get(o.get("-n", "1"))
    size_mb = int(o.get("-m", "128")) // (cases.HUGETLB_FACTOR if mem == "hugetlb" else 1)
    if n is None or size_mb != 128 or {"-f", "-j", "-z", "-r"} & o.keys():
        return None
    if cmd == "dump":
        pages = "_".join(str(int(p, 0)) for p in rest)
        how = "pin" if "-p" in o else "get"
        return f"dump.{mem}.{how}.{'write' if write else 'read'}.{n}.p{pages}"
    share = "shared" if "-S" in o else "private"
    return f"{cmd}.{mem}.{share}.{'write' if write else 'read'}.{n}"


def c_table(source: str, array: str) -> list[str]:
    """The description (first member) of each entry of the C array `array`."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    m = re.search(rf"\b{array}\[\] = \{{(.*?)^\}};", source, re.MULTILINE | re.DOTALL)
    assert m, f"no {array}[] in the source"
    return re.findall(r'\{\s*"([^"]+)"\s*,', m.group(1))


def anon_layouts(source: str) -> list[str]:
    """cow.c's run_anon_test_case(): each layout a test runs on, with its size."""
    m = re.search(r"^static void run_anon_test_case\(.*?^\}", source, re.MULTILINE | re.DOTALL)
    assert m, "no run_anon_test_case() in cow.c"
    out, sizes, pmd_only, hugetlb_loop = [], [None], False, False
    for line in m.group(0).splitlines():
        if "nr_thpsizes" in line:
            sizes = THP_SIZES
        elif "size == pmdsize" in line:
            pmd_only = True
        elif "nr_hugetlbsizes" in line:
            hugetlb_loop = True
        elif call := re.search(r"run_with_(\w+)\(", line):
            layout = call.group(1)
            each = HUGETLB_SIZES if hugetlb_loop else [PMD_SIZE] if pmd_only else sizes
            out += [layout if s is None else f"{layout} {s >> 10} kB" for s in each]
        elif line.strip() == "}":
            if pmd_only:
                pmd_only = False
            else:
                sizes = [None]
    return out


RO_PIN = re.compile(r"R/O GUP(-fast)? pin on R/O-mapped (shared|previously-shared|exclusive) page")
STATES = {"shared": "shared", "previously-shared": "previously_shared", "exclusive": "ro_exclusive"}


def cow_layout(layout: str) -> str | None:
    """gupctl's name of a cow.c layout ("pte_mapped_thp 16 kB"), or None."""
    fixed = {
        "base_page": "anon",
        "base_page_swap": "anon_swap",
        f"thp {PMD_SIZE >> 10} kB": "thp",
        f"thp_swap {PMD_SIZE >> 10} kB": "thp_swap",
    }
    fixed.update({f"hugetlb {s >> 10} kB": _hugetlb("hugetlb", s) for s in HUGETLB_SIZES})
    run, _, size = layout.partition(" ")
    if run in cases.THP_RUNS:
        return f"{run}_{cases.size_label(int(size.removesuffix(' kB')) << 10)}"
    return fixed.get(layout)


#: cow.c's vmsplice() and io_uring tests, by gupctl's test and variant names.
OTHER_COW_TESTS = {
    "vmsplice() + unmap in child": "vmsplice.in_child",
    "vmsplice() + unmap in child with mprotect() optimization": "vmsplice.in_child_mprotect",
    "vmsplice() before fork(), unmap in parent after fork()": "vmsplice.before_fork",
    "vmsplice() + unmap in parent after fork()": "vmsplice.after_fork",
    "R/O-mapping a page registered as iouring fixed buffer": "iouring.ro",
    "fork() with an iouring fixed buffer": "iouring.fork",
}


def cow_case(desc: str, layout: str) -> str | None:
    m, name = RO_PIN.fullmatch(desc), cow_layout(layout)
    if not name:
        return None
    if desc in OTHER_COW_TESTS:
        test, variant = OTHER_COW_TESTS[desc].split(".")
        return f"cow_{test}.{name}.{variant}"
    if not m:
        return None
    fast = "fast" if m.group(1) else "slow"
    return f"cow_ro_pin.{name}.{STATES[m.group(2)]}.{fast}"


RO_LONGTERM = re.compile(r"R/O longterm GUP(-fast)? pin")


def _hugetlb(kind: str, size: int) -> str:
    return kind if size == DEFAULT_HUGETLB else f"{kind}_{cases.size_label(size)}"


def non_anon_case(desc: str, backing: str) -> str | None:
    m = RO_LONGTERM.fullmatch(desc)
    hugetlb = {f"memfd_hugetlb {s >> 10} kB": _hugetlb("memfd_hugetlb", s) for s in HUGETLB_SIZES}
    name = hugetlb.get(backing, backing)
    if not m or name.removesuffix("_1g") not in cases.NON_ANON:
        return None
    return f"cow_ro_pin.{name}.private.{'fast' if m.group(1) else 'slow'}"


def upstream_results(series: str) -> list[tuple[str, str | None]]:
    """(label, gupctl case or None) for each result upstream reports."""
    out: list[tuple[str, str | None]] = []
    script = _selftest(series, "run_vmtests.sh")
    assert script, f"no run_vmtests.sh in linux-source-{series}"
    for argv in gup_test_runs(script):
        out.append((f"gup_test: {' '.join(argv)}", gup_test_case(argv)))
    if longterm := _selftest(series, "gup_longterm.c"):
        backings = [*LONGTERM_BACKINGS] + [f"memfd hugetlb {s >> 10} kB" for s in HUGETLB_SIZES]
        for desc in c_table(longterm, "test_cases"):
            out += [(f"gup_longterm: {desc} | {b}", longterm_case(desc, b)) for b in backings]
    if cow := _selftest(series, "cow.c"):
        for desc in c_table(cow, "anon_test_cases"):
            out += [(f"cow: {desc} | {lay}", cow_case(desc, lay)) for lay in anon_layouts(cow)]
        for desc in c_table(cow, "anon_thp_test_cases"):
            out.append((f"cow: {desc} | thp {PMD_SIZE >> 10} kB", None))
        backings = ["zeropage", "memfd", "tmpfile", "huge_zeropage"] + [
            f"memfd_hugetlb {s >> 10} kB" for s in HUGETLB_SIZES]  # fmt: skip
        for desc in c_table(cow, "non_anon_test_cases"):
            out += [(f"cow: {desc} | {b}", non_anon_case(desc, b)) for b in backings]
    return out


def _group(label: str) -> str:
    return label.split(":", 1)[0]


@pytest.mark.parametrize("series", SERIES)
def test_every_upstream_result_is_mapped_or_listed(series: str) -> None:
    names = {c.name for c in cases.all_cases(HUGETLB_SIZES, False, tuple(THP_SIZES), PMD_SIZE,
                                             DEFAULT_HUGETLB)}  # fmt: skip
    results = upstream_results(series)
    assert results, f"no upstream gup results found in linux-source-{series}"
    unknown = [f"{label} -> {name}" for label, name in results if name and name not in names]
    assert not unknown, "mapped to no gupctl case:\n" + "\n".join(unknown)
    listed = [*OUT_OF_SCOPE, *NOT_YET]
    new = [
        lbl for lbl, name in results if not name and not any(fnmatchcase(lbl, p) for p in listed)
    ]
    assert not new, "upstream results gupctl neither maps nor lists:\n" + "\n".join(new)
    mapped = [n for _, n in results if n]
    assert len(mapped) == len(set(mapped)), "two upstream results map to one case"
    counts: dict[str, list[int]] = {}
    for label, name in results:
        row = counts.setdefault(_group(label), [0, 0, 0])
        row[0] += 1
        row[1] += bool(name)
        row[2] += any(fnmatchcase(label, p) for p in OUT_OF_SCOPE)
    for group, (total, have, scope) in counts.items():
        print(f"{series} {group}: upstream {total}, gupctl maps {have}, out of scope {scope}, "
              f"not yet {total - have - scope}")  # fmt: skip


def test_a_new_upstream_case_fails_the_test() -> None:
    """The check itself: an invocation upstream might add maps to nothing."""
    assert gup_test_case(["-u", "-n", "7"]) is None
    assert gup_test_case(["-ct", "-F", "0x1", "0", "19", "0x1000"]) == (
        "dump.thp.get.write.n1.p0_19_4096")  # fmt: skip
    assert gup_test_case(["-H", "-m", "256", "-b", "-W", "-S", "-n", "-1"]) == (
        "pin.hugetlb.shared.read.nall")  # fmt: skip
    assert cow_case("R/O GUP-fast pin on R/O-mapped exclusive page", "base_page") == (
        "cow_ro_pin.anon.ro_exclusive.fast")  # fmt: skip
    assert cow_case("R/O GUP pin on R/O-mapped shared page", "pte_mapped_thp 16 kB") == (
        "cow_ro_pin.pte_mapped_thp_16k.shared.slow")  # fmt: skip
    assert cow_case("R/O GUP pin on R/O-mapped shared page", "pte_mapped_thp_swap 16 kB") == (
        "cow_ro_pin.pte_mapped_thp_swap_16k.shared.slow")  # fmt: skip
    assert cow_case("fork() with an iouring fixed buffer", "base_page_swap") == (
        "cow_iouring.anon_swap.fork")  # fmt: skip
    assert cow_case("vmsplice() + unmap in child", "hugetlb 1048576 kB") == (
        "cow_vmsplice.hugetlb_1g.in_child")  # fmt: skip
    assert cow_case("vmsplice() + unmap in child", "hugetlb 16384 kB") is None
    assert cow_case("R/O GUP pin on R/O-mapped huge page", "base_page") is None
    desc = "io_uring fixed buffer with MAP_PRIVATE file mapping"
    assert longterm_case(desc, "local tmpfile") == "longterm.ext4.private.rw.iouring"
