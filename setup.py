"""The cffi extension (gupctl._loop), the parsed cffi declarations
(gupctl._ffi) and the kmod's sources in the wheel; the rest is in
pyproject.toml."""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: The kmod's sources, as DKMS and `gupctl kmod` need them: no build products.
KMOD_FILES = ("Kbuild", "Makefile", "dkms.conf", "*.c", "*.h", "probes/Kbuild", "probes/*.c")
#: Where the wheel carries them (gupctl/vm/kmod.py source_dir looks there).
KMOD_DEST = "gupctl/kmod-src"


class BuildPy(build_py):
    """build_py that also copies kmod/ into the package: the wheel then lets
    `gupctl kmod` and `gupctl vm` build the module outside any checkout; and
    writes gupctl/_ffi.py, the cffi declarations parsed once (gupctl/_cdefs.py),
    into the source tree for an editable install, else into the wheel."""

    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("_cdefs", HERE / "gupctl/_cdefs.py")
        assert spec is not None and spec.loader is not None
        cdefs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cdefs)
        where = HERE if getattr(self, "editable_mode", False) else Path(self.build_lib)
        cdefs.emit(str(where / "gupctl" / "_ffi.py"))
        dest = Path(self.build_lib) / KMOD_DEST
        for pattern in KMOD_FILES:
            for src in sorted((HERE / "kmod").glob(pattern)):
                target = dest / src.relative_to(HERE / "kmod")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


setup(
    cffi_modules=["gupctl/_loop_build.py:ffibuilder"],
    cmdclass={"build_py": BuildPy},
    # cffi builds _loop against the limited API: one wheel for every CPython
    # from 3.9 (the whole-system test installs it into trixie's 3.13).
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
