"""The selftest's cases: what upstream's selftests cover, with stable names.

- run_vmtests.sh's gup matrix: {THP, no THP, hugetlb} x {gup-fast, gup,
  pin-fast, pin, pin-longterm} x {write, read-only} x {shared, private} x
  {1, 512, 123, all pages per call}, hugetlb over twice the size;
- its four default runs (`-u`/`-a`, `-n 1`/`-n -1`) and its dump case
  (`gup_test -ct -F 0x1 0 19 0x1000`);
- gup_longterm.c's pinnability matrix: memfd, tmpfs file, ext4 file, hugetlb
  memfd per huge page size, x {R/O, R/W} x {slow, fast} x {shared, private},
  and an io_uring fixed buffer on each, shared and private;
- cow.c's tests with GUP in them on its layouts (a base page, THPs of each
  size PMD- and PTE-mapped, reshaped and swapped out, a huge page): vmsplice()
  must not leak writes across fork(), an io_uring fixed buffer must see the
  mapping's writes, and R/O longterm pins of pages that are COW-shared with a
  child, were shared, or were made R/O-exclusive must too (selftest/cow.py);
  on its non-anonymous memory, R/O pins of pages a private mapping shares;
- gupctl's own: where a ZONE_MOVABLE exists, longterm pins move pages out of
  it and short-term pins move nothing (placement.py).

Names are KTAP test names: lower case, dot-separated, unique and stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gupctl import abi
from gupctl.memory import PAGE_SIZE
from gupctl.release import version

GUP_COMMANDS = {
    "gup_fast": abi.GUP_FAST_BENCHMARK,
    "gup": abi.GUP_BASIC_TEST,
    "pin_fast": abi.PIN_FAST_BENCHMARK,
    "pin": abi.PIN_BASIC_TEST,
    "pin_longterm": abi.PIN_LONGTERM_BENCHMARK,
}
MEMORY = ("thp", "nothp", "hugetlb")
PAGES_PER_CALL = {"n1": 1, "n512": 512, "n123": 123, "nall": abi.ALL_PAGES}
LONGTERM_BACKINGS = ("memfd", "tmpfs", "ext4")
#: run_vmtests.sh maps 256 MB for its hugetlb runs (hugetlb_mb), twice
#: gup_test's 128 MB default: the gup matrix maps twice the run's size there.
HUGETLB_FACTOR = 2


@dataclass(frozen=True)
class Case:
    """One test: `kind` picks the code that runs it, `params` what it varies."""

    name: str
    kind: str  # "gup", "dump", "longterm", "cow"
    params: dict[str, object] = field(default_factory=dict, hash=False)


def gup_matrix() -> list[Case]:
    """run_vmtests.sh's run_gup_matrix, plus all pages in one call."""
    cases = []
    for mem in MEMORY:
        for cmd in GUP_COMMANDS:
            for rw in ("write", "read"):
                for share in ("shared", "private"):
                    for n, per_call in PAGES_PER_CALL.items():
                        name = f"{cmd}.{mem}.{share}.{rw}.{n}"
                        params = {"command": cmd, "memory": mem, "shared": share == "shared",
                                  "write": rw == "write", "per_call": per_call}  # fmt: skip
                        cases.append(Case(name, "gup", params))
    return cases


def default_runs() -> list[Case]:
    """run_vmtests.sh's `gup_test -u|-a -n 1|-1`: gup-fast and pin-fast, write,
    private, over memory whose THP policy is left as the system has it."""
    cases = []
    for cmd in ("gup_fast", "pin_fast"):
        for n in ("n1", "nall"):
            params: dict[str, object] = {"command": cmd, "memory": "default", "shared": False,
                                         "write": True, "per_call": PAGES_PER_CALL[n]}  # fmt: skip
            cases.append(Case(f"{cmd}.default.private.write.{n}", "gup", params))
    return cases


