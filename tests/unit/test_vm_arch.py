"""gupctl/vm/arch.py's records as QEMU, the kernel and the guest take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gupctl.errors import VmError
from gupctl.vm import arch, qemu, runner, userland


def _argv(machine: qemu.Machine, monkeypatch: pytest.MonkeyPatch,
          shared: Path | None = None) -> list[str]:  # fmt: skip
    monkeypatch.setattr(qemu.shutil, "which", lambda name: f"/usr/bin/{name}")
    return qemu.argv(Path("/k"), Path("/i"), Path("/run"), "c", Path("/log"), 3, 4, machine,
                     kvm=True, userland=shared)  # fmt: skip


@pytest.mark.parametrize("name", list(arch.ARCHES))
def test_each_arch_gets_its_qemu_machine_cpu_and_bus(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = arch.ARCHES[name]
    argv = _argv(qemu.Machine(arch=name), monkeypatch)
    assert argv[0] == f"/usr/bin/{a.qemu}"
    assert argv[argv.index("-machine") + 1] == a.machine
    # KVM only for this machine's own architecture; TCG and its CPU otherwise.
    foreign = not arch.native(a)
    assert argv[argv.index("-cpu") + 1] == (a.cpu if foreign else "host")
    devices = [argv[i + 1] for i, v in enumerate(argv) if v == "-device"]
    assert f"virtio-serial-{a.bus}" in devices
    assert sum(d.startswith(f"virtio-9p-{a.bus},") for d in devices) == 2


def test_a_foreign_userland_is_a_third_read_only_share(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _argv(qemu.Machine(arch="arm64"), monkeypatch, Path("/cache/userland/root"))
    assert "local,id=userland,path=/cache/userland/root,security_model=none,readonly=on" in argv
    assert "virtio-9p-pci,fsdev=userland,mount_tag=userland" in argv
    line = qemu.cmdline(Path("/r"), kmod=True, machine=qemu.Machine(arch="arm64"), userland=True)
    assert "gupctl_userland=1" in line.split()


@pytest.mark.parametrize(
    ("name", "console", "pools"),
    [("x86_64", "ttyS0", ["hugepagesz=2M", "hugepages=128", "hugepagesz=1G", "hugepages=1:2"]),
     ("arm64", "ttyAMA0", ["hugepagesz=2M", "hugepages=128", "hugepagesz=1G", "hugepages=1:2"]),
     # 16K pages: the PMD size is 32M; as many MiB as x86's pool; no 1G.
     ("arm64-16k", "ttyAMA0", ["hugepagesz=32M", "hugepages=8"]),
     ("ppc64el", "hvc0", ["hugepagesz=2M", "hugepages=128", "gupctl_hvc=1"]),
     ("s390x", "ttysclp0", [])],
)  # fmt: skip
def test_the_command_line_names_the_console_and_the_arch_huge_pages(
    name: str, console: str, pools: list[str]
) -> None:
    words = qemu.cmdline(Path("/r"), kmod=False, machine=qemu.Machine(arch=name)).split()
    assert f"console={console}" in words
    assert [w for w in words if w.startswith(("hugepage", "gupctl_hvc"))] == pools


def test_an_unknown_arch_names_the_choices() -> None:
    with pytest.raises(VmError, match="arm64, arm64-16k") as info:
        arch.get("mips")
    assert info.value.kind == "usage"


def test_the_guest_runs_its_own_python_for_the_hosts() -> None:
    assert userland.command(["/work/.venv/bin/python", "-m", "pytest"])[0] == userland.PYTHON
    assert userland.command(["python3.11", "-c", "1"]) == [userland.PYTHON, "-c", "1"]
    assert userland.command(["gupctl", "bench"]) == [userland.PYTHON, "-m", "gupctl", "bench"]
    assert userland.command(["uname", "-m"]) == ["uname", "-m"]


def test_a_foreign_job_puts_gupctl_and_the_site_on_pythonpath(tmp_path: Path) -> None:
    guest = userland.Guest(tmp_path / "root", "3.13", {}, ("/src/checkout", userland.SITE))
    job = runner.job_script(["/venv/bin/python", "-m", "gupctl", "info"], "/src", {},
                            guest=guest)  # fmt: skip
    assert f"export PYTHONPATH=/src/checkout:{userland.SITE}" in job.splitlines()
    assert job.splitlines()[-1] == "exec /usr/bin/python3 -m gupctl info"
    path = next(line for line in job.splitlines() if line.startswith("export PATH="))
    assert "/venv/bin" not in path  # the host's interpreter cannot run there


def test_first_served_skips_only_what_the_archive_does_not_serve() -> None:
    from gupctl.vm import debian

    def fetch(release: str) -> str:
        if release == "6.12.118":
            raise VmError("apt-get download failed", "archive", "E: Failed ... 404  Not Found")
        if release == "6.12.99":
            raise VmError("dpkg-deb -x failed", "archive", "corrupt")
        return release

    assert debian.first_served(["6.12.118", "6.12.107"], fetch, "{} not served") == "6.12.107"
    with pytest.raises(VmError, match="dpkg-deb"):  # another failure is not skipped
        debian.first_served(["6.12.99", "6.12.107"], fetch, "{}")
    with pytest.raises(VmError, match="apt-get"):  # nor the last choice's 404
        debian.first_served(["6.12.118"], fetch, "{}")


def test_cma_reshapes_node1_below_4g_and_refuses_what_cannot_fit() -> None:
    m = qemu.cma_shape(qemu.Machine(arch="arm64"), 1536 << 20)
    assert (m.cma_mib, m.node0_mib, m.node1_mib, m.hugepages_1g) == (1536, 1024, 2048, 0)
    assert "numa_cma=1:1536M" in qemu.cmdline(Path("/r"), kmod=True, machine=m).split()
    with pytest.raises(VmError, match="--cma 3072 MiB: give a whole number of MiB below") as e:
        qemu.cma_shape(qemu.Machine(arch="arm64"), 3 << 30)
    assert e.value.kind == "usage"


def test_each_record_reserves_huge_pages_where_it_can_map_them() -> None:
    assert [a.name for a in arch.ARCHES.values() if not a.huge] == ["s390x"]
    assert all(bool(a.hugepage_sizes) == a.huge for a in arch.ARCHES.values())


def test_the_running_machine_has_its_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arch.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(arch.os, "sysconf", lambda name: 16384)
    assert arch.running().name == "arm64-16k"
    monkeypatch.setattr(arch.os, "sysconf", lambda name: 65536)
    with pytest.raises(VmError, match=r"no record of this machine \(aarch64, 64K pages\)"):
        arch.running()
