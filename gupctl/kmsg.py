"""The kernel log through /dev/kmsg: what the kernel printed during an operation.

gup_test reports pin verification failures only there (a WARN plus a
"gup_test failure" page dump), and DUMP_USER_PAGES_TEST's output is dump_page()
lines, so both the selftest and `gupctl dump` read the records that appear
between two points in time.
"""

from __future__ import annotations

import errno
import os
import re

#: Lines that mean the kernel is unhappy, whatever the ioctl returned.
PROBLEM = re.compile(
    r"WARNING:|BUG:|Oops|Kernel panic|general protection fault|gup_test failure"
    r"|UBSAN:|KASAN:|is NOT dma-pinned|is NOT pinnable"
)


#: Lines a test writes to /dev/kmsg around inputs it expects the kernel to
#: complain about (upstream gup_test's WARNs, tests/kernel/test_fuzz.py):
#: problems between them fail no run.
EXPECTED_BEGIN = "gupctl: kernel problems expected from here"
EXPECTED_END = "gupctl: kernel problems expected up to here"


def problems(lines: list[str], pattern: re.Pattern[str] = PROBLEM) -> list[str]:
    """The lines of `lines` that report a kernel problem (`pattern`), except
    those between EXPECTED_BEGIN and EXPECTED_END.  A begin never ended
    excuses nothing: the test that wrote it did not finish."""
    found: list[str] = []
    held: list[str] | None = None  # problems since an EXPECTED_BEGIN
    for line in lines:
        if EXPECTED_BEGIN in line:
            held = []
        elif EXPECTED_END in line:
            held = None
        elif pattern.search(line):
            (found if held is None else held).append(line)
    return found + (held or [])


def parse_record(record: str) -> list[str]:
    """The message lines of one /dev/kmsg record ("prio,seq,usec,flags;text").

    Continuation lines (" KEY=value" dictionary entries) are dropped; a message
    holding escaped newlines ("\\x0a") is split into its lines.
    """
    header, sep, rest = record.partition(";")
    if not sep or header.count(",") < 3:
        return []
    text = rest.split("\n", 1)[0]
    return text.replace("\\x0a", "\n").split("\n")


class KernelLog:
    """Reads the kernel log records appended after construction (or the last
    read); with `from_start`, every record the log still holds first."""

    def __init__(self, path: str = "/dev/kmsg", from_start: bool = False) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not from_start:
            os.lseek(self.fd, 0, os.SEEK_END)

    def read_new(self) -> list[str]:
        """Every line logged since the last call, oldest first."""
        lines: list[str] = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return lines
            except OSError as e:
                if e.errno == errno.EPIPE:  # overwritten before we read it: go on
                    continue
                raise
            if not record:
                return lines
            lines += parse_record(record.decode(errors="replace"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> KernelLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