def dump_cases() -> list[Case]:
    """`gup_test -ct -F 0x1 0 19 0x1000`: get_user_pages() with FOLL_WRITE, one
    page a call, over THP memory, dumping pages 0, 19 and 4096; and gupctl's
    own two, each in one call: pinned (`-p`), and on small pages, R/O."""
    pages = [0, 19, 4096]
    return [
        Case("dump.thp.get.write.n1.p0_19_4096", "dump",
             {"indexes": pages, "pin": False, "thp": True, "write": True, "per_call": 1}),
        Case("dump.thp.pin.p0_19_4096", "dump", {"indexes": pages, "pin": True, "thp": True}),
        Case("dump.nothp.get.p0_19_4096", "dump", {"indexes": pages, "pin": False, "thp": False}),
    ]  # fmt: skip


def size_label(size: int) -> str:
    """2097152 -> '2m', 1073741824 -> '1g', 65536 -> '64k'."""
    for shift, unit in ((30, "g"), (20, "m"), (10, "k")):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def longterm_matrix(hugetlb_sizes: list[int]) -> list[Case]:
    """gup_longterm.c: may this memory be pinned FOLL_LONGTERM, R/O and R/W,
    by gup_test and as an io_uring fixed buffer?"""
    backings: list[tuple[str, dict[str, object]]] = [(b, {"backing": b}) for b in LONGTERM_BACKINGS]
    for size in hugetlb_sizes:
        backings.append(
            (f"hugetlb_{size_label(size)}", {"backing": "hugetlb", "hugetlb_size": size})
        )
    cases = []
    for label, backing in backings:
        for share in ("shared", "private"):
            # The pin paths: PIN_LONGTERM_TEST_START slow and fast, R/O and
            # R/W, and io_uring's fixed buffer (always R/W).
            paths = [(rw, fast) for rw in ("ro", "rw") for fast in ("slow", "fast")]
            for rw, how in [*paths, ("rw", "iouring")]:
                params: dict[str, object] = dict(backing)
                params.update(shared=share == "shared", write=rw == "rw", fast=how == "fast",
                              iouring=how == "iouring")  # fmt: skip
                cases.append(Case(f"longterm.{label}.{share}.{rw}.{how}", "longterm", params))
    return cases


def longterm_should_work(backing: str, shared: bool, write: bool, release: str,
                         iouring: bool = False) -> bool:  # fmt: skip
    """gup_longterm.c's expectation: R/O pins and private mappings always work;
    R/W pins of shared file pages only on filesystems without writeback
    (tmpfs, hugetlbfs).  Kernels refuse them on ext4, xfs and btrfs since v6.5
    ("mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to file-backed
    mappings" and its GUP-fast twin); before that, nothing checked.  An
    io_uring fixed buffer follows GUP's rule since v6.5 ("io_uring: rsrc:
    delegate VMA file-backed check to GUP"); before, io_uring refused every
    file page but shmem's and hugetlbfs', private or shared."""
    before_6_5 = version(release)[:2] < (6, 5)
    if iouring and before_6_5:
        return backing != "ext4"
    if not shared or not write or backing != "ext4":
        return True
    return before_6_5


#: cow.c's do_run_with_thp() runs at every THP size, in its order; the PMD
#: size adds the THP as mapped ("thp") before them.  Each is a reshaping
#: (cow_memory._reshape()) and whether the result is swapped out after it.
THP_RUNS = ("pte_mapped_thp", "pte_mapped_thp_swap", "single_pte_of_thp",
            "single_pte_of_thp_swap", "partial_mremap_thp", "partial_shared_thp")  # fmt: skip
SWAP = "_swap"


@dataclass(frozen=True)
class Layout:
    """Memory cow.c tests on: `kind` base, thp or hugetlb (anonymous), or one
    of NON_ANON; `size` the THP or huge page size; `run` do_run_with_thp()'s
    reshaping ("pmd" for none); `swap`: swapped out (MADV_PAGEOUT) after it."""

    name: str
    kind: str
    size: int = PAGE_SIZE
    run: str = "pmd"
    swap: bool = False


def _thp_layout(run: str, size: int, name: str) -> Layout:
    return Layout(name, "thp", size, run.removesuffix(SWAP), run.endswith(SWAP))


