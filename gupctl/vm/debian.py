"""Debian's kernels from Debian's archive, without touching this machine's apt.

gupctl keeps an apt configuration of its own under the cache (sources,
lists, downloads) that knows every suite with a kernel gupctl runs on:
bookworm (6.1), bookworm-security (6.1, 6.12), trixie (6.12),
trixie-backports (7.3) and sid (7.2).  Packages are downloaded there and
unpacked with dpkg-deb, never installed: this machine's apt sources, lists
and package database stay as they are.

Headers are another matter: Debian's linux-headers need the compiler and
glibc of their own suite (7.3's kbuild wants glibc 2.38 and gcc-14), so they
are installed into a build root of that suite made with mmdebstrap, and the
kmod is built there in a chroot (gupctl/vm/kmod.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import TypeVar

from gupctl import cache
from gupctl import release as _release
from gupctl.errors import EnvError, VmError
from gupctl.vm.arch import ARCHES, Arch

log = getLogger(__name__)


def _archive(variable: str, default: str) -> str:
    """$`variable` (an archive's URL), else `default`; EnvError naming it for
    what apt's sources.list cannot take (one token: a scheme and no space)."""
    value = os.environ.get(variable) or default
    if not re.fullmatch(r"(https?|file)://[^\s\[\]]+", value):
        raise EnvError(variable, value, "is not an http://, https:// or file:// URL", "mirror")
    return value


MIRROR = _archive("GUPCTL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = _archive("GUPCTL_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: suite -> archive.  Kernels reach bookworm through bookworm-security.
SUITES = {
    "bookworm": MIRROR,
    "bookworm-security": SECURITY,
    "trixie": MIRROR,
    "trixie-security": SECURITY,
    "trixie-backports": MIRROR,
    "sid": MIRROR,
}
#: The lists are fetched again when older than this (seconds).
LISTS_MAX_AGE = 24 * 3600
#: Every Debian architecture of gupctl/vm/arch.py, amd64 first: apt's own.
ARCHITECTURES = list(dict.fromkeys(["amd64", *(a.dpkg for a in ARCHES.values())]))


@dataclass(frozen=True)
class Package:
    """One package version and the suite it comes from."""

    name: str
    version: str
    suite: str


def tool(name: str) -> str:
    """The path of `name`, /usr/sbin and /sbin included (depmod, chroot are
    there and not on a user's PATH); VmError where it is not installed."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                     "/sbin"]))  # fmt: skip
    if path is None:
        raise VmError(f"{name} is not installed: gupctl needs it to use Debian's kernels", "tool")
    return path


class Apt:
    """apt-get and apt-cache on gupctl's own configuration and state."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache.cache_dir() / "apt"

    def options(self) -> list[str]:
        r = self.root
        settings = {
            "Dir::Etc::sourcelist": r / "sources.list",
            "Dir::Etc::sourceparts": "-",
            "Dir::Etc::preferences": r / "preferences",
            "Dir::Etc::preferencesparts": r / "preferences.d",
            "Dir::State::Lists": r / "lists",
            "Dir::State::status": r / "status",
            "Dir::Cache": r / "cache",
            "APT::Architecture": "amd64",
            "APT::Architectures": ",".join(ARCHITECTURES),
            "APT::Sandbox::User": "root",  # downloads land in our cache, not _apt's
        }
        return [arg for k, v in settings.items() for arg in ("-o", f"{k}={v}")]

    def _run(self, name: str, *args: str) -> str:
        proc = subprocess.run([tool(name), *self.options(), *args], capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise VmError(f"{name} {args[0]} failed: {last}", "archive", proc.stderr)
        return proc.stdout

    def _query(self, *args: str) -> str:
        """apt-cache ARGS, answered once per update of the lists: apt-cache reads
        every list each time (2 to 3 s), and `gupctl vm --kernel 7.3` asks twice
        per boot."""
        self.update()
        stamp = (self.root / "updated").stat().st_mtime_ns
        answer = self.root / "answers" / cache.key([*args, str(stamp)])
        try:
            return answer.read_text()
        except OSError:
            pass
        out = self._run("apt-cache", *args)
        tmp = answer.with_name(f"{answer.name}.{os.getpid()}")
        try:  # keeping it is a saving, not a need: a full disk, or another
            # gupctl's update() clearing the answers meanwhile, costs nothing
            answer.parent.mkdir(exist_ok=True)
            tmp.write_text(out)
            tmp.rename(answer)  # a reader sees all of it or nothing
        except OSError:
            tmp.unlink(missing_ok=True)
        return out

    def update(self, max_age: float = LISTS_MAX_AGE) -> None:
        """Fetch the package lists unless they are younger than `max_age` seconds.

        Where the archive cannot be reached but older lists exist, those are
        used, with a warning: what they name may well be in the cache.
        """
        stamp = self.root / "updated"

        def fresh() -> bool:
            # Lists of other sources (a gupctl that knew fewer architectures)
            # are stale whatever their age.
            try:
                same = (self.root / "sources.list").read_text() == self.sources()
            except OSError:
                return False
            return same and stamp.exists() and time.time() - stamp.stat().st_mtime < max_age

        if fresh():
            return
        if not KEYRING.exists():
            raise VmError(f"no Debian archive keyring at {KEYRING}", "tool")
        with cache.locked(self.root / ".lock"):
            if fresh():
                return  # another gupctl updated them while we waited
            try:
                self._update()
            except VmError as e:
                if not stamp.exists():
                    raise
                when = time.ctime(stamp.stat().st_mtime)
                log.warning(f"{e.what}: using the package lists of {when}")
                return
            stamp.touch()
            shutil.rmtree(self.root / "answers", ignore_errors=True)  # the old lists' answers

    def _update(self) -> None:
        for d in ("lists/partial", "cache/archives/partial", "preferences.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        (self.root / "preferences").touch()  # not the host's /etc/apt/preferences
        (self.root / "sources.list").write_text(self.sources())
        self._run("apt-get", "update", "-q")

    @staticmethod
    def sources() -> str:
        """sources.list: every suite, for every architecture gupctl boots."""
        arch = ",".join(ARCHITECTURES)
        return "".join(f"deb [arch={arch} signed-by={KEYRING}] {url} {suite} main\n"
                       for suite, url in SUITES.items())  # fmt: skip

    def names(self, prefix: str) -> list[str]:
        """Every package name that starts with `prefix`."""
        return self._query("pkgnames", prefix).split()

    def newest(self, name: str) -> Package:
        """The newest version of `name` and its suite (apt-cache madison)."""
        for line in self._query("madison", name).splitlines():
            # "name | version | http://deb.debian.org/debian trixie-backports/main amd64 Packages"
            fields = [f.strip() for f in line.split("|")]
            if len(fields) == 3 and fields[2].endswith("Packages"):
                suite = fields[2].split()[1].split("/")[0]
                return Package(name.partition(":")[0], fields[1], suite)
        raise VmError(f"Debian's archive has no package {name}", "kernel")

    def depends(self, name: str) -> list[str]:
        """The names `name` depends on (first alternative of each)."""
        out = self._query("show", "--no-all-versions", name)
        for line in out.splitlines():
            if line.startswith("Depends:"):
                return [d.split("|")[0].split("(")[0].strip() for d in line[8:].split(",")]
        return []

    def download(self, names: list[str], dest: Path) -> list[Path]:
        """Download the newest `names` into `dest`; the .deb files."""
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        proc = subprocess.run([tool("apt-get"), *self.options(), "download", "-q", *names],
                              cwd=dest, capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise VmError(f"downloading {', '.join(names)} failed", "archive", proc.stderr)
        return sorted(set(dest.glob("*.deb")) - before)


def image_releases(apt: Apt, flavour: str = "amd64") -> list[str]:
    """Releases of every kernel image of `flavour` in the archive, oldest first:
    not cloud, rt, dbg or unsigned ones (linux-image-R-FLAVOUR-dbg), nor
    another flavour that ends the same way (arm64-16k is not arm64)."""
    image = re.compile(rf"linux-image-(\d+\.\d+\S*?-{re.escape(flavour)})")
    found = []
    for name in apt.names("linux-image-"):
        m = image.fullmatch(name)
        if m and not re.search(rf"-(cloud|rt)-{re.escape(flavour)}$", name):
            found.append(m.group(1))
    return sorted(set(found), key=_release.sort_key)


def candidates(spec: str, apt: Apt | None = None, flavour: str = "amd64") -> list[str]:
    """The releases in the archive that `spec` (a series or a release) names,
    newest first."""
    apt = apt or Apt()
    matches = [r for r in image_releases(apt, flavour) if _release.matches(r, spec)]
    if not matches:
        raise VmError(f"Debian's archive has no {flavour} kernel {spec!r}", "kernel")
    return matches[::-1]


def resolve(spec: str, apt: Apt | None = None, flavour: str = "amd64") -> str:
    """The newest release in the archive that `spec` (a series or a release) names."""
    return candidates(spec, apt, flavour)[0]


def fetch_kernel(spec: str, arch: Arch, apt: Apt | None = None) -> tuple[Path, Path, Package]:
    """kernel_files() of the newest release `spec` names that the archive
    serves: its lists can name a release whose files are gone (trixie's
    ppc64el and s390x 6.12 updates answer 404 here), and then the next older
    one is fetched, with a warning."""
    apt = apt or Apt()
    return first_served(candidates(spec, apt, arch.flavour),
                        lambda release: kernel_files(release, apt, arch),
                        "Debian's archive lists {} but does not serve it")  # fmt: skip


T = TypeVar("T")


def first_served(choices: Sequence[str], fetch: Callable[[str], T], unserved: str) -> T:
    """fetch() of the first of `choices` whose files the archive serves: where
    a download answers 404, a warning (`unserved` names the choice) and the
    next; any other failure, or the last choice's, is raised."""
    for i, choice in enumerate(choices):
        try:
            return fetch(choice)
        except VmError as e:
            if "404" not in (e.log or "") or i + 1 == len(choices):
                raise
            log.warning(f"{unserved.format(choice)}: trying {choices[i + 1]}")
    raise VmError("nothing to fetch", "usage")


def _fetch(apt: Apt, names: list[str], root: Path) -> None:
    """Download `names` (name=version) and unpack them all into `root`;
    the .deb files do not stay."""
    debs = apt.download(names, root.parent / ".debs")
    for deb in debs:
        proc = subprocess.run([tool("dpkg-deb"), "-x", str(deb), str(root)], capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0:
            raise VmError(f"dpkg-deb -x {deb.name} failed", "archive", proc.stderr)
    shutil.rmtree(root.parent / ".debs")


def qualified(name: str, arch: Arch) -> str:
    """`name` as apt names it for `arch`: NAME:ARCH for a foreign one."""
    return name if arch.dpkg == "amd64" else f"{name}:{arch.dpkg}"


def kernel_files(release: str, apt: Apt | None = None,
                 arch: Arch = ARCHES["x86_64"]) -> tuple[Path, Path, Package]:  # fmt: skip
    """vmlinuz and /lib/modules/`release` of Debian's image, unpacked in the cache.

    7.x splits the image into linux-binary-R (vmlinuz), linux-modules-R and
    linux-base-R; 6.x ships one linux-image-R.  Whatever the image package
    depends on with R in its name is unpacked beside it.  Debian runs depmod
    at install time, so it is run here.
    """
    apt = apt or Apt()
    pkg = apt.newest(qualified(f"linux-image-{release}", arch))

    def make(scratch: Path) -> None:
        names = [pkg.name] + [d for d in apt.depends(qualified(pkg.name, arch)) if release in d]
        # name=version: the candidate apt would pick may not be the newest.
        root = scratch / "root"
        _fetch(apt, [f"{qualified(n, arch)}={pkg.version}" for n in names], root)
        if not (root / "lib").exists():  # usrmerged layout: usr/lib/modules
            (root / "lib").symlink_to("usr/lib")
        proc = subprocess.run([tool("depmod"), "-b", str(root), release], capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0:
            raise VmError(f"depmod for {release} failed", "archive", proc.stderr)

    entry = cache.entry("debian", f"{pkg.name}_{pkg.version}", make)
    root = entry / "root"
    modules = root / "lib" / "modules" / release
    # ppc64el's image is the ELF vmlinux, which QEMU's pseries boots as it is.
    boot = root / "boot"
    for image in (boot / f"vmlinuz-{release}", boot / f"vmlinux-{release}", modules / "vmlinuz"):
        if image.exists():
            return image, modules, pkg
    raise VmError(f"no vmlinuz in Debian's {pkg.name} {pkg.version}", "archive")


def pin_hook(suite: str) -> str:
    """An mmdebstrap setup hook that pins `suite` (backports) as high as the
    suite it extends.  By codename (n=): backports' Release says
    "Suite: stable-backports", so a=trixie-backports would match nothing."""
    pin = f"Package: *\\nPin: release n={suite}\\nPin-Priority: 500\\n"
    return f'--setup-hook=printf "{pin}" > "$1/etc/apt/preferences.d/gupctl"'


def buildroot(release: str, apt: Apt | None = None) -> Path:
    """A root of the headers' own suite with linux-headers-`release` installed.

    Made once with mmdebstrap (tens of seconds) and cached by the headers'
    version.  Backports are pinned like the suite itself, so that the
    headers' dependencies (linux-base) come from there too.
    """
    apt = apt or Apt()
    pkg = apt.newest(f"linux-headers-{release}")
    _root_tools(pkg.name)
    #: make and binutils' plain `as`, which kbuild calls: the headers pull in
    #: only the compiler and its triplet-prefixed binutils.
    include = [f"{pkg.name}={pkg.version}", "make", "binutils"]
    base = pkg.suite.removesuffix("-backports").removesuffix("-security")
    suites = [base] + ([pkg.suite] if pkg.suite != base else [])

    pin = pin_hook(pkg.suite)

    def make(scratch: Path) -> None:
        root = scratch / "root"
        sources = [f"deb {SUITES.get(s, MIRROR)} {s} main" for s in suites]
        argv = ["mmdebstrap", "--variant=apt", "--mode=root", "--include=" + ",".join(include),
                pin, "--customize-hook=mkdir \"$1/gupctl-build\"",
                base, str(root), *sources]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise VmError(f"mmdebstrap of a {base} root for {pkg.name} failed", "archive",
                          proc.stdout + proc.stderr)  # fmt: skip

    key = cache.key([*include, *suites, pin])
    return cache.entry("roots", f"{release}-{key}", make) / "root"


def cross_buildroot(release: str, arch: Arch, apt: Apt | None = None) -> Path:
    """An amd64 root of the headers' suite that builds for `arch`: its cross
    compiler and C library, the amd64 linux-kbuild-VERSION (Multi-Arch:
    foreign: the host tools `arch`'s headers point their scripts/ at) and
    the headers common to every flavour, installed; the flavour's own
    headers, of `arch`, unpacked into it.  Debian's own multiarch way of
    building modules for another architecture: nothing of `arch` runs.
    """
    apt = apt or Apt()
    pkg = apt.newest(qualified(f"linux-headers-{release}", arch))
    flavour_suffix = f"-{arch.flavour}"
    version = release.removesuffix(flavour_suffix)
    _root_tools(pkg.name)
    include = ["make", "binutils", f"gcc-{arch.triplet}", f"libc6-dev-{arch.dpkg}-cross",
               f"linux-kbuild-{version}", f"linux-headers-{version}-common"]  # fmt: skip
    base = pkg.suite.removesuffix("-backports").removesuffix("-security")
    suites = [base] + ([pkg.suite] if pkg.suite != base else [])
    pin = pin_hook(pkg.suite)

    def make(scratch: Path) -> None:
        debs = apt.download([f"{qualified(pkg.name, arch)}={pkg.version}"], scratch / "debs")
        sources = [f"deb {SUITES.get(s, MIRROR)} {s} main" for s in suites]
        # Over the root's /lib -> usr/lib, not in place of it: bookworm's
        # packages still ship /lib/modules.
        unpack = " && ".join(f'dpkg-deb --fsys-tarfile "{d}" | tar -x -C "$1" '
                             "--keep-directory-symlink" for d in debs)  # fmt: skip
        argv = ["mmdebstrap", "--variant=apt", "--mode=root", "--include=" + ",".join(include),
                pin, f"--customize-hook={unpack}",
                "--customize-hook=mkdir \"$1/gupctl-build\" \"$1/gupctl-sysroot\"",
                base, str(scratch / "root"), *sources]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise VmError(f"mmdebstrap of a {base} root for {pkg.name} ({arch.name}) failed",
                          "archive", proc.stdout + proc.stderr)  # fmt: skip
        shutil.rmtree(scratch / "debs")

    key = cache.key([*include, *suites, pin, pkg.version, arch.dpkg])
    return cache.entry("roots", f"{release}-{key}", make) / "root"


def unpacked(dpkg: str, suite: str, include: str, dest: Path, what: str) -> None:
    """The packages `include` names (comma-separated) and their closure, for
    architecture `dpkg` from `suite`, unpacked into `dest` by `mmdebstrap
    --variant=extract`: apt resolves, dpkg-deb unpacks, no maintainer script
    runs (so none of another architecture's code runs here)."""
    argv = [tool("mmdebstrap"), "--variant=extract", f"--architectures={dpkg}", "--mode=root",
            f"--include={include}", suite, str(dest),
            f"deb {SUITES[suite]} {suite} main"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VmError(f"unpacking {what} failed", "archive", proc.stdout + proc.stderr)


def _root_tools(name: str) -> None:
    """VmError unless this process can make a build root for `name`."""
    if os.geteuid() != 0:
        raise VmError(f"{name} needs a build root of its own suite, which only root "
                      "can make and chroot into: run as root", "usage")  # fmt: skip
    if shutil.which("mmdebstrap") is None:
        raise VmError("mmdebstrap is not installed (Debian: mmdebstrap): it makes the root "
                      f"that {name} needs", "tool")  # fmt: skip


def source_tarball(series: str, apt: Apt | None = None) -> Path:
    """Debian's linux-source-`series` tarball: /usr/src's when the package is
    installed here, else downloaded and unpacked into the cache."""
    installed = Path(f"/usr/src/linux-source-{series}.tar.xz")
    if installed.is_file():
        return installed
    apt = apt or Apt()
    pkg = apt.newest(f"linux-source-{series}")

    def make(scratch: Path) -> None:
        _fetch(apt, [f"{pkg.name}={pkg.version}"], scratch / "root")

    entry = cache.entry("debian", f"{pkg.name}_{pkg.version}", make)
    return entry / "root" / "usr" / "src" / installed.name
