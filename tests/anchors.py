"""Upstream's gup_test and gup_longterm, built for a guest's architecture.

tests/kernel/test_anchors.py runs them in the guest, through the kmod, as the
anchors gupctl's own numbers must match.  They are built here, on the host,
from Debian's linux-source-SERIES, unmodified: with this machine's gcc for
x86_64, and for another architecture with its cross compiler in the root
that cross-builds the kmod (gupctl/vm/debian.py's cross_buildroot), against
that suite's C library, which the guest's userland (trixie) runs.

The build is cached by the tarball, the compiler and the flags; the guest
finds it through a link named after its machine and series
(GUPCTL_CACHE/anchors/MACHINE-SERIES), which each build points at its
entry.

    python tests/anchors.py [--arch ARCH] [--kernel SERIES]   # prints the directory
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MM = "tools/testing/selftests/mm"
#: What the two programs include and link, as paths in the tree; the tree's
#: own <linux/fs.h> goes first, as the selftests' Makefile puts the tree's
#: uapi headers first (vm_util uses what older C libraries' headers lack).
MEMBERS = (f"{MM}/gup_test.c", f"{MM}/gup_longterm.c", f"{MM}/vm_util.c", f"{MM}/vm_util.h",
           "tools/testing/selftests/kselftest.h", "mm/gup_test.h",
           "include/uapi/linux/fs.h")  # fmt: skip
#: The settings helpers the programs link with: 7.x's hugepage_settings, or
#: 6.x's thp_settings (the selftests' Makefile: TEST_GEN_FILES' prerequisites).
HELPERS = ("hugepage_settings", "thp_settings")
CFLAGS = ["-O2", "-Wall", "-pthread"]
PROGRAMS = ("gup_test", "gup_longterm")


def link(machine: str, series: str) -> Path:
    """Where the guest finds the build for `machine` (uname -m) and `series`."""
    from gupctl.cache import cache_dir

    return cache_dir() / "anchors" / f"{machine}-{series}"


def _sources(scratch: Path, tarball: Path) -> Path:
    """MEMBERS from `tarball` under `scratch`/src, with an empty local config
    (no liburing: gup_longterm's io_uring cases skip, as upstream's do
    without it) and the tree's fs.h in its own include directory."""
    from gupctl.vm import build

    tree = scratch / "src"
    helpers = [f"{MM}/{h}.{ext}" for h in HELPERS for ext in ("c", "h")]
    missing = build.extract(tarball, (*MEMBERS, *helpers), tree)
    if set(missing) & set(MEMBERS) or len(missing) == len(helpers):
        raise RuntimeError(f"{tarball} lacks {', '.join(missing)}")
    # Its name: local_config.h in 6.12, local_config.h_gen in 7.3.
    for name in ("local_config.h", "local_config.h_gen"):
        (tree / MM / name).write_text("")
    uapi = tree / "uapi" / "linux"
    uapi.mkdir(parents=True)
    (tree / "include/uapi/linux/fs.h").rename(uapi / "fs.h")
    return tree


def _argv(cc: str, program: str, tree: str, helpers: list[str]) -> list[str]:
    """`cc` building `program` with the tree at `tree`, in its directory as
    the selftests' Makefile does: gup_longterm names its local file after
    __FILE__, which must be a name relative to where it runs."""
    mm = f"{tree}/{MM}"
    flags = [*CFLAGS, "-I", f"{tree}/uapi", "-I", tree, "-I", "..", "-o", f"{tree}/../{program}",
             f"{program}.c", "vm_util.c", *(f"{h}.c" for h in helpers)]  # fmt: skip
    return ["sh", "-c", f'cd "{mm}" && exec "$@"', "sh", cc, *flags]


def build(arch_name: str = "x86_64", series: str = "7.3") -> Path:
    """The directory holding PROGRAMS for `arch_name`, from linux-source-`series`."""
    from gupctl import cache
    from gupctl.vm import arch, build, debian, kmod

    target = arch.get(arch_name)
    tarball = debian.source_tarball(series)
    compiler = kmod.user_compiler(arch_name, series)

    def make(scratch: Path) -> None:
        tree = _sources(scratch, tarball)
        helpers = [h for h in HELPERS if (tree / MM / f"{h}.c").exists()]
        for program in PROGRAMS:
            argv = compiler.argv(_argv(compiler.cc, program, str(tree), helpers), scratch)
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"building upstream's {program} for {target.name} failed:\n"
                                   f"{proc.stderr}")  # fmt: skip
        shutil.rmtree(tree)

    parts = [
        build.source_identity(tarball),
        compiler.identity,
        target.triplet,
        *MEMBERS,
        *CFLAGS,
        Path(__file__).read_bytes(),
    ]
    entry = cache.entry("upstream", f"anchors-{target.name}-{series}-{cache.key(parts)}", make)
    where = link(target.machine_name, series)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_name(f".{where.name}.{os.getpid()}")
    tmp.symlink_to(entry)
    tmp.replace(where)  # the guest sees the old link or the new, never none
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--kernel", default="7.3", help="the series of the guest's kernel")
    args = parser.parse_args()
    print(build(args.arch, args.kernel))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
