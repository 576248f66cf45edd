"""The selftest's regression cases (gupctl/selftest/regress.py) on a real kernel.

Each case is named after the upstream commit whose bug it would catch.  All
must pass, but: the zero-page case is skipped on the in-kernel gup_test
(which WARNs on the unpinned zero page); where that gup_test keeps one global
longterm state (6.12's), the per-file case must fail and its race is skipped;
and the migration-failure case exists only where there is a ZONE_MOVABLE
(the movablecore= boot of tests/run.py, which runs this file too).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import struct

from conftest import DEVICES, oracle_counters

from gupctl import abi, pagemap

ZERO = "regress.c8070b787519.zero_page_not_pinned"
PER_FILE = "regress.c77369b437f9.longterm_state_per_file"
RACE = "regress.c77369b437f9.stop_racing_close"
ALWAYS = [ZERO, PER_FILE, RACE, "regress.e8ae6fd67021.wrapped_range_refused"]
MOVABLE = "regress.aa6f8b2593b5.no_leak_when_migration_fails"


def _per_file() -> bool:
    """Whether two files may each hold longterm pins: raw ioctls, not gupctl's probe."""
    buf = mmap.mmap(-1, 4096)
    buf.write(b"x" * 4096)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    arg = struct.pack("=QQI4x", addr, 4096, 1)  # struct pin_longterm_test, FLAG_USE_WRITE
    device = next(d for d in DEVICES if os.path.exists(d))
    a, b = os.open(device, os.O_RDWR), os.open(device, os.O_RDWR)
    try:
        fcntl.ioctl(a, abi.PIN_LONGTERM_TEST_START.number(), arg)
        try:
            fcntl.ioctl(b, abi.PIN_LONGTERM_TEST_START.number(), arg)
        except OSError as e:
            assert e.errno == errno.EINVAL
            return False
        return True
    finally:
        os.close(b)
        os.close(a)


def test_regression_cases(gupctl, node) -> None:
    movable = any(z.zone == "Movable" for z in pagemap.zone_spans())
    kmod = os.path.exists("/sys/module/gupctl")
    before = oracle_counters(node)
    report = gupctl("selftest", "--json", "regress.*", check=False).json()
    after = oracle_counters(node)
    got = {r["name"]: r for r in report["results"]}
    assert sorted(got) == sorted(ALWAYS + ([MOVABLE] if movable else []))
    per_file = _per_file()
    # Where the kernel's gup_test keeps one global state (6.12's), the
    # isolation case must fail and the race is not run.
    want = {ZERO: "pass" if kmod else "skip", PER_FILE: "pass" if per_file else "fail",
            RACE: "pass" if per_file else "skip"}  # fmt: skip
    for name, r in got.items():
        assert r["status"] == want.get(name, "pass"), f"{name}: {r['status']} {r.get('reason')}"
    if kmod:
        zero = got[ZERO]["details"]
        assert zero["pins_of_the_zero_page"] == 64 * 50 and zero["acquired"] < 64 * 25
    if movable:  # the longterm pin failed, and gave back every pin it took
        assert got[MOVABLE]["details"]["pinned"] is False
        assert got[MOVABLE]["details"]["errno"] == "ENOMEM"
    assert after[0] - before[0] == after[1] - before[1]
