"""Typed errors of the gupctl library.

The library raises these with the facts; the CLI turns them into one line of
text with a next step (gupctl/cli/hints.py), once.
"""

from __future__ import annotations

import errno as _errno
import os


class GupctlError(Exception):
    """Base class: `errno` is the kernel's answer where there was one."""

    def __init__(self, what: str, errno: int | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.errno = errno

    def __str__(self) -> str:
        if self.errno is None:
            return self.what
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"{self.what}: {os.strerror(self.errno)} ({name})"


class DeviceNotFound(GupctlError):
    """No gup_test file at any of the places looked at."""

    def __init__(self, tried: list[str], diagnosis: str) -> None:
        super().__init__(f"no gup_test device (tried {', '.join(tried)})", _errno.ENOENT)
        self.tried = tried
        #: one of DIAG_* below: why there is none
        self.diagnosis = diagnosis


DIAG_NO_DEBUGFS = "debugfs-not-mounted"
DIAG_NO_KMOD = "no-gup-test-no-kmod"
DIAG_EXPLICIT = "explicit-path-missing"


class DeviceError(GupctlError):
    """open() or ioctl() on the gup_test file failed."""

    def __init__(self, what: str, errno: int, path: str, command: str | None = None) -> None:
        super().__init__(what, errno)
        self.path = path
        self.command = command


class MappingError(GupctlError):
    """The test memory could not be set up as asked."""

    def __init__(self, what: str, errno: int | None = None, backing: str = "") -> None:
        super().__init__(what, errno)
        self.backing = backing


class CpuError(GupctlError):
    """A thread could not be bound to the CPU asked: it went offline, or out of
    the process's cpuset, since the list was checked."""


class IoUringError(GupctlError):
    """An io_uring system call failed (gupctl/io_uring.py); `errno` says how."""


class Truncated(GupctlError):
    """The kernel covered fewer bytes than asked: GUP stopped early."""

    def __init__(self, command: str, asked: int, got: int, backing: str, write: bool) -> None:
        super().__init__(f"{command} covered {got} of {asked} bytes")
        self.command = command
        self.asked = asked
        self.got = got
        self.backing = backing
        self.write = write


class VmError(GupctlError):
    """The VM could not be prepared, or was lost before the command finished."""

    def __init__(self, what: str, kind: str, log: str | None = None) -> None:
        super().__init__(what)
        #: one of "kernel", "tool", "archive", "build", "boot", "lost", "timeout",
        #: "problem", "usage"
        self.kind = kind
        self.log = log


class ModuleError(GupctlError):
    """`gupctl kmod` could not build, install, load or unload the kmod."""

    def __init__(self, what: str, kind: str, command: str, log: str | None = None,
                 release: str | None = None) -> None:  # fmt: skip
        super().__init__(what)
        #: one of "root", "sources", "dkms", "headers", "user", "build", "load", "busy"
        self.kind = kind
        #: the `gupctl kmod` subcommand
        self.command = command
        self.log = log
        #: the kernel it was for, where not the running one (`kmod build --kernel`)
        self.release = release


class FlagsError(GupctlError):
    """A --gup-flags spec names no FOLL_* flag of this kernel, or an internal one."""

    def __init__(self, what: str, valid: list[str], internal: bool = False) -> None:
        super().__init__(what)
        #: the names this kernel's table offers
        self.valid = valid
        #: the spec was refused for setting bits GUP reserves for itself
        self.internal = internal


class PinRefused(DeviceError):
    """PIN_LONGTERM_TEST_START was refused: the kernel cannot longterm-pin this memory."""

    def __init__(self, err: DeviceError, backing: str, write: bool) -> None:
        super().__init__(err.what, err.errno or _errno.EIO, err.path, err.command)
        self.backing = backing
        self.write = write


class ResultsError(GupctlError):
    """A saved results file (`gupctl bench --save`) cannot be read, written or used."""

    def __init__(self, what: str, path: str, kind: str, errno: int | None = None) -> None:
        super().__init__(what, errno)
        self.path = path
        #: one of "missing", "unreadable", "json", "format", "fields", "write", "empty"
        self.kind = kind


class UnknownMachine(GupctlError):
    """`gupctl abi --machine` names no ABI gupctl knows."""

    def __init__(self, machine: str, known: dict[str, tuple[str, ...]]) -> None:
        super().__init__(f"unknown machine {machine!r}")
        self.machine = machine
        #: every ABI's name, with the other names it goes by
        self.known = known


class EnvError(GupctlError):
    """An environment variable gupctl reads holds what it cannot use."""

    def __init__(self, variable: str, value: str, problem: str, kind: str) -> None:
        super().__init__(f"${variable}={value!r} {problem}")
        self.variable = variable
        self.value = value
        #: what it should name: "cache", "mirror" or "kmod_dir" (hints.ENV[kind])
        self.kind = kind
