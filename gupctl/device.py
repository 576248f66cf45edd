"""Finding, opening and talking to the gup_test file.

The kernel offers it in debugfs (mm/gup_test.c, CONFIG_GUP_TEST); gupctl's
kmod offers it in debugfs where the kernel has none, and always as the misc
device /dev/gup_test, which keeps working under kernel lockdown.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gupctl import abi, samples
from gupctl._libc import ffi as cffi_libc
from gupctl._libc import lib
from gupctl.errors import (
    DIAG_EXPLICIT,
    DIAG_NO_DEBUGFS,
    DIAG_NO_KMOD,
    DeviceError,
    DeviceNotFound,
)
from gupctl.samples import Samples, native

DEBUGFS_MOUNT = "/sys/kernel/debug"
DEBUGFS_PATH = DEBUGFS_MOUNT + "/gup_test"
MISC_PATH = "/dev/gup_test"
ENV_VAR = "GUPCTL_DEVICE"
#: Where the running kernel's config and mounts are read (tests move them).
BOOT = Path("/boot")
PROC_CONFIG = Path("/proc/config.gz")
MOUNTS = Path("/proc/self/mounts")
#: Device.repeat's C loop returns to Python at least this often (seconds),
#: and never takes more repeats per call than MAX_CHUNK.
CHUNK_SECONDS = 0.05
MAX_CHUNK = 1 << 16


@dataclass(frozen=True)
class Repeats:
    """What Device.repeat measured: each repeat's get and put µs, as the kernel
    timed them, and the loop's own wall time (every ioctl, and all that gupctl
    did between them), in ns."""

    get_usec: Samples
    put_usec: Samples
    loop_ns: int


def candidates(explicit: str | None = None) -> list[str]:
    """The paths gupctl tries, in order: --device, $GUPCTL_DEVICE, debugfs, misc."""
    if explicit:
        return [explicit]
    env = os.environ.get(ENV_VAR)
    if env:
        return [env]
    return [DEBUGFS_PATH, MISC_PATH]


def locate(explicit: str | None = None) -> str:
    """The first gup_test path that exists, or DeviceNotFound saying why none does.

    A path we may not even look at (debugfs is mode 0700) counts as found.
    Of several found, the first this caller may open wins: a user in the
    gupctl group gets /dev/gup_test where debugfs is root-only (EACCES), and
    so does root under kernel lockdown, where debugfs refuses files with
    ioctls (EPERM).  Where none may be opened, the first: opening it then
    fails with the errno that names the real problem.
    """
    tried = candidates(explicit)
    found = [path for path in tried if _exists(path)]
    if not found:
        raise DeviceNotFound(tried, _diagnose(bool(explicit or os.environ.get(ENV_VAR))))
    for path in found[:-1]:
        if not refused(path):
            return path
    return found[-1]


def _exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except PermissionError:
        return True
    except OSError:
        return False


def open_errno(path: str) -> int | None:
    """Open `path` read-write as Device does, and close it: None if it opens,
    else the errno."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return None
    except OSError as e:
        return e.errno or errno.EIO


def refused(path: str) -> bool:
    """Whether opening `path` read-write is refused: EACCES (not root, or not in
    the device's group) or EPERM (debugfs under lockdown, LOCKDOWN_DEBUGFS;
    gupctl/lockdown.py says the level)."""
    return open_errno(path) in (errno.EPERM, errno.EACCES)


def _diagnose(explicit: bool) -> str:
    if explicit:
        return DIAG_EXPLICIT
    # The kmod always offers /dev/gup_test, so only the kernel's own file is left.
    if not debugfs_mounted() and kernel_config("CONFIG_GUP_TEST") is not False:
        return DIAG_NO_DEBUGFS
    return DIAG_NO_KMOD


def kernel_config(option: str) -> bool | None:
    """Whether the running kernel's config sets `option` (=y), None if unknown."""
    return kernel_config_from(option)[0]


def kernel_config_from(option: str) -> tuple[bool | None, str | None]:
    """kernel_config(), and the file that said it (/boot/config-R, else
    /proc/config.gz); (None, None) where neither can be read."""
    for path in (BOOT / f"config-{os.uname().release}", PROC_CONFIG):
        try:
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
        except (OSError, EOFError, ValueError):
            continue
        return f"\n{option}=y\n" in f"\n{text}", str(path)
    return None, None


def debugfs_mounted() -> bool:
    """Whether debugfs is mounted at /sys/kernel/debug."""
    try:
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[1:3] == [DEBUGFS_MOUNT, "debugfs"] for line in lines)


