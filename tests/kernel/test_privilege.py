"""The kmod's privilege model, row by row: what a member of the device's group
may do, and what stays root's (kmod/gupctl_main.c's header has the table, the
README too).

Each row runs as uid 65534 in the device's group (root:65534 0660, as a udev
rule for a group leaves it) and as root, both with a small RLIMIT_MEMLOCK,
in forked children.  Oracles: the errno the kernel gives, node 1's pin
counters (nothing acquired by a refused row, every pin released by the
others), and for the limits the module's own parameter file.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import extract_available, oracle_counters
from procs import errno_of, run_as
from test_nonroot import device_for_the_group  # noqa: F401 (autouse: root:65534 0660)

from gupctl import abi, extract, flags, longterm, pagemap, pins
from gupctl.device import Device
from gupctl.errors import DeviceError, GupctlError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

pytestmark = pytest.mark.kmod  # the model is the kmod's; upstream's file is root-only

DEVICE = "/dev/gup_test"
SIZE = 16 * PAGE_SIZE
MEMLOCK = 4 * SIZE  # RLIMIT_MEMLOCK of every row: OVER goes past it
OVER = 8 * SIZE
MAX_PAGES = Path("/sys/module/gupctl/parameters/max_pages")


def _gup(command: abi.Command, size: int = SIZE, flags: int = 0, dump: bool = False):
    """A row that runs `command` over `size` bytes of fresh memory on node 1."""

    def row(dev: Device, node: int) -> None:
        with Mapping(MemorySpec(numa_node=node), size) as m:
            arg = abi.ffi.new("struct gup_test *")
            arg.addr, arg.size, arg.nr_pages_per_call = m.addr, size, 1
            arg.gup_flags = abi.FOLL_WRITE | flags
            if dump:
                arg.which_pages[0] = 1
            dev.ioctl(command, arg)
            assert arg.size == size, f"{command.name} got {arg.size} of {size} bytes"

    return row


def _extract(iter_type: str, size: int = SIZE):
    def row(dev: Device, node: int) -> None:
        spec = extract.ExtractSpec(iter_type=iter_type, size=size, nr_segs=2)
        with Mapping(MemorySpec(numa_node=node), size) as m:
            arg = extract._request(spec, m.addr if iter_type in ("ubuf", "iovec") else 0)
            extract.issue(dev, arg)
            assert arg.size == size

    return row


def _pages(dev: Device, node: int) -> None:
    """GUPCTL_PAGES of a frame of the caller's own memory where it may read its
    pagemap (root), else of pfn 1: a group member may ask about neither."""
    with Mapping(MemorySpec(numa_node=node), SIZE) as m:
        try:
            pfn = pagemap.frames(m.addr, PAGE_SIZE)[0].pfn
        except GupctlError:  # /proc/self/pagemap after setuid(): EACCES
            pfn = 1
        pins.inspect(dev, [pfn])


def _longterm(size: int):
    def row(dev: Device, node: int) -> None:
        with Mapping(MemorySpec(numa_node=node), size) as m:
            longterm.start(dev, m.addr, size, write=True, fast=False)
            longterm.stop(dev)

    return row


FORCE = flags.table()["force"]  # this kernel's FOLL_FORCE (renumbered in v6.3)
#: name: (row, errno as a group member, errno as root).  Root keeps
#: CAP_IPC_LOCK, so RLIMIT_MEMLOCK does not limit it.
ROWS: dict[str, tuple[Callable[[Device, int], None], int, int]] = {
    "gup_fast_benchmark": (_gup(abi.GUP_FAST_BENCHMARK), 0, 0),
    "pin_basic_test": (_gup(abi.PIN_BASIC_TEST), 0, 0),
    "pin_longterm_benchmark": (_gup(abi.PIN_LONGTERM_BENCHMARK), 0, 0),
    "pin_longterm_test": (_longterm(SIZE), 0, 0),
    "extract_ubuf": (_extract("ubuf"), 0, 0),
    "extract_iovec": (_extract("iovec"), 0, 0),
    "force_pin_basic_test": (_gup(abi.PIN_BASIC_TEST, flags=FORCE), errno.EPERM, 0),
    "force_gup_fast_benchmark": (_gup(abi.GUP_FAST_BENCHMARK, flags=FORCE), errno.EPERM, 0),
    "dump_user_pages_test": (_gup(abi.DUMP_USER_PAGES_TEST, dump=True), errno.EPERM, 0),
    "extract_bvec": (_extract("bvec"), errno.EPERM, 0),
    "extract_kvec": (_extract("kvec"), errno.EPERM, 0),
    "extract_xarray": (_extract("xarray"), errno.EPERM, 0),
    "gupctl_pages": (_pages, errno.EPERM, 0),
    "over_memlock_pin_basic_test": (_gup(abi.PIN_BASIC_TEST, OVER), errno.ENOMEM, 0),
    "over_memlock_gup_fast_benchmark": (_gup(abi.GUP_FAST_BENCHMARK, OVER), errno.ENOMEM, 0),
    "over_memlock_pin_longterm_test": (_longterm(OVER), errno.ENOMEM, 0),
    "over_memlock_extract_ubuf": (_extract("ubuf", OVER), errno.ENOMEM, 0),
}


@pytest.mark.parametrize("user", [True, False], ids=["group", "root"])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_privilege_row(node, name: str, user: bool) -> None:
    """Each row's errno is the model's, and a refused row pins nothing."""
    row, as_group, as_root = ROWS[name]
    want = as_group if user else as_root
    if name.startswith(("extract", "over_memlock_extract")) and not extract_available():
        want = errno.EOPNOTSUPP  # no iov_iter_extract_pages() before v6.3 (6.1)

    def body() -> int:
        with Device(DEVICE) as dev:
            return errno_of(lambda: row(dev, node))

    before = oracle_counters(node)
    got = run_as(body, memlock=MEMLOCK, user=user)
    acquired, released = (a - b for a, b in zip(oracle_counters(node), before, strict=True))
    assert errno.errorcode.get(got, got) == errno.errorcode.get(want, want)
    assert acquired == released
    if want:
        assert acquired == 0, "a refused row pinned pages"


@pytest.mark.extract
def test_extract_size_near_2_64_is_refused_by_validation() -> None:
    """A kernel-backed size within a page of 2^64 used to round to 0 pages and
    pass validation (EFAULT from deep in the call): now E2BIG, from validation."""
    arg = abi.ffi.new("struct gupctl_extract *")
    arg.size, arg.iter_type = (1 << 64) - PAGE_SIZE + 1, extract.ITER_TYPES["bvec"]
    with Device(DEVICE) as dev, pytest.raises(DeviceError) as e:
        extract.issue(dev, arg)
    assert e.value.errno == errno.E2BIG


@pytest.mark.parametrize("value", ["0", str((1 << 30) + 1), "-1", "x"])
def test_max_pages_refuses_what_its_counts_cannot_hold(value: str) -> None:
    """max_pages is 1 to 2^30: 0 would reach want_pages_array()'s WARN, and
    more overflows the unsigned int and __u32 counts derived from it."""
    before = MAX_PAGES.read_text()
    with pytest.raises(OSError) as e:
        MAX_PAGES.write_text(value)
    assert e.value.errno == errno.EINVAL
    assert MAX_PAGES.read_text() == before
    MAX_PAGES.write_text(str(1 << 30))  # the ceiling itself is taken
    try:
        assert MAX_PAGES.read_text().strip() == str(1 << 30)
    finally:
        MAX_PAGES.write_text(before)
