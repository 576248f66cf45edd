"""A guest kernel with CONFIG_GUP_TEST, built from a kernel source tree or tarball.

`make ARCH=x86_64 tinyconfig` plus gup_test.config (beside this file), built
out of tree (O=) in a scratch directory, so that a source tree is never
written to.  Only bzImage, .config and the release are kept, under
kmod.cache_dir()/kernels/<key>; the key covers the source, the fragment and
the compiler, so a change to any of them builds a new kernel.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from logging import getLogger
from pathlib import Path

from gupctl.errors import VmError
from gupctl.vm.kmod import cache_dir

#: Debian's package linux-source-6.12.
DEFAULT_SOURCE = Path("/usr/src/linux-source-6.12.tar.xz")
#: x86_64, not x86: with ARCH=x86 on this host, tinyconfig would be 32-bit.
ARCH = "x86_64"
IMAGE = "arch/x86/boot/bzImage"
#: What a cache entry holds; an entry missing any of them is not used.
KEPT = ("bzImage", ".config", "release")

Progress = Callable[[str], None]
log = getLogger(__name__)


def fragment() -> str:
    """The config fragment merged over tinyconfig (gupctl/vm/gup_test.config)."""
    return resources.files("gupctl.vm").joinpath("gup_test.config").read_text()


def required(fragment_text: str) -> list[str]:
    """The options the fragment sets to y, e.g. ["CONFIG_64BIT", ...]."""
    lines = (line.strip() for line in fragment_text.splitlines())
    return [
        line[: -len("=y")] for line in lines if line.startswith("CONFIG_") and line.endswith("=y")
    ]


def dropped(fragment_text: str, config_text: str) -> list[str]:
    """Options the fragment wants =y that the final .config does not have =y.

    Kconfig silently drops an option whose dependencies are off, so this is
    how a dependency missing from the fragment shows up.
    """
    final = {line.strip() for line in config_text.splitlines()}
    return [name for name in required(fragment_text) if f"{name}=y" not in final]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tarball_sha256(tarball: Path) -> str:
    # Hashing 150 MB costs a second on every run; remember it by path, size
    # and mtime, which change whenever apt replaces the file.
    st = tarball.stat()
    stamp = f"{tarball.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    memo = cache_dir() / "kernels" / ".sha256" / hashlib.sha256(stamp).hexdigest()[:16]
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    value = _sha256_file(tarball)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}")
    tmp.write_text(value + "\n")
    tmp.rename(memo)
    return value


def source_identity(source: Path) -> str:
    """What names this source's contents: a tarball's sha256; a git tree's HEAD;
    otherwise a directory's path and the mtime of its Makefile (which a new
    release changes)."""
    if source.is_file():
        return "tarball:" + _tarball_sha256(source)
    if (source / ".git").exists():
        proc = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return "git:" + proc.stdout.strip()
    return f"dir:{source.resolve()}:{(source / 'Makefile').stat().st_mtime_ns}"


def compiler_version() -> str:
    """`gcc --version`'s first line: a new compiler means a new kernel."""
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise VmError("gcc is not installed (Debian: gcc)", "tool") from None
    return out.splitlines()[0] if out else ""


def cache_key(identity: str, fragment_text: str, compiler: str) -> str:
    """The cache entry's name: 16 hex digits of sha256 over all three."""
    digest = hashlib.sha256("\0".join((identity, fragment_text, compiler)).encode())
    return digest.hexdigest()[:16]


def resolve_source(path: str | None) -> Path:
    """The tarball or tree `path` names (default: DEFAULT_SOURCE), checked."""
    source = Path(path).expanduser().resolve() if path else DEFAULT_SOURCE
    if source.is_file() or (source / "Makefile").is_file():
        return source
    hint = " (Debian: linux-source-6.12)" if source == DEFAULT_SOURCE else ""
    raise VmError(f"no kernel source tarball or tree at {source}{hint}", "kernel")


