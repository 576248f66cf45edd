"""A guest kernel with CONFIG_GUP_TEST, built from a kernel source tree or tarball.

`make ARCH=x86_64 tinyconfig` plus gup_test.config (beside this file), built
out of tree (O=) in a scratch directory, so that a source tree is never
written to.  Only bzImage, .config and the release are kept, under
gupctl.cache's kernels/<key>; the key covers the source, the fragment and
the compiler, so a change to any of them builds a new kernel.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable
from importlib import resources
from logging import getLogger
from pathlib import Path

from gupctl import cache
from gupctl.errors import VmError

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


def dropped(fragment_text: str, config_text: str, known: set[str] | None = None) -> list[str]:
    """Options the fragment wants =y that the final .config does not have =y.

    Kconfig silently drops an option whose dependencies are off, so this is
    how a dependency missing from the fragment shows up.  Options the tree
    does not define at all (`known`, when given) are left out: the fragment
    serves several releases, and options come and go between them.
    """
    final = {line.strip() for line in config_text.splitlines()}
    wanted = [n for n in required(fragment_text) if known is None or n in known]
    return [name for name in wanted if f"{name}=y" not in final]


def kconfig_symbols(tree: Path) -> set[str]:
    """Every CONFIG_ symbol the Kconfig files of `tree` define."""
    pattern = re.compile(r"^\s*(?:menu)?config\s+(\w+)", re.MULTILINE)
    return {
        "CONFIG_" + name
        for path in tree.rglob("Kconfig*")
        for name in pattern.findall(path.read_text(errors="replace"))
    }


def extract(tarball: Path, members: Iterable[str], dest: Path) -> list[str]:
    """Copy `members` (paths inside the tree, without the tarball's top
    directory) from a kernel source `tarball` into `dest` at the same paths,
    stopping once all are found.  Returns the ones the tarball lacks."""
    wanted = set(members)
    with tarfile.open(tarball) as tar:
        for member in tar:
            rel = member.name.partition("/")[2]
            if rel in wanted and member.isfile():
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
                wanted.discard(rel)
                if not wanted:
                    break
    return sorted(wanted)


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
    memo = cache.cache_dir() / "kernels" / ".sha256" / cache.key([stamp])
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


def resolve_source(path: str) -> Path:
    """The tarball or tree `path` names, checked."""
    source = Path(path).expanduser().resolve()
    if source.is_file() or (source / "Makefile").is_file():
        return source
    raise VmError(f"no kernel source tarball or tree at {source}", "kernel")


def build(source: Path, progress: Progress | None = None) -> Path:
    """The cache entry (bzImage, .config, release) for `source`, built if needed.

    Progress lines go to `progress`, else to logging; the first line is a
    warning so that a build of several minutes does not pass in silence.
    A failed build keeps its log beside the cache entry it would have been.
    """
    say = progress or log.info
    text = fragment()
    key = cache.key([source_identity(source), text, compiler_version()])
    log_path = cache.cache_dir() / "kernels" / f"{key}.log"

    def make(scratch: Path) -> None:
        (progress or log.warning)(f"building a gup_test kernel from {source} (a few minutes)")
        work = scratch / ".work"
        work.mkdir()
        try:
            out = _Build(source, work, say).run(text)
            for name in KEPT:
                shutil.copy2(out / name, scratch / name)
        except VmError as e:
            log_path.write_text(e.log or "")  # the CLI shows one line: keep the log
            raise VmError(f"{e.what} (build log: {log_path})", e.kind, e.log) from None
        finally:
            if os.environ.get("GUPCTL_KEEP_BUILD"):
                kept = log_path.with_suffix(".build")
                shutil.rmtree(kept, ignore_errors=True)
                work.rename(kept)  # out of the scratch directory cache.entry() removes
                say(f"build tree kept in {kept}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        log_path.unlink(missing_ok=True)  # an earlier failure's

    entry = cache.entry("kernels", key, make, complete=_complete)
    say(f"kernel {(entry / 'release').read_text().strip()} in {entry}")
    return entry


def _complete(entry: Path) -> bool:
    return all((entry / name).exists() for name in KEPT)


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
        known = kconfig_symbols(src)
        absent = [n for n in required(fragment_text) if n not in known]
        if absent:
            self.say(f"not in this kernel, left out: {', '.join(absent)}")
        lost = dropped(fragment_text, (self.obj / ".config").read_text(), known)
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
