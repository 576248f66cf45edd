"""Build the upstream C gup_test from the kernel source the VM's kernel comes from.

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

import subprocess
import tempfile
from pathlib import Path

from gupctl import cache
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


def build(tarball: Path = TARBALL) -> tuple[Path, Path]:
    """(gup_test, gup_test_pages), built once per tarball into gupctl's cache."""
    stat = tarball.stat()

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
            for src, name in ((source, "gup_test"), (pages, "gup_test_pages")):
                argv = ["cc", "-O2", "-Wall", "-I", str(tree), "-o", str(out / name), str(src),
                        str(tree / "shim.c"), "-pthread"]  # fmt: skip
                subprocess.run(argv, check=True)

    key = cache.key([str(tarball), str(stat.st_size), str(stat.st_mtime_ns)])
    out = cache.entry("benchmarks", f"c-gup_test-{key}", make)
    return out / "gup_test", out / "gup_test_pages"


BARE_LOOP = Path(__file__).resolve().parent / "bare_loop.c"
UAPI = Path(__file__).resolve().parents[1] / "kmod"


def build_bare_loop() -> Path:
    """benchmarks/bare_loop.c, built once per content of it and its header."""

    def make(out: Path) -> None:
        argv = ["cc", "-O2", "-Wall", "-Werror", "-I", str(UAPI), "-o", str(out / "bare_loop"),
                str(BARE_LOOP), "-pthread"]  # fmt: skip
        subprocess.run(argv, check=True)

    key = cache.key([BARE_LOOP.read_bytes(), (UAPI / "gup_test.h").read_bytes()])
    return cache.entry("benchmarks", f"bare_loop-{key}", make) / "bare_loop"