class Device:
    """An open gup_test file.  Use as a context manager, or call close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise DeviceError(f"cannot open {path}", e.errno or errno.EIO, path) from None

    def ioctl(self, command: abi.Command, arg: Any = None) -> None:
        """Issue `command` with `arg` (cffi pointer to its struct, or None).

        The GIL is released while the kernel works (see gupctl._libc).
        """
        self.prepare(command, arg)()

    def prepare(self, command: abi.Command, arg: Any = None) -> Callable[[], None]:
        """`command` with `arg`, bound for issuing again and again: the number and
        the pointer are worked out once (benchmark loops call this)."""
        fd, number, ioctl = self.fd, command.number(), lib.ioctl
        ptr = cffi_libc.cast("void *", arg) if arg is not None else cffi_libc.NULL

        def issue() -> None:
            if ioctl(fd, number, ptr) < 0:
                err = cffi_libc.errno
                raise DeviceError(f"{command.name} on {self.path}", err, self.path, command.name)

        return issue

    def repeat(self, command: abi.Command, arg: Any, size: int, repeats: int,
               stop: Callable[[], bool] = lambda: False) -> Repeats:  # fmt: skip
        """Issue `command` `repeats` times on `arg` (a struct gup_test), resetting its
        size to `size` before each; return each repeat's get and put µs, and the
        wall time of the whole loop.

        Stops early when the kernel writes back a smaller size (arg.size shows it),
        or when `stop()` turns true.  The loop runs in C (gupctl._loop) where it
        was built, writing straight into the sample buffers, so that a repeat
        costs what it costs in C; else in Python.  The C loop runs in chunks of
        at most about CHUNK_SECONDS: Python runs signal handlers only between C
        calls, so a chunk bounds how long SIGINT or SIGTERM waits
        (gupctl/cli/signals.py).
        """
        if native is None:
            return self._repeat_in_python(command, arg, size, repeats, stop)
        number, ptr = command.number(), native.ffi.cast("void *", arg)
        gets, puts = samples.new(min(repeats, MAX_CHUNK)), samples.new(min(repeats, MAX_CHUNK))
        done, chunk = 0, 1
        start = time.perf_counter_ns()
        while done < repeats and not stop():
            n = min(chunk, repeats - done)
            while done + n > len(gets):  # grow by doubling: a memcpy, not per-sample work
                more = min(len(gets), repeats - len(gets))
                gets.frombytes(bytes(8 * more))
                puts.frombytes(bytes(8 * more))
            began = time.perf_counter_ns()
            got = native.lib.gupctl_repeat(self.fd, number, ptr, n, size,
                                          samples.pointer(gets, done),
                                          samples.pointer(puts, done))  # fmt: skip
            done += got
            if arg.size != size:  # the kernel covered less, on any repeat: bench says so
                break
            if got < n:
                err = native.ffi.errno
                raise DeviceError(f"{command.name} on {self.path}", err, self.path, command.name)
            if time.perf_counter_ns() - began < CHUNK_SECONDS * 1e9 / 2:
                chunk = min(2 * chunk, MAX_CHUNK)
        elapsed = time.perf_counter_ns() - start
        del gets[done:], puts[done:]
        return Repeats(gets, puts, elapsed)

    def _repeat_in_python(self, command: abi.Command, arg: Any, size: int, repeats: int,
                          stop: Callable[[], bool]) -> Repeats:  # fmt: skip
        issue = self.prepare(command, arg)
        gets, puts = samples.new(), samples.new()
        start = time.perf_counter_ns()
        for _ in range(repeats):
            if stop():
                break
            arg.size = size  # the kernel writes back what it covered
            issue()
            gets.append(arg.get_delta_usec)
            puts.append(arg.put_delta_usec)
            if arg.size != size:
                break
        return Repeats(gets, puts, time.perf_counter_ns() - start)

    def close(self) -> None:
        """Close the file; the kernel drops any longterm test pins it holds."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Where the kmod's misc device says which major:minor it has.
MISC_DEV = Path("/sys/class/misc/gup_test/dev")


def identify(path: str) -> str | None:
    """What `path` is, when it is not a gup_test file; None when it is one: a
    regular file on a debugfs mount, or the kmod's misc device (the major:minor
    in MISC_DEV).  Anything else would answer ENOTTY, which looks like an ABI
    mismatch, or (a fifo) block."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # opening it says why
    if stat.S_ISCHR(st.st_mode):
        number = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        try:
            ours = MISC_DEV.read_text().strip()
        except OSError:
            ours = None
        return None if number == ours else f"the character device {number}"
    if stat.S_ISREG(st.st_mode):
        return None if st.st_dev in _debugfs_devices() else "a regular file outside debugfs"
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a fifo"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device"))  # fmt: skip
    return next((name for test, name in kinds if test(st.st_mode)), "not a file")


def _debugfs_devices() -> set[int]:
    try:
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return set()
    devices = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "debugfs":
            with contextlib.suppress(OSError):
                devices.add(os.stat(fields[1]).st_dev)
    return devices


@contextmanager
def open_device(explicit: str | None = None) -> Iterator[Device]:
    """Locate and open the gup_test file, closing it on exit."""
    path = locate(explicit)
    what = identify(path)
    if what is not None:
        raise DeviceError(f"{path} is {what}", errno.ENOTTY, path, "identify")
    dev = Device(path)
    try:
        yield dev
    finally:
        dev.close()
