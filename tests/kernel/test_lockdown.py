"""Kernel lockdown: the kernel's gup_test refuses, the signed kmod serves, unsigned is refused.

tests/run.py runs these in a VM on 7.3 built from source, booted with
`gupctl vm --lockdown integrity` and the kmod, signed with the key of that
kernel's own build (gupctl/vm/kmod.py).  conftest.py selects them only under
lockdown (and only them there).  Oracles: /sys/kernel/security/lockdown,
open(2)'s errno, upstream's gup_test built from the kernel's source, the
kernel's module loader and taint flags, and node 1's pin counters.

`python tests/kernel/test_lockdown.py` builds upstream's gup_test on the host
(into the cache the guest reads) and prints its path.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gupctl.syscalls import number

pytestmark = pytest.mark.lockdown

DEBUGFS = "/sys/kernel/debug/gup_test"
MISC = "/dev/gup_test"
MIB = 1 << 20
#: The source of the kernel under lockdown (tests/run.py boots source:7.3).
SERIES = "7.3"
#: tools/testing/selftests/mm/gup_test.c and what it includes and links, and
#: the tree's <linux/fs.h>: vm_util.h and vm_util.c use procmap_query and
#: PAGEMAP_SCAN (v6.11, v6.7), which bookworm's uapi headers predate; the
#: selftests' Makefile puts the tree's own uapi headers first in the same way.
MM = "tools/testing/selftests/mm"
MEMBERS = (f"{MM}/gup_test.c", f"{MM}/vm_util.c", f"{MM}/vm_util.h",
           f"{MM}/hugepage_settings.c", f"{MM}/hugepage_settings.h",
           "tools/testing/selftests/kselftest.h", "mm/gup_test.h",
           "include/uapi/linux/fs.h")  # fmt: skip
CFLAGS = ["-O2", "-Wall", "-pthread"]
#: What a signed module ends with (scripts/sign-file.c); before it, the
#: signature and a 12-byte struct module_signature whose last field is the
#: signature's length, big-endian.
SIG_MAGIC = b"~Module signature appended~\n"


def build_upstream(tarball: Path) -> Path:
    """Upstream's gup_test from `tarball`, unmodified, built once into the cache."""
    from gupctl import cache
    from gupctl.vm import build

    def make(scratch: Path) -> None:
        tree = scratch / "src"
        missing = build.extract(tarball, MEMBERS, tree)
        if missing:
            raise RuntimeError(f"{tarball} lacks {', '.join(missing)}")
        uapi = scratch / "uapi"
        (uapi / "linux").mkdir(parents=True)
        (tree / "include/uapi/linux/fs.h").rename(uapi / "linux" / "fs.h")
        argv = ["gcc", *CFLAGS, "-I", str(uapi), "-I", str(tree), "-I", str(tree / MM / ".."),
                "-o", str(scratch / "gup_test"), "gup_test.c", "vm_util.c",
                "hugepage_settings.c"]  # fmt: skip
        proc = subprocess.run(argv, cwd=tree / MM, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building upstream's gup_test failed:\n{proc.stderr}")
        shutil.rmtree(tree)
        shutil.rmtree(uapi)

    parts = [build.source_identity(tarball), build.compiler_version(), *MEMBERS, *CFLAGS]
    return cache.entry("upstream", f"gup_test-{SERIES}-{cache.key(parts)}", make) / "gup_test"


def upstream_path() -> Path:
    from gupctl.vm import debian

    return build_upstream(debian.source_tarball(SERIES))


def _dmesg() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout


def _kmod() -> Path:
    """The gupctl.ko guest-init.sh loaded: gupctl_run=DIR on the command line."""
    m = re.search(r"\bgupctl_run=(\S+)", Path("/proc/cmdline").read_text())
    assert m, "not in gupctl's VM"
    return Path(m.group(1)) / "gupctl.ko"


def _strip_signature(ko: bytes) -> bytes:
    assert ko.endswith(SIG_MAGIC), "gupctl.ko is not signed"
    sig_len = int.from_bytes(ko[-len(SIG_MAGIC) - 4 : -len(SIG_MAGIC)], "big")
    return ko[: -len(SIG_MAGIC) - 12 - sig_len]


def _init_module(image: bytes) -> int:
    """init_module(2) on `image`: 0, or the errno it failed with."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(image, len(image))
    ret = libc.syscall(number("init_module"), buf, ctypes.c_ulong(len(image)), b"")
    return ctypes.get_errno() if ret != 0 else 0


def test_kernel_is_locked_down_at_integrity() -> None:
    from gupctl import lockdown

    text = Path("/sys/kernel/security/lockdown").read_text()
    assert "[integrity]" in text.split(), text
    assert lockdown.level() == "integrity"
    assert "Kernel is locked down from command line" in _dmesg()


def test_debugfs_gup_test_refuses_with_eperm() -> None:
    assert os.path.exists(DEBUGFS)  # the kernel's own (CONFIG_GUP_TEST=y) ...
    with pytest.raises(PermissionError) as e:
        os.open(DEBUGFS, os.O_RDWR)  # ... which lockdown will not open, even for root
    assert e.value.errno == errno.EPERM
    assert "debugfs access is restricted" in _dmesg()


def test_upstream_selftest_says_run_as_root() -> None:
    binary = upstream_path()
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    print(ran.stdout)
    # 7.3's gup_test.c reports every open failure as this skip, EPERM included.
    assert f"# failed to open {DEBUGFS}: Operation not permitted" in ran.stdout
    assert "ok 1 # SKIP Please run this test as root" in ran.stdout
    assert ran.returncode == 0  # ksft_exit_pass() after the skip


def test_gupctl_picks_the_kmods_device() -> None:
    from gupctl.device import locate

    assert Path("/sys/module/gupctl").is_dir()
    assert locate() == MISC


def test_bench_balances_through_the_kmod(counted, node) -> None:
    commands = ["gup_fast_benchmark", "pin_fast_benchmark", "pin_longterm_benchmark"]
    runs, acquired, released = counted("bench", *commands, "-s", "32M", "--check-balance")
    pins = 2 * 32 * MIB // 4096  # the two pin commands; gup_fast takes none
    assert (acquired, released) == (pins, pins)
    assert [r["command"] for r in runs] == commands
    assert all(r["balance"]["exact"] for r in runs)


def test_selftest_pin_cases_through_the_kmod(gupctl) -> None:
    # pin_fast, pin and pin_longterm over THP, no THP and hugetlb, shared and
    # private, write and read, 512 pages a call: 36 of the matrix's cases.
    ran = gupctl("selftest", "--json", "pin*.n512", check=False, timeout=1800)
    report = ran.json()
    bad = [f"{r['name']}: {r.get('reason')}" for r in report["results"] if r["status"] != "pass"]
    assert not bad, "\n".join(bad)
    assert report["counts"] == {"pass": 36, "fail": 0, "skip": 0, "xfail": 0}
    assert ran.returncode == 0, ran.stderr


def test_debugfs_named_explicitly_gets_the_lockdown_hint(gupctl) -> None:
    ran = gupctl("bench", "--device", DEBUGFS, "pin_fast_benchmark", check=False)
    assert ran.returncode != 0
    (line,) = ran.stderr.strip().splitlines()
    assert "locked down" in line and "kmod" in line and "Traceback" not in ran.stderr


def test_loaded_kmod_passed_the_signature_check() -> None:
    # An unsigned (or unverified) module taints the kernel with E (TAINT_UNSIGNED_MODULE, 13).
    assert "E" not in Path("/sys/module/gupctl/taint").read_text()
    assert not int(Path("/proc/sys/kernel/tainted").read_text()) & (1 << 13)


def test_unsigned_kmod_is_refused() -> None:
    signed = _kmod().read_bytes()
    # The signed module passes the signature check and meets the loaded one ...
    assert _init_module(signed) == errno.EEXIST
    # ... the same bytes without the signature are refused before that.
    assert _init_module(_strip_signature(signed)) == errno.EPERM
    assert "unsigned module loading is restricted" in _dmesg()


def test_kmod_signed_with_another_key_is_refused(tmp_path) -> None:
    signers = sorted(Path("/usr/lib").glob("linux-kbuild-*/scripts/sign-file"))
    if not signers or not shutil.which("openssl"):
        pytest.fail("no scripts/sign-file (Debian: linux-kbuild-*) or openssl on the host")
    key = tmp_path / "untrusted.pem"
    subprocess.run(["openssl", "req", "-new", "-nodes", "-x509", "-newkey", "rsa:2048",
                    "-subj", "/CN=gupctl untrusted", "-days", "1", "-batch",
                    "-keyout", str(key), "-out", str(key)],
                   check=True, capture_output=True)  # fmt: skip
    ko = tmp_path / "gupctl.ko"
    ko.write_bytes(_strip_signature(_kmod().read_bytes()))
    # The kernel's own hash, so that the key is all that differs.
    config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    m = re.search(r'^CONFIG_MODULE_SIG_HASH="(\w+)"', config, re.MULTILINE)
    assert m, "the kernel names no CONFIG_MODULE_SIG_HASH"
    subprocess.run([str(signers[-1]), m.group(1), str(key), str(key), str(ko)], check=True)
    image = ko.read_bytes()
    assert image.endswith(SIG_MAGIC)
    # A key not in the kernel's keyring: ENOKEY inside, which lockdown turns into EPERM.
    assert _init_module(image) == errno.EPERM


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(upstream_path())