def build(source: Path | None = None, progress: Progress | None = None) -> Path:
    """The cache entry (bzImage, .config, release) for `source`, built if needed.

    Progress lines go to `progress`, else to logging; the first line is a
    warning so that a build of several minutes does not pass in silence.
    """
    say = progress or log.info
    source = source or resolve_source(None)
    text = fragment()
    key = cache_key(source_identity(source), text, compiler_version())
    kernels = cache_dir() / "kernels"
    entry = kernels / key
    if _complete(entry):
        return entry
    kernels.mkdir(parents=True, exist_ok=True)
    with _locked(kernels / f".{key}.lock"):
        if _complete(entry):
            return entry  # another gupctl built it while we waited
        (progress or log.warning)(f"building a gup_test kernel from {source} (a few minutes)")
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=kernels))
        try:
            out = _Build(source, scratch, say).run(text)
            shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover
            out.rename(entry)
            (kernels / f"{key}.log").unlink(missing_ok=True)  # an earlier failure's
        except VmError as e:
            failed = kernels / f"{key}.log"  # the CLI shows one line: keep the log
            failed.write_text(e.log or "")
            raise VmError(f"{e.what} (build log: {failed})", e.kind, e.log) from None
        finally:
            if os.environ.get("GUPCTL_KEEP_BUILD"):
                say(f"build tree kept in {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    say(f"kernel {(entry / 'release').read_text().strip()} cached in {entry}")
    return entry


def _complete(entry: Path) -> bool:
    return all((entry / name).exists() for name in KEPT)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two gupctl runs starting at once build once; the second waits here.
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class _Build:
    """One build in `scratch`: src/ (an extracted tarball), obj/ (O=), out/."""

    def __init__(self, source: Path, scratch: Path, say: Progress) -> None:
        self.source, self.scratch, self.say = source, scratch, say
        self.obj = scratch / "obj"
        self.log: list[str] = []

    def run(self, fragment_text: str) -> Path:
        src = self.source
        if src.is_file():
            src = self.scratch / "src"
            src.mkdir()
            self.say(f"extracting {self.source}")
            self._run(["tar", "-xf", str(self.source), "-C", str(src), "--strip-components=1"])
        make = ["make", "-C", str(src), f"O={self.obj}", f"ARCH={ARCH}"]
        self.say("configuring: tinyconfig + gup_test.config")
        self._run([*make, "tinyconfig"])
        # Appended lines win over tinyconfig's (kconfig: "override: reassigning").
        with (self.obj / ".config").open("a") as config:
            config.write(fragment_text)
        self._run([*make, "olddefconfig"])
        lost = dropped(fragment_text, (self.obj / ".config").read_text())
        if lost:
            raise VmError(
                f"the kernel config dropped {', '.join(lost)}: a dependency is missing "
                "from gupctl/vm/gup_test.config",
                "build",
                "".join(self.log),
            )
        jobs = os.cpu_count() or 1
        self.say(f"compiling bzImage with {jobs} jobs")
        self._run([*make, f"-j{jobs}", "bzImage"])
        release = self._run([*make, "-s", "kernelrelease"]).strip().splitlines()[-1]
        out = self.scratch / "out"
        out.mkdir()
        shutil.copy2(self.obj / IMAGE, out / "bzImage")
        shutil.copy2(self.obj / ".config", out / ".config")
        (out / "release").write_text(release + "\n")
        return out

    def _run(self, argv: list[str]) -> str:
        """Run one step, its output into the log; every minute say how far it is."""
        self.log.append(f"$ {' '.join(argv)}\n")
        start = last = time.monotonic()
        lines: list[str] = []
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if time.monotonic() - last > 60:
                    last = time.monotonic()
                    self.say(f"  {last - start:.0f} s, {len(lines)} lines: {line.strip()}")
        self.log += lines
        if proc.returncode != 0:
            raise VmError(
                f"kernel build step failed: {shlex.join(argv)}", "build", "".join(self.log)
            )
        return "".join(lines)