def layouts(thp_sizes: list[int], pmd: int, hugetlb_sizes: list[int],
            default_hugetlb: int | None) -> list[Layout]:  # fmt: skip
    """run_anon_test_case()'s layouts, in its order."""
    out = [Layout("anon", "base"), Layout("anon_swap", "base", swap=True)]
    for size in thp_sizes:
        label = size_label(size)
        if size == pmd:
            out += [_thp_layout("pmd", size, "thp"), _thp_layout("pmd_swap", size, "thp_swap")]
        out += [_thp_layout(run, size, f"{run}_{label}") for run in THP_RUNS]
    return out + [Layout(_hugetlb_name("hugetlb", size, default_hugetlb), "hugetlb", size)
                  for size in hugetlb_sizes]  # fmt: skip


def _hugetlb_name(kind: str, size: int, default: int | None) -> str:
    """`kind` for the default huge page size (the name cases had before
    cow.c's other sizes came), `kind_1g` and the like for the others."""
    return kind if size == default else f"{kind}_{size_label(size)}"


#: cow.c's non-anonymous memory (run_non_anon_test_case()), mapped MAP_PRIVATE
#: and populated by a read: pages a private mapping shares without fork().
NON_ANON = ("zeropage", "memfd", "tmpfile", "huge_zeropage", "memfd_hugetlb")
HUGETLB_KINDS = ("hugetlb", "memfd_hugetlb")


def non_anon_layouts(pmd: int | None, hugetlb_sizes: list[int],
                     default_hugetlb: int | None) -> list[Layout]:  # fmt: skip
    """run_non_anon_test_case()'s memory, a hugetlb memfd per huge page size."""
    out = [Layout(kind, kind) for kind in NON_ANON[:3]]
    if pmd:
        out.append(Layout("huge_zeropage", "huge_zeropage", pmd))
    return out + [Layout(_hugetlb_name("memfd_hugetlb", size, default_hugetlb), "memfd_hugetlb",
                         size) for size in hugetlb_sizes]  # fmt: skip


#: cow.c's states of anonymous pages for its R/O pins (selftest/cow.py).
STATES = ("shared", "previously_shared", "ro_exclusive")
#: cow.c's vmsplice() tests (selftest/cow_vmsplice.py) and io_uring
#: fixed-buffer tests (selftest/cow_iouring.py), by gupctl's names.
VMSPLICE = ("in_child", "in_child_mprotect", "before_fork", "after_fork")
IOURING = ("ro", "fork")


def cow_cases(cow_layouts: list[Layout]) -> list[Case]:
    """cow.c's tests with GUP in them on each layout: on anonymous memory
    vmsplice() (4), io_uring (2) and the R/O longterm pins in each of its
    states, with GUP and GUP-fast (6); on the rest the R/O pins alone."""
    cases = []
    for layout in cow_layouts:
        anon = layout.kind in ("base", "thp", "hugetlb")
        if anon:
            for test, variants in (("vmsplice", VMSPLICE), ("iouring", IOURING)):
                cases += [Case(f"cow_{test}.{layout.name}.{v}", "cow",
                               {"layout": layout, "test": test, "variant": v})
                          for v in variants]  # fmt: skip
        # cow.c's do_test_ro_pin() states on anonymous memory; RO_PIN_TEST
        # (no state: the private mapping shares the page already) on the rest.
        for state in STATES if anon else ("private",):
            for fast in ("slow", "fast"):
                params: dict[str, object] = {"layout": layout, "fast": fast == "fast",
                                             "state": state, "test": "ro_pin"}  # fmt: skip
                cases.append(Case(f"cow_ro_pin.{layout.name}.{state}.{fast}", "cow", params))
    return cases


#: Short-term pins of the placement cases: FOLL_PIN without FOLL_LONGTERM.
SHORT_TERM = ("pin", "pin_fast")


