"""Build the upstream C gup_test from the kernel source the VM's kernel comes from,
and the bare C loop, for the guest's architecture: with the host's gcc for
x86_64, else with the cross compiler in the root that cross-builds the kmod
(gupctl.vm.kmod.user_compiler(), as tests/anchors.py builds upstream's).

tools/testing/selftests/mm/gup_test.c of Debian's linux-source-6.12 (the
source of Debian's 6.12 kernel image), compiled as the selftests' Makefile
would: `-I <tree>` for <mm/gup_test.h>, system uapi headers, -pthread.  Of
vm_util it needs only the page size variables, defined in a one-line shim, so
that vm_util.c (which wants 6.7+ uapi headers) is not needed.

A second binary, gup_test_pages, is the same source with its MB macro set to
one page, so that `-m N` maps N pages: upstream can only size in MiB, and the
per-ioctl overhead comparison needs a one-page ioctl.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from gupctl import cache
from gupctl.vm import kmod
from gupctl.vm.build import extract

TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
MEMBERS = ("tools/testing/selftests/mm/gup_test.c", "tools/testing/selftests/mm/vm_util.h",
           "tools/testing/selftests/kselftest.h", "mm/gup_test.h")  # fmt: skip
SHIM = "unsigned int __page_size, __page_shift;\n"
MB_LINE = "#define MB (1UL << 20)"
PAGES_MB = "#define MB 4096UL /* gupctl: -m counts pages */"


def _extract(tarball: Path, dest: Path) -> None:
    missing = extract(tarball, MEMBERS, dest)
    if missing:
        raise SystemExit(f"{tarball} lacks {', '.join(missing)}")


def build(tarball: Path = TARBALL, arch_name: str = "x86_64",
          series: str = "7.3") -> tuple[Path, Path]:  # fmt: skip
    """(gup_test, gup_test_pages) for `arch_name`, built once per tarball and
    compiler into gupctl's cache."""
    stat = tarball.stat()
    compiler = kmod.user_compiler(arch_name, series)

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp)
            _extract(tarball, tree)
            source = tree / MEMBERS[0]
            (tree / "shim.c").write_text(SHIM)
            pages = source.with_name("gup_test_pages.c")
            text = source.read_text()
            assert MB_LINE in text, "upstream gup_test.c changed its MB macro"
            pages.write_text(text.replace(MB_LINE, PAGES_MB))
            for src, program in ((source, "gup_test"), (pages, "gup_test_pages")):
                argv = [compiler.cc, "-O2", "-Wall", "-I", str(tree), "-o", str(tree / program),
                        str(src), str(tree / "shim.c"), "-pthread"]  # fmt: skip
                subprocess.run(compiler.argv(argv, tree), check=True)
                shutil.copy2(tree / program, out / program)

    key = cache.key([str(tarball), str(stat.st_size), str(stat.st_mtime_ns), compiler.identity])
    suffix = "" if arch_name == "x86_64" else f"-{arch_name}"
    out = cache.entry("benchmarks", f"c-gup_test{suffix}-{key}", make)
    return out / "gup_test", out / "gup_test_pages"


BARE_LOOP = Path(__file__).resolve().parent / "bare_loop.c"
UAPI = Path(__file__).resolve().parents[1] / "kmod"


def build_bare_loop(arch_name: str = "x86_64", series: str = "7.3") -> Path:
    """benchmarks/bare_loop.c for `arch_name`, built once per content of it,
    its header and the compiler."""
    compiler = kmod.user_compiler(arch_name, series)

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp)
            for f in (BARE_LOOP, UAPI / "gup_test.h"):
                (src / f.name).write_bytes(f.read_bytes())
            argv = [compiler.cc, "-O2", "-Wall", "-Werror", "-I", str(src), "-o",
                    str(src / "bare_loop"), str(src / BARE_LOOP.name), "-pthread"]  # fmt: skip
            subprocess.run(compiler.argv(argv, src), check=True)
            shutil.copy2(src / "bare_loop", out / "bare_loop")

    key = cache.key([BARE_LOOP.read_bytes(), (UAPI / "gup_test.h").read_bytes(), compiler.identity])
    suffix = "" if arch_name == "x86_64" else f"-{arch_name}"
    return cache.entry("benchmarks", f"bare_loop{suffix}-{key}", make) / "bare_loop"
