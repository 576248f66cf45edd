"""`gupctl doctor` on fake machines: files under tmp_path, the kmod's state faked."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gupctl import device, doctor, module, numa
from gupctl.cli import main
from gupctl.doctor import facts, optional, rows
from gupctl.vm import qemu

RELEASE = os.uname().release
NAMES = ["gup_test device", "kernel config", "module loading", "debugfs", "lockdown",
         "kernel headers", "DKMS", "module signing", "gupctl group", "memory-only NUMA node",
         "THP", "hugetlb", "QEMU", "KVM"]  # fmt: skip


class Machine:
    """A machine under tmp_path; tests change its attributes, then call report()."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.user, self.is_root, self.groups, self.gid = "root", True, frozenset([0]), None
        self.denied: dict[str, int] = {}  # path: errno that opening it gives
        self.qemu: str | None = "/usr/bin/qemu-system-x86_64"
        self.kvm = True
        self.kmod = module.ModuleStatus(
            release=RELEASE, version="0.1.0", sources="/src/kmod", headers="/lib/modules/R/build",
            dkms="/usr/sbin/dkms",
        )  # fmt: skip
        self.fail_status = False
        self.write("proc/modules", "")
        self.write("proc/sys/kernel/modules_disabled", "0\n")
        self.write("proc/self/mounts", "sysfs /sys sysfs rw 0 0\n")
        self.write(f"boot/config-{RELEASE}", "# CONFIG_GUP_TEST is not set\nCONFIG_MODULES=y\n")
        self.write("etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
        self.write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
        self.write("sys/firmware/efi/systab", "")
        self.write("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
        self.hugepages(2048, 64, 64)
        self.node(0, "0-1", 2048)
        self.node(1, "", 2048)
        for name, path in [("PROC_MODULES", "proc/modules"),
                           ("MODULES_DISABLED", "proc/sys/kernel/modules_disabled"),
                           ("OS_RELEASE", "etc/os-release"),
                           ("LOCKDOWN", "sys/kernel/security/lockdown"),
                           ("EFI", "sys/firmware/efi")]:  # fmt: skip
            monkeypatch.setattr(facts, name, root / path)
        for name, path in [("MOUNTS", "proc/self/mounts"), ("BOOT", "boot"),
                           ("PROC_CONFIG", "proc/config.gz")]:  # fmt: skip
            monkeypatch.setattr(device, name, root / path)
        monkeypatch.setattr(optional, "THP_ENABLED",
                            root / "sys/kernel/mm/transparent_hugepage/enabled")  # fmt: skip
        monkeypatch.setattr(optional, "HUGEPAGES", root / "sys/kernel/mm/hugepages")
        monkeypatch.setattr(optional, "DEV_KVM", root / "dev/kvm")
        monkeypatch.setattr(numa, "NODE_ROOT", root / "sys/devices/system/node")
        monkeypatch.setattr(device, "DEBUGFS_PATH", str(root / "sys/kernel/debug/gup_test"))
        monkeypatch.setattr(device, "MISC_PATH", str(root / "dev/gup_test"))
        monkeypatch.setattr(facts, "whoami", lambda: (self.user, self.is_root, self.groups))
        monkeypatch.setattr(facts, "group_gid", lambda: self.gid)
        monkeypatch.setattr(facts, "try_open", self._open)
        # The fake devices are files under `root`: each is taken for what it
        # stands for, unless a test says otherwise (self.not_gup_test).
        self.not_gup_test: str | None = None
        monkeypatch.setattr(facts, "identify", lambda path: self.not_gup_test)
        # ... and answers GUP_FAST_BENCHMARK, unless a test says otherwise.
        self.proof: tuple[int | None, str | None] = (None, None)
        monkeypatch.setattr(facts, "prove", lambda path: self.proof)
        monkeypatch.setattr(module, "status", self._status)
        monkeypatch.setattr(qemu, "kvm_usable", lambda: self.kvm)
        which = shutil.which
        monkeypatch.setattr(shutil, "which", lambda n: self.qemu if n == qemu.QEMU else which(n))
        monkeypatch.delenv(device.ENV_VAR, raising=False)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink()

    def hugepages(self, kb: int, nr: int, free: int) -> None:
        self.write(f"sys/kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages", f"{nr}\n")
        self.write(f"sys/kernel/mm/hugepages/hugepages-{kb}kB/free_hugepages", f"{free}\n")

    def node(self, n: int, cpus: str, mib: int) -> None:
        self.write(f"sys/devices/system/node/node{n}/cpulist", f"{cpus}\n")
        self.write(f"sys/devices/system/node/node{n}/meminfo",
                   f"Node {n} MemTotal:  {mib * 1024} kB\n")  # fmt: skip

    def device(self, which: str = "misc") -> str:
        """Make the misc device (or the debugfs file) exist."""
        rel = "dev/gup_test" if which == "misc" else "sys/kernel/debug/gup_test"
        return str(self.write(rel, ""))

    def as_user(self, groups: tuple[int, ...] = (1000,), gid: int | None = None) -> None:
        """Run as alice, in `groups` this session; `gid`: the gupctl group's."""
        self.user, self.is_root, self.groups, self.gid = "alice", False, frozenset(groups), gid

    def set_kmod(self, **changes: object) -> None:
        self.kmod = dataclasses.replace(self.kmod, **changes)  # type: ignore[arg-type]

    def _open(self, path: str) -> int | None:
        if path in self.denied:
            return self.denied[path]
        return None if os.path.exists(path) else errno.ENOENT

    def _status(self) -> module.ModuleStatus:
        if self.fail_status:
            raise RuntimeError("dkms status hung")
        return self.kmod

    def report(self) -> doctor.Report:
        return doctor.report()

    def rows(self) -> dict[str, doctor.Check]:
        return {c.name: c for c in self.report().checks}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(tmp_path, monkeypatch)


def _missing(m: Machine) -> dict[str, str | None]:
    return {c.name: c.fix for c in m.report().checks if c.status == "missing"}


def test_ready_with_the_kmods_device(machine: Machine) -> None:
    path = machine.device("misc")
    machine.set_kmod(loaded=True, device=path, dkms_installed=[RELEASE])
    r = machine.report()
    assert [c.name for c in r.checks] == NAMES
    assert r.ready and r.device == path
    dev = r.checks[0]
    assert dev.status == "ok" and "served by the gupctl kmod 0.1.0" in dev.found
    assert _missing(machine) == {}
    assert doctor.exit_status(r.checks) == 0


def test_the_kernels_own_gup_test_is_named_so(machine: Machine) -> None:
    machine.write(f"boot/config-{RELEASE}", "CONFIG_GUP_TEST=y\n")
    machine.write("proc/self/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    path = machine.device("debugfs")
    rows_ = machine.rows()
    assert rows_["gup_test device"].found.startswith(f"{path}: root opens it")
    assert "the kernel's gup_test" in rows_["gup_test device"].found
    assert rows_["debugfs"].status == "ok"
    assert "CONFIG_GUP_TEST=y" in rows_["kernel config"].found


def test_no_kmod_installs_it_with_headers_and_dkms(machine: Machine) -> None:
    machine.set_kmod(headers=None, dkms=None)
    assert _missing(machine) == {
        "gup_test device": "sudo gupctl kmod install",
        "kernel headers": "sudo apt-get install linux-headers-$(uname -r)",
        "DKMS": "sudo apt-get install dkms",
    }
    assert not machine.report().ready


def test_installed_kmod_is_loaded_and_needs_no_headers(machine: Machine) -> None:
    machine.set_kmod(headers=None, dkms_installed=[RELEASE])
    assert _missing(machine) == {"gup_test device": "sudo gupctl kmod load"}
    assert machine.rows()["kernel headers"].status == "info"


@pytest.mark.parametrize(
    "mok_pub, enrolled, status",
    [("/var/lib/dkms/mok.pub", False, "missing"), (None, None, "missing"),
     ("/var/lib/dkms/mok.pub", None, "warn"), ("/var/lib/dkms/mok.pub", True, "ok")],
)  # fmt: skip
def test_enforced_signatures_need_dkms_key_enrolled(
    machine: Machine, mok_pub: str | None, enrolled: bool | None, status: str
) -> None:
    machine.set_kmod(sig_enforced=True, mok_pub=mok_pub, mok_enrolled=enrolled)
    row = machine.rows()["module signing"]
    assert row.status == status
    assert row.fix == (None if status == "ok" else "sudo mokutil --import /var/lib/dkms/mok.pub")


def test_without_efi_no_mok_key_can_be_enrolled(machine: Machine) -> None:
    shutil.rmtree(machine.root / "sys/firmware/efi")
    machine.set_kmod(sig_enforced=True, mok_pub="/var/lib/dkms/mok.pub", mok_enrolled=None)
    row = machine.rows()["module signing"]
    assert row.status == "missing" and row.fix is None and "no EFI" in row.found


def test_signatures_do_not_matter_once_a_device_opens(machine: Machine) -> None:
    machine.device("misc")
    machine.set_kmod(sig_enforced=True, mok_pub=None, mok_enrolled=None)
    assert machine.rows()["module signing"].status == "info"
    assert machine.report().ready


def test_user_not_in_group(machine: Machine) -> None:
    path = machine.device("misc")
    machine.as_user()
    machine.denied[path] = errno.EACCES
    machine.set_kmod(loaded=True, device=path, device_mode="0600", device_group="root")
    fix = "sudo gupctl kmod install --user $USER"
    assert _missing(machine) == {"gup_test device": fix, "gupctl group": fix}
    assert "alice is not in it" in machine.rows()["gupctl group"].found


def test_member_not_yet_in_this_session_runs_newgrp(machine: Machine) -> None:
    path = machine.device("misc")
    machine.as_user(groups=(1000,), gid=990)
    machine.denied[path] = errno.EACCES
    machine.set_kmod(loaded=True, device=path, device_mode="0660", device_group="gupctl",
                     group_exists=True, group_members=["alice"])  # fmt: skip
    newgrp = "newgrp gupctl"
    assert _missing(machine) == {"gup_test device": newgrp, "gupctl group": newgrp}


def test_member_in_session_but_device_not_opened_to_group(machine: Machine) -> None:
    path = machine.device("misc")
    machine.as_user(groups=(990,), gid=990)
    machine.denied[path] = errno.EACCES
    machine.set_kmod(loaded=True, device=path, device_mode="0600", device_group="root",
                     group_exists=True, group_members=["alice"])  # fmt: skip
    row = machine.rows()["gupctl group"]
    assert row.status == "missing" and row.fix == "sudo gupctl kmod install --user $USER"
    assert "0600 root:root" in row.found


def test_a_user_installing_the_kmod_is_named(machine: Machine) -> None:
    machine.as_user()
    fix = "sudo gupctl kmod install --user $USER"
    assert _missing(machine) == {"gup_test device": fix, "gupctl group": fix}


def test_debugfs_refused_but_misc_opens_sets_the_device(machine: Machine) -> None:
    debugfs, misc = machine.device("debugfs"), machine.device("misc")
    machine.as_user()
    machine.denied[debugfs] = errno.EACCES
    row = machine.rows()["gup_test device"]
    assert row.status == "missing" and row.fix == "export GUPCTL_DEVICE=/dev/gup_test"
    assert debugfs in row.found and misc in row.why


def test_kernel_gup_test_needs_debugfs_mounted(machine: Machine) -> None:
    machine.write(f"boot/config-{RELEASE}", "CONFIG_GUP_TEST=y\n")
    machine.set_kmod(headers=None, dkms=None)
    mount = "sudo mount -t debugfs none /sys/kernel/debug"
    assert _missing(machine) == {"gup_test device": mount, "debugfs": mount}


@pytest.mark.parametrize("mounted", [True, False])
def test_lockdown_sends_a_gup_test_kernel_to_the_kmod(machine: Machine, mounted: bool) -> None:
    machine.write(f"boot/config-{RELEASE}", "CONFIG_GUP_TEST=y\n")
    machine.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
    if mounted:  # the kernel's gup_test is there, and refused
        machine.write("proc/self/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
        machine.denied[machine.device("debugfs")] = errno.EPERM
    assert machine.rows()["debugfs"].status == ("ok" if mounted else "info")
    rows_ = machine.rows()
    assert rows_["gup_test device"].fix == "sudo gupctl kmod install"
    assert rows_["lockdown"].found.startswith("integrity: debugfs gup_test refused")
    assert "EPERM" in rows_["lockdown"].why and "/dev/gup_test" in rows_["lockdown"].why


@pytest.mark.parametrize("how", ["no CONFIG_MODULES", "modules_disabled"])
def test_a_kernel_without_modules_sends_gupctl_to_its_vm(machine: Machine, how: str) -> None:
    if how == "no CONFIG_MODULES":
        machine.remove("proc/modules")
    else:
        machine.write("proc/sys/kernel/modules_disabled", "1\n")
    machine.set_kmod(headers=None, dkms=None)
    vm = "gupctl vm -- gupctl bench"
    assert _missing(machine) == {"gup_test device": vm, "module loading": vm}
    assert machine.rows()["kernel headers"].status == "info"


def test_an_explicit_device_that_is_not_there(machine: Machine, monkeypatch) -> None:
    machine.device("misc")
    monkeypatch.setenv(device.ENV_VAR, str(machine.root / "nope"))
    row = machine.rows()["gup_test device"]
    # /dev/gup_test opens: point $GUPCTL_DEVICE there rather than just unsetting it.
    assert row.fix == "export GUPCTL_DEVICE=/dev/gup_test"
    machine.remove("dev/gup_test")
    machine.set_kmod(loaded=False)
    row = machine.rows()["gup_test device"]
    assert row.fix == "unset GUPCTL_DEVICE" and "nope does not exist" in row.found


def test_an_explicit_device_that_is_no_gup_test_is_not_ready(machine: Machine,
                                                              monkeypatch) -> None:  # fmt: skip
    """$GUPCTL_DEVICE=/dev/null opens, and every command refuses it: so does doctor."""
    monkeypatch.setenv(device.ENV_VAR, "/dev/null")
    machine.not_gup_test = "the character device 1:3"
    row = machine.rows()["gup_test device"]
    assert row.status == "missing" and row.fix == "unset GUPCTL_DEVICE"
    assert row.found == "/dev/null is the character device 1:3, not a gup_test file"


def test_a_device_that_opens_but_does_not_answer_is_not_ready(machine: Machine) -> None:
    """Opening proves nothing: the one-page GUP_FAST_BENCHMARK must answer too."""
    path = machine.device("misc")
    machine.set_kmod(loaded=True, device=path, dkms_installed=[RELEASE])
    machine.proof = (errno.ENOTTY, "opens, but GUP_FAST_BENCHMARK of one page fails: x")
    r = machine.report()
    assert not r.ready and doctor.exit_status(r.checks) == 1
    row = machine.rows()["gup_test device"]
    assert row.status == "missing"
    assert row.found == f"{path} opens, but GUP_FAST_BENCHMARK of one page fails: x"


def test_optional_rows_warn_and_never_block(machine: Machine) -> None:
    machine.device("misc")
    machine.set_kmod(loaded=True)
    machine.node(1, "2-3", 2048)
    machine.write("sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n")
    machine.hugepages(2048, 0, 0)
    machine.qemu, machine.kvm = None, False
    rows_ = machine.rows()
    warned = {n: c.fix for n, c in rows_.items() if c.status == "warn"}
    assert warned == {
        "memory-only NUMA node": None,
        "THP": "echo madvise | sudo tee /sys/kernel/mm/transparent_hugepage/enabled",
        "hugetlb": "echo 64 | sudo tee /proc/sys/vm/nr_hugepages",
        "QEMU": "sudo apt-get install qemu-system-x86",
        "KVM": None,
    }
    assert "quiet control windows" in rows_["memory-only NUMA node"].why
    assert "TCG" in rows_["KVM"].found
    assert machine.report().ready


def test_memory_only_node_found(machine: Machine) -> None:
    row = machine.rows()["memory-only NUMA node"]
    assert row.status == "ok" and row.found == "node 1: no CPUs, 2048 MiB"


def test_huge_pages_by_size(machine: Machine) -> None:
    machine.hugepages(1048576, 2, 1)
    row = machine.rows()["hugetlb"]
    assert row.found == "2 MiB: 64 reserved, 64 free; 1 GiB: 2 reserved, 1 free"


def test_kernel_config_from_proc_when_boot_has_none(machine: Machine) -> None:
    machine.remove(f"boot/config-{RELEASE}")
    assert machine.rows()["kernel config"].found.startswith("unknown")
    (machine.root / "proc/config.gz").write_bytes(gzip.compress(b"CONFIG_GUP_TEST=y\n"))
    found = machine.rows()["kernel config"].found
    assert found == f"CONFIG_GUP_TEST=y ({machine.root}/proc/config.gz): gup_test in debugfs"


@pytest.mark.parametrize(
    "os_release, headers",
    [('ID=ubuntu\nID_LIKE=debian\n', "sudo apt-get install linux-headers-$(uname -r)"),
     ("ID=fedora\n", "sudo dnf install kernel-devel-$(uname -r)"),
     ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "sudo dnf install kernel-devel-$(uname -r)"),
     ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n',
      "sudo zypper install kernel-default-devel"),
     ("ID=arch\n", "sudo pacman -S linux-headers"),
     ("ID=plan9\n", "sudo apt-get install linux-headers-$(uname -r)")],
)  # fmt: skip
def test_package_fixes_follow_os_release(machine: Machine, os_release: str, headers: str) -> None:
    machine.write("etc/os-release", os_release)
    machine.set_kmod(headers=None)
    assert machine.rows()["kernel headers"].fix == headers


def test_exit_status_counts_required_missing_rows_only() -> None:
    def row(required: bool, status: str) -> doctor.Check:
        return doctor.Check("x", required, status, "", None, "")

    assert doctor.exit_status([row(True, "ok"), row(False, "warn"), row(True, "warn")]) == 0
    assert doctor.exit_status([row(False, "missing"), row(True, "info")]) == 0
    assert doctor.exit_status([row(True, "ok"), row(True, "missing")]) == 1


def test_failing_probes_become_rows(machine: Machine, cli: CliRunner, monkeypatch) -> None:
    machine.fail_status = True

    def broken(f: facts.Facts) -> doctor.Check:
        raise ValueError("cpulist unreadable")

    monkeypatch.setattr(optional, "numa_row", broken)
    result = cli.invoke(main, ["doctor", "--json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    got = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert got["DKMS"]["status"] == "warn" and "dkms status hung" in got["DKMS"]["found"]
    assert got["memory-only NUMA node"]["found"].startswith("could not tell: ValueError")
    assert got["gup_test device"]["fix"] == "sudo gupctl kmod install"


def test_json_is_the_report(machine: Machine, cli: CliRunner) -> None:
    path = machine.device("misc")
    machine.set_kmod(loaded=True)
    result = cli.invoke(main, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ready"] is True and data["device"] == path
    assert [c["name"] for c in data["checks"]] == NAMES
    assert set(data["checks"][0]) == {"name", "required", "status", "found", "fix", "why"}
    assert [c["required"] for c in data["checks"]] == [
        n in ("gup_test device", "module loading", "debugfs", "kernel headers", "DKMS",
              "module signing", "gupctl group") for n in NAMES]  # fmt: skip


def test_table_names_each_row_and_fix(machine: Machine, cli: CliRunner) -> None:
    machine.set_kmod(dkms=None)
    result = cli.invoke(main, ["doctor"])
    assert result.exit_code == 1
    out = result.stdout
    for name in NAMES:
        assert name in out
    assert "sudo apt-get install dkms" in out and "sudo gupctl kmod install" in out
    assert "not ready" in out and result.stderr == ""


def test_doctor_on_this_machine() -> None:
    """The real thing, in a child process: no traceback, and an exit status that
    agrees with whether a gup_test opens here (checked without gupctl)."""
    env = {k: v for k, v in os.environ.items() if k != device.ENV_VAR}
    proc = subprocess.run([sys.executable, "-m", "gupctl", "doctor", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    opens = _gupctl_would_open()
    assert data["ready"] is opens
    assert proc.returncode == (0 if opens else 1)
    assert [c["name"] for c in data["checks"]] == NAMES
    missing = [c for c in data["checks"] if c["status"] == "missing"]
    assert all(c["fix"] for c in missing)


def _gupctl_would_open() -> bool:
    """The first of the usual paths that exists (or may not be looked at) opens."""
    for path in ("/sys/kernel/debug/gup_test", "/dev/gup_test"):
        try:
            os.stat(path)
        except PermissionError:
            pass
        except OSError:
            continue
        try:
            os.close(os.open(path, os.O_RDWR))
            return True
        except OSError:
            return False
    return False


def test_fix_commands_are_the_documented_ones() -> None:
    """README.md and CI quote these; a change here must be a change there."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for fix in (rows.INSTALL, rows.INSTALL_USER, rows.LOAD, rows.ENROLL, rows.MOUNT_DEBUGFS,
                optional.THP_FIX, optional.HUGETLB_FIX):  # fmt: skip
        assert f"`{fix}`" in readme, fix