def placement_cases(region: str = "Movable") -> list[Case]:
    """Longterm pins leave ZONE_MOVABLE (`region` "Movable": placement.*) or a
    CMA area ("CMA": placement.cma.*); short-term pins leave pages where they
    are (selftest/placement.py)."""
    prefix = "placement" if region == "Movable" else f"placement.{region.lower()}"
    out = []
    for mem in ("anon", "thp"):
        for fast in ("slow", "fast"):
            out.append(Case(f"{prefix}.longterm.{mem}.{fast}", "placement",
                            {"memory": mem, "longterm": True, "fast": fast == "fast",
                             "region": region}))  # fmt: skip
        for cmd in SHORT_TERM:
            out.append(Case(f"{prefix}.shortterm.{mem}.{cmd}", "placement",
                            {"memory": mem, "longterm": False, "command": cmd,
                             "region": region}))  # fmt: skip
    return out


def regress_cases(movable: bool) -> list[Case]:
    """Known pin bugs, each named after the commit that fixed it
    (selftest/regress.py); the first needs a ZONE_MOVABLE (`movable`)."""
    names = [
        "c8070b787519.zero_page_not_pinned",
        "c77369b437f9.longterm_state_per_file",
        "c77369b437f9.stop_racing_close",
        "e8ae6fd67021.wrapped_range_refused",
    ]
    if movable:
        names.insert(0, "aa6f8b2593b5.no_leak_when_migration_fails")
    return [Case(f"regress.{name}", "regress") for name in names]


def all_cases(hugetlb_sizes: list[int], movable: bool = False,
              thp_sizes: tuple[int, ...] = (2 << 20,), pmd: int = 2 << 20,
              default_hugetlb: int | None = None, cma: bool = False) -> list[Case]:  # fmt: skip
    """Every case, in running order; those that need a ZONE_MOVABLE where
    there is one (`movable`), and a CMA area the kernel placed (`cma`);
    cow.c's per THP size in `thp_sizes` (the PMD size `pmd` among them) and
    per huge page size (`default_hugetlb`, the default, else the first)."""
    cases = gup_matrix() + default_runs() + dump_cases() + longterm_matrix(hugetlb_sizes)
    default = default_hugetlb or (hugetlb_sizes[0] if hugetlb_sizes else None)
    cow_layouts = layouts(list(thp_sizes), pmd, hugetlb_sizes, default)
    cases += cow_cases(cow_layouts + non_anon_layouts(pmd if thp_sizes else None, hugetlb_sizes,
                                                      default))  # fmt: skip
    cases += placement_cases() if movable else []
    return cases + (placement_cases("CMA") if cma else []) + regress_cases(movable)


def hugetlb_need(cases: list[Case], size: int, default_size: int) -> dict[int, int]:
    """Huge pages of each size the largest of `cases` maps at once (cases that
    use hugetlb run one at a time): the gup matrix HUGETLB_FACTOR times
    `size`, a longterm case one page, a cow case two."""
    need: dict[int, int] = {}
    for c in cases:
        if c.params.get("memory") == "hugetlb" and c.kind == "gup":
            hp, pages = default_size, -(-size * HUGETLB_FACTOR // default_size)
        elif c.kind == "cow" and (lay := c.params["layout"]).kind in HUGETLB_KINDS:  # type: ignore[attr-defined]
            # cow.c's hugetlb_setup(2): one page mapped, one free for a COW
            # copy or an unshare, or the fault would SIGBUS.
            hp, pages = lay.size, 2  # type: ignore[attr-defined]
        elif c.params.get("backing") == "hugetlb":
            hp, pages = int(c.params["hugetlb_size"]), 1  # type: ignore[call-overload]
        else:
            continue
        need[hp] = max(need.get(hp, 0), pages)
    return need


def select(cases: list[Case], patterns: tuple[str, ...],
           exclude: tuple[str, ...] = ()) -> list[Case]:  # fmt: skip
    """The cases whose names match any shell-style pattern (all if none
    given) and no pattern of `exclude`."""
    from fnmatch import fnmatchcase

    return [c for c in cases
            if (not patterns or any(fnmatchcase(c.name, p) for p in patterns))
            and not any(fnmatchcase(c.name, p) for p in exclude)]  # fmt: skip
