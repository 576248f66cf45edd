"""`gupctl doctor`: what gupctl needs on this machine, what it found, and the fix.

Each row is a Check made by a small probe that reads the machine: files under
/sys, /proc, /boot and /etc, and the kmod's state from gupctl.module (which
asks `dkms status`, `modinfo` and `mokutil`).  No probe raises; whatever goes
wrong becomes its row.

Required rows are "missing" only when they stand between this user and a
gup_test it can open, each with the one command that fixes it:

- gup_test device: the file `gupctl bench` would open (device.locate), opened
  read-write as this user; missing exactly when that fails;
- module loading, kernel headers, DKMS, module signing: when the kmod is the
  way to a device (no CONFIG_GUP_TEST, or lockdown) and that step is not
  possible yet;
- debugfs: when the kernel's own gup_test is the way and debugfs is unmounted;
- gupctl group: when this user is not root and may not open /dev/gup_test,
  there or about to be installed.

Where they do not stand in the way they are "ok" or "info".  Optional rows are
never "missing": "warn" where gupctl works, only less well (no memory-only NUMA
node, THP off, no huge pages free, no QEMU, no KVM), "info" for what explains
the rest (kernel config, lockdown).

facts.py reads what the required rows share and picks the route (the next
step towards a device); rows.py makes the required rows, optional.py the rest.

exit_status(): 0 when gupctl can benchmark here as this user (the device row
is ok), 1 when a required row is missing; the rules above make these the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gupctl.doctor import optional, rows
from gupctl.doctor.facts import Facts, gather
from gupctl.doctor.rows import MISSING, WARN, Check

__all__ = ["Check", "Facts", "Report", "checks", "exit_status", "gather", "report"]


@dataclass(frozen=True)
class Report:
    """Every row, whether gupctl can benchmark here, and the file it would open."""

    ready: bool
    device: str | None
    checks: list[Check]


def report() -> Report:
    """Read the machine once and make every row."""
    facts = gather()
    found = checks(facts)
    ready = exit_status(found) == 0
    return Report(ready, facts.path if ready else None, found)


def exit_status(rows: list[Check]) -> int:
    """0: gupctl can benchmark here as this user; 1: a required row is missing."""
    return 1 if any(c.required and c.status == MISSING for c in rows) else 0


def checks(facts: Facts | None = None) -> list[Check]:
    """Every row, in the order to fix them."""
    f = facts or gather()
    probes: list[tuple[str, bool, Callable[[Facts], Check]]] = [
        ("gup_test device", True, rows.device_row), ("kernel config", False, rows.config_row),
        ("module loading", True, rows.modules_row), ("debugfs", True, rows.debugfs_row),
        ("lockdown", False, rows.lockdown_row), ("kernel headers", True, rows.headers_row),
        ("DKMS", True, rows.dkms_row), ("module signing", True, rows.signing_row),
        ("gupctl group", True, rows.group_row),
        ("memory-only NUMA node", False, optional.numa_row), ("THP", False, optional.thp_row),
        ("hugetlb", False, optional.hugetlb_row), ("QEMU", False, optional.qemu_row),
        ("KVM", False, optional.kvm_row),
    ]  # fmt: skip
    found = []
    for name, required, probe in probes:
        try:
            found.append(probe(f))
        except Exception as e:  # a probe's surprise is a row, never a traceback
            found.append(Check(name, required, WARN, f"could not tell: {e!r}", None, ""))
    return found
