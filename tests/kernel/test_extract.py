"""`gupctl extract` (GUPCTL_EXTRACT): iov_iter_extract_pages() from userspace.

Oracles of this test's own: node 1's counters (a pin per page a user-backed
iterator spans, none for the kmod's own pages), the pages spanned worked out
here from the offset and the segments, the bytes of this test's own buffer
read back after ITER_DEST and summed for ITER_SOURCE, and a clean kernel log
(conftest).  Where GUPCTL_EXTRACT cannot work (6.1, which has no
iov_iter_extract_pages(); the in-kernel gup_test) the refusal is one line.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest
from conftest import oracle_counters

from gupctl import abi, extract
from gupctl.device import Device, locate
from gupctl.errors import DeviceError
from gupctl.memory import Mapping, MemorySpec

PAGE = mmap.PAGESIZE
TYPES = tuple(extract.ITER_TYPES)
SIZE, OFFSET, SEGS = 40 * 1024, 300, 3


def spanned(iter_type: str, size: int, offset: int, segs: int) -> int:
    """Pages the extraction must hand back: each IOVEC segment starts where the
    last ended, inside a page (kmod/gupctl_extract.c gupctl_extract_iter())."""

    def pages(a: int, b: int) -> int:
        return -(-b // PAGE) - a // PAGE

    if iter_type == "ubuf":
        return pages(offset, offset + size)
    if iter_type == "iovec":
        cuts = [size * s // segs for s in range(segs + 1)]
        return sum(pages(offset + a, offset + b) for a, b in zip(cuts, cuts[1:]))
    return pages(0, size)  # the kmod's own pages, from offset 0


@pytest.mark.extract
def test_extract_pins_what_v6_3_says(counted) -> None:
    """Every type in both directions, in one run of the real CLI (each run
    costs a Python start-up in the guest): the node's counters, read here,
    must have moved by a pin per page of the user-backed runs and by nothing
    for the rest; gupctl's own per-run balance must be exact."""
    data, acquired, released = counted(
        "extract", "--direction", "both", "-s", str(SIZE), "--offset", str(OFFSET),
        "--segs", str(SEGS),
    )  # fmt: skip
    runs = [(r["iter_type"], r["direction"]) for r in data]
    assert runs == [(t, d) for t in TYPES for d in ("source", "dest")]
    user_pages = 0
    for r in data:
        pages = spanned(r["iter_type"], SIZE, OFFSET, SEGS)
        user = r["iter_type"] in ("ubuf", "iovec")
        user_pages += pages if user else 0
        assert r["extracted"] == SIZE and r["nr_pages"] == pages, r
        assert r["offset"] == (OFFSET if user else 0)
        assert r["will_pin"] is user  # v6.3: user_backed_iter(), both directions
        assert r["nr_pinned"] == (pages if user else 0)
        assert r["balance"]["exact"] and r["balance"]["acquired"] == (pages if user else 0)
        read_back = True if user and r["direction"] == "dest" else None  # gupctl's own check
        assert r["checksum_ok"] and r["contents_ok"] is read_back
        if not user:
            assert r["nr_matched"] == pages  # the kmod's own pages, in order
    assert (acquired, released) == (user_pages, user_pages)


def _buffer(node: int | None, fill: bytes) -> Mapping:
    """16 pages on the test's node, holding `fill` repeated."""
    buf = Mapping(MemorySpec(numa_node=node), 16 * PAGE)
    ctypes.memmove(buf.addr, (fill * (buf.size // len(fill) + 1))[: buf.size], buf.size)
    return buf


def _extract(dev: Device, buf: Mapping, kind: str, dest: bool, **fields: int):
    arg = abi.ffi.new("struct gupctl_extract *")
    arg.addr, arg.size = buf.addr + OFFSET, SIZE
    arg.iter_type = extract.ITER_TYPES[kind]
    arg.flags, arg.fill = (extract.FLAG_DEST if dest else 0), 0x7E
    arg.nr_segs = SEGS if kind == "iovec" else 0
    for name, value in fields.items():
        setattr(arg, name, value)
    dev.ioctl(abi.GUPCTL_EXTRACT, arg)
    return arg


@pytest.mark.extract
@pytest.mark.parametrize("iter_type", ["ubuf", "iovec"])
def test_extract_bytes_read_back(node, iter_type: str) -> None:
    """The kernel saw and wrote this test's own bytes, and no others."""
    with _buffer(node, bytes(i * 7 % 251 for i in range(997))) as buf, Device(locate()) as dev:
        before = buf.read(0, buf.size)
        arg = _extract(dev, buf, iter_type, dest=False)
        assert arg.checksum == sum(before[OFFSET : OFFSET + SIZE])
        assert buf.read(0, buf.size) == before  # ITER_SOURCE: the kernel only read
        _extract(dev, buf, iter_type, dest=True)
        after = buf.read(0, buf.size)
    assert after[OFFSET : OFFSET + SIZE] == b"\x7e" * SIZE
    assert after[:OFFSET] == before[:OFFSET] and after[OFFSET + SIZE :] == before[OFFSET + SIZE :]


#: Fields the kmod must refuse before any work, and the errno it answers.
BAD = [
    ("iter_type 0", {"iter_type": 0}, errno.EINVAL),
    ("iter_type 6", {"iter_type": 6}, errno.EINVAL),
    ("unknown flag", {"flags": 2}, errno.EINVAL),
    ("fill over a byte", {"fill": 256}, errno.EINVAL),
    ("IOVEC, no segments", {"iter_type": 2, "nr_segs": 0}, errno.EINVAL),
    ("IOVEC, 17 segments", {"iter_type": 2, "nr_segs": 17}, errno.EINVAL),
    ("UBUF with segments", {"nr_segs": 2}, errno.EINVAL),
    ("an output field set", {"nr_pages": 1}, errno.EINVAL),
    ("reserved set", {"reserved": 1}, errno.EINVAL),
    ("size 0", {"size": 0}, errno.EINVAL),
    ("addr + size wraps", {"addr": (1 << 64) - PAGE, "size": 2 * PAGE}, errno.EINVAL),
    ("beyond TASK_SIZE", {"addr": 1 << 63}, errno.EINVAL),  # 1 << 47 is in it with LA57
    ("BVEC with an address", {"iter_type": 3}, errno.EINVAL),
    ("more pages than max_pages", {"iter_type": 3, "addr": 0, "size": 1 << 44}, errno.E2BIG),
    ("unmapped", {"addr": PAGE}, errno.EFAULT),
]


@pytest.mark.extract
@pytest.mark.parametrize(("what", "fields", "expected"), BAD, ids=[b[0] for b in BAD])
def test_extract_refuses_bad_fields(node, what: str, fields: dict, expected: int) -> None:
    with _buffer(node, b"\x11") as buf, Device(locate()) as dev:
        before = oracle_counters(node)
        with pytest.raises(DeviceError) as raised:
            _extract(dev, buf, "ubuf", dest=True, **fields)
        after = oracle_counters(node)
        assert buf.read(0, buf.size) == b"\x11" * buf.size, f"{what}: the kernel wrote"
    assert raised.value.errno == expected, what
    assert after == before, f"{what}: pins moved on node {node}"


@pytest.mark.no_extract
def test_extract_refused_in_one_line(gupctl) -> None:
    ran = gupctl("extract", check=False)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    if os.path.exists("/sys/module/gupctl"):  # the kmod, on a kernel before v6.3
        assert "no iov_iter_extract_pages()" in ran.stderr and "v6.3" in ran.stderr
    else:  # the in-kernel gup_test
        assert "the in-kernel gup_test has no such command" in ran.stderr
