"""Tables of `gupctl kmod status` and `gupctl kmod install`."""

from __future__ import annotations

from gupctl.install import Installed
from gupctl.module import ModuleStatus
from gupctl.render.table import Table


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found")
    for what, found in rows:
        table.add_row(what, found)
    return table


def _or(value: object, absent: str = "-") -> str:
    return absent if value in (None, "", []) else str(value)


def status(s: ModuleStatus) -> Table:
    enrolled = {True: "enrolled", False: "not enrolled", None: "unknown"}[s.mok_enrolled]
    access = f"{s.device_mode} root:{s.device_group}" if s.device else "-"
    return _pairs(f"gupctl kmod {s.version} on {s.release}", [
        ("sources", _or(s.sources, "missing")),
        ("headers", _or(s.headers, "missing")),
        ("dkms", _or(s.dkms, "not installed")),
        ("installed for", _or(", ".join(s.dkms_installed), "no kernel")),
        ("loaded", "yes" if s.loaded else "no"),
        ("device", f"{s.device} ({access})" if s.device else "none"),
        ("udev rule", _or(s.udev_rule, "none (root only)")),
        ("group gupctl", ", ".join(s.group_members) or "(no members)"
         if s.group_exists else "none"),
        ("signatures", "enforced" if s.sig_enforced else "not enforced"),
        ("DKMS key", f"{s.mok_pub} ({enrolled})" if s.mok_pub else "none"),
        ("signer", _or(s.signer, "unsigned")),
    ])  # fmt: skip


def installed(i: Installed) -> Table:
    return _pairs(f"gupctl kmod {i.version} installed", [
        ("kernel", i.release),
        ("sources", i.source_dir),
        ("signer", _or(i.signer, "unsigned")),
        ("users", _or(", ".join(i.users), "root only")),
        ("next step", _or(i.next_step, "none")),
    ])  # fmt: skip
