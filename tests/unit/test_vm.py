"""The VM's host side: initramfs, module order, QEMU argv, job script."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gupctl.vm import initramfs, kernel, qemu, resolve, runner


def test_cpio_lists_with_busybox_cpio(tmp_path: Path) -> None:
    archive = initramfs.Cpio()
    archive.dir("bin")
    archive.file("bin/hello", b"hello\n", 0o755)
    archive.chardev("dev-console", 5, 1)
    path = tmp_path / "a.cpio"
    path.write_bytes(archive.finish())
    busybox = shutil.which("busybox")
    assert busybox, "busybox (busybox-static) is needed"
    listing = subprocess.run([busybox, "cpio", "-t"], stdin=path.open("rb"), capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    assert listing == ["bin", "bin/hello", "dev-console"]
    subprocess.run([busybox, "cpio", "-i", "-d"], stdin=path.open("rb"), cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    assert (tmp_path / "bin" / "hello").read_bytes() == b"hello\n"


def _installed(series: str) -> kernel.Kernel:
    try:
        return resolve.find(series, headers=False)
    except Exception as e:
        pytest.fail(f"Debian {series} kernel not installed ({e}): run .ci/setup")


def test_module_closure_puts_dependencies_first() -> None:
    k = _installed("6.1")
    order = [Path(p).name.split(".ko")[0] for p in initramfs.module_closure(k)]
    # On Debian 6.1 virtio_pci and virtio_console are modules; 9p needs netfs.
    for dep, mod in (("virtio", "virtio_pci"), ("9pnet", "9pnet_virtio"), ("netfs", "9p"),
                     ("9pnet", "9p")):  # fmt: skip
        assert order.index(dep) < order.index(mod)
    assert len(order) == len(set(order))


def test_module_closure_skips_builtins() -> None:
    k = _installed("6.12")
    names = [Path(p).name.split(".ko")[0] for p in initramfs.module_closure(k)]
    assert "virtio_pci" not in names  # built in on Debian 6.12
    assert "9p" in names


def test_initramfs_holds_init_busybox_modules(tmp_path: Path) -> None:
    k = _installed("6.12")
    dest = initramfs.build(k, tmp_path / "i.cpio.gz")
    raw = gzip.decompress(dest.read_bytes())
    for name in (b"init", b"bin/busybox", b"modules.list", b"lib/modules/9p.ko", b"dev/console"):
        assert name + b"\0" in raw


def test_argv_groups() -> None:
    argv = qemu.argv(Path("/boot/vmlinuz"), Path("/i"), Path("/run"), "console=ttyS0",
                     Path("/c.log"), 7, 8, qemu.Machine(), kvm=False)  # fmt: skip
    joined = " ".join(argv)
    assert "-accel tcg" in joined and "kvm" not in joined
    assert "node,nodeid=1,memdev=mem1" in joined  # memory-only node
    assert "socket,id=out,fd=7" in joined and "socket,id=err,fd=8" in joined
    assert "readonly=on" in joined and "-no-reboot" in argv


def test_cmdline() -> None:
    line = qemu.cmdline(Path("/r"), kmod=True, tty=False)
    assert "gupctl_run=/r" in line and "gupctl_kmod=1" in line and "panic=-1" in line
    assert "gupctl_tty" not in line and "gupctl_modules" not in line
    line = qemu.cmdline(Path("/r"), kmod=True, modules=Path("/c/lib/modules/7.3.4+deb13-amd64"))
    assert "gupctl_modules=/c/lib/modules/7.3.4+deb13-amd64" in line.split()
    assert "movablecore" not in line
    line = qemu.cmdline(Path("/r"), kmod=False, machine=qemu.Machine(movablecore_mib=512))
    assert "movablecore=512M" in line.split()


def test_job_script_quotes_and_sets_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    job = runner.job_script(["printf", "%s\n", "a b", "$HOME"], "/work dir", {"X": "1"})
    assert "cd '/work dir' || exit 125" in job
    assert "exec printf '%s\n' 'a b' '$HOME'" in job
    assert "export CI=true" in job and "export GUPCTL_NUMA_NODE=1" in job
    assert "export X=1" in job


def test_problem_patterns() -> None:
    bad = [
        "WARNING: CPU: 0 PID: 1 at mm/gup.c:1 x",
        "BUG: kernel NULL pointer dereference",
        "Oops: 0000 [#1] SMP",
        "Kernel panic - not syncing: x",
        "page dumped because: gup_test failure",
    ]
    good = ["gupctl: loading out-of-tree module taints kernel.",
            "page dumped because: gup_test: dump_pages() test"]  # fmt: skip
    assert all(runner.PROBLEM.search(line) for line in bad)
    assert not any(runner.PROBLEM.search(line) for line in good)


def test_expected_problems_are_bracketed() -> None:
    """Problems between kmsg.EXPECTED_BEGIN and _END (upstream's known WARNs,
    test_fuzz.py's record) fail no run; before and after them they do."""
    from gupctl import kmsg

    log = "\n".join([
        "[ 1.0] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 before",
        f"[ 2.0] {kmsg.EXPECTED_BEGIN}", "[ 2.1] WARNING: CPU: 0 PID: 1 at mm/gup.c:2 known",
        f"[ 2.2] {kmsg.EXPECTED_END}", "[ 3.0] BUG: kernel NULL pointer dereference after",
    ])  # fmt: skip
    before, after = "[ 1.0] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 before", "[ 3.0] BUG: kernel NULL"
    assert runner.problems(log) == [before, after + " pointer dereference after"]
    unclosed = f"{kmsg.EXPECTED_BEGIN}\nOops: 0000 [#1] SMP"
    assert runner.problems(unclosed) == ["Oops: 0000 [#1] SMP"]  # the test never ended it


def test_unknown_kernel_is_a_vm_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from gupctl.errors import VmError
    from gupctl.vm import debian

    # What the archive offers, without asking it.
    offered = ["6.1.0-56-amd64", "6.12.117+deb12-amd64", "7.3.4+deb13-amd64"]
    monkeypatch.setattr(debian, "image_releases", lambda apt, flavour="amd64": offered)
    assert debian.resolve("7.3") == "7.3.4+deb13-amd64"
    assert debian.resolve("6.1") == "6.1.0-56-amd64"
    with pytest.raises(VmError) as info:
        resolve.find("2.6")
    assert info.value.kind == "kernel"
    with pytest.raises(VmError) as info:
        resolve.find("bogus")
    assert info.value.kind == "usage"


def test_madison_and_image_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gupctl.vm import debian

    apt = debian.Apt(tmp_path)
    madison = ("linux-headers-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | "
               "http://deb.debian.org/debian trixie-backports/main amd64 Packages\n")  # fmt: skip
    names = ["linux-image-7.3.4+deb13-amd64", "linux-image-7.3.4+deb13-cloud-amd64",
             "linux-image-7.3.4+deb13-amd64-dbg", "linux-image-7.3.4+deb13-rt-amd64",
             "linux-image-7.3.4+deb13-amd64-unsigned", "linux-image-amd64",
             "linux-image-7.3.4+deb13-arm64", "linux-image-7.3.4+deb13-arm64-16k",
             "linux-image-7.3.4+deb13-cloud-arm64", "linux-image-7.3.4+deb13-rt-arm64",
             "linux-image-7.3.4+deb13-arm64-16k-dbg"]  # fmt: skip
    calls = []

    def run(*a: str) -> str:
        calls.append(a)
        return madison if a[1] == "madison" else " ".join(names)

    monkeypatch.setattr(apt, "update", lambda: None)
    monkeypatch.setattr(apt, "_run", run)
    (tmp_path / "updated").touch()
    for _ in range(2):  # asked once per update of the lists, then answered from the cache
        pkg = apt.newest("linux-headers-7.3.4+deb13-amd64")
        assert (pkg.version, pkg.suite) == ("7.3.4-1~bpo13+1", "trixie-backports")
        assert debian.image_releases(apt) == ["7.3.4+deb13-amd64"]
        # A flavour is not another that starts the same (arm64, arm64-16k).
        assert debian.image_releases(apt, "arm64") == ["7.3.4+deb13-arm64"]
        assert debian.image_releases(apt, "arm64-16k") == ["7.3.4+deb13-arm64-16k"]
    assert len(calls) == 2
    os.utime(tmp_path / "updated", ns=(1, 1))  # lists updated: asked again
    apt.newest("linux-headers-7.3.4+deb13-amd64")
    assert len(calls) == 3


def test_build_root_make_argv_chroots_with_a_clean_environment() -> None:
    from gupctl.vm import kmod

    k = kernel.Kernel("7.3.4+deb13-amd64", Path("/v"), Path("/m"),
                      Path("/lib/modules/7.3.4+deb13-amd64/build"), Path("/roots/r"))  # fmt: skip
    argv = kmod.make_argv(k, Path("/w"), "KCFLAGS=-Werror")
    assert argv[:4] == ["unshare", "--mount", "--propagation=private", "--fork"]
    assert argv[8] == "/roots/r"
    kdir = "KDIR=/lib/modules/7.3.4+deb13-amd64/build"
    assert argv[9:] == ["make", "-C", kmod.CHROOT_DIR, kdir, "KCFLAGS=-Werror"]
    assert "env -i" in argv[6] and 'mount -t proc proc "$1/proc"' in argv[6]
    assert f'mount --bind /w "$1"{kmod.CHROOT_DIR} && ' in argv[6]
    # Another architecture's kernel: kbuild's ARCH and the cross compiler.
    arm = kernel.Kernel("7.3.4+deb13-arm64", Path("/v"), Path("/m"), Path("/h"), Path("/r"),
                        arch="arm64")  # fmt: skip
    argv = kmod.make_argv(arm, Path("/w"))
    assert argv[-2:] == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_bytecode_root_made_in_a_users_checkout_goes_back_to_its_owner(tmp_path) -> None:
    # `sudo gupctl vm` compiles a user's checkout as root; the user must stay
    # able to rewrite its bytecode.  Root's own directories stay root's.
    users, roots = tmp_path / "users", tmp_path / "roots"
    for d in (users, roots):
        (d / "__pycache__").mkdir(parents=True)
        (d / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"")
    os.chown(users, 4242, 4243)
    runner.give_back_bytecode(tmp_path)
    for path in (users / "__pycache__", users / "__pycache__" / "m.cpython-311.pyc"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4243)
    assert (roots / "__pycache__" / "m.cpython-311.pyc").stat().st_uid == 0
