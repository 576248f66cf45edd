"""The dump: /dev/kmsg records and dump_page() lines captured from real kernels, parsed.

The samples were captured in gupctl's VM (`gupctl vm [--kernel 6.1] -- gupctl dump ...`)
by reading /dev/kmsg around the ioctl; the kernel's answers are injected at the
ioctl and kmsg boundaries for the CLI test.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import patch_ioctl

from gupctl import abi, dump, kmsg
from gupctl.cli import main
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, MemorySpec

# 6.12.117+deb12-amd64: `gupctl dump --pin --size 1M 0 19` (kmod), anonymous memory.
K612_SMALL = [
    b"6,402,8526859,-;---- page #0, starting from user virt addr: 0x7fd3b7e50000\n",
    b"4,403,8527087,-;page: refcount:1025 mapcount:1 mapping:0000000000000000 "
    b"index:0x7fd3b7e50 pfn:0x17fd0a\n",
    b"4,404,8527218,-;memcg:ff26699d8104d000\n",
    b"4,405,8527253,-;anon flags: 0x57ffffe0020828(uptodate|lru|owner_2|swapbacked|node=1|zone=2"
    b"|lastcpupid=0x1fffff)\n",
    b"4,406,8527554,-;raw: 0057ffffe0020828 ff26699ec001cb00 ff99771a85ff4208 ff26699d8b1f2619\n",
    b"4,407,8527621,-;raw: 00000007fd3b7e50 0000000000000000 0000040100000000 ff26699d8104d000\n",
    b"4,408,8527691,-;page dumped because: gup_test: dump_pages() test\n",
    b"6,409,8527733,-;---- page #19, starting from user virt addr: 0x7fd3b7e50000\n",
    b"4,410,8527770,-;page: refcount:1025 mapcount:1 mapping:0000000000000000 "
    b"index:0x7fd3b7e63 pfn:0x17fc08\n",
    b"4,411,8527818,-;memcg:ff26699d8104d000\n",
    b"4,412,8527839,-;anon flags: 0x57ffffe0020828(uptodate|lru|owner_2|swapbacked|node=1|zone=2"
    b"|lastcpupid=0x1fffff)\n",
    b"4,413,8527894,-;raw: 0057ffffe0020828 ff99771a85ff01c8 ff99771a85ff0248 ff26699d8b1f2619\n",
    b"4,414,8527937,-;raw: 00000007fd3b7e63 0000000000000000 0000040100000000 ff26699d8104d000\n",
    b"4,415,8527977,-;page dumped because: gup_test: dump_pages() test\n",
]

# 6.12: `gupctl dump --pin --thp --size 2M 1`: a PMD THP; "head: order:" then the folio's hex.
K612_THP = [
    b"6,428,12131565,-;---- page #1, starting from user virt addr: 0x7fc3ff200000\n",
    b"4,429,12131634,-;page: refcount:513 mapcount:0 mapping:0000000000000000 "
    b"index:0x7fc3ff201 pfn:0x149601\n",
    b"4,430,12131681,-;head: order:9 mapcount:1 entire_mapcount:1 nr_pages_mapped:0 pincount:512\n",
    b"4,431,12131730,-;memcg:ff26699d8104d000\n",
    b"4,432,12131750,-;anon flags: 0x57ffffe0020868(uptodate|lru|owner_2|head|swapbacked|node=1"
    b"|zone=2|lastcpupid=0x1fffff)\n",
    b"4,433,12131804,-;raw: 0057ffffc0000209 ff99771a85258001 0000000000000000 0000020000800000\n",
    b"4,434,12131846,-;raw: 0000000000000200 0000000000000000 00000000ffffffff 0000000000000000\n",
    b"4,435,12131888,-;head: 0057ffffe0020868 ff26699ec001cb00 ff26699ec001cb00 ff26699dbeff93a9\n",
    b"4,436,12131929,-;head: 00000007fc3ff200 0000000000000000 00000201ffffffff ff26699d8104d000\n",
    b"4,437,12131970,-;head: 0057ffffc0000209 ff99771a85258001 0000000000000000 0000020000800000\n",
    b"4,438,12132011,-;head: 0000000000000200 0000000000000000 00000000ffffffff 0000000000000000\n",
    b"4,439,12132050,-;page dumped because: gup_test: dump_pages() test\n",
]

# 6.12: `gupctl dump --file /dev/shm/x --create --shared 0`: tmpfs, so aops and a mapping.
K612_SHMEM = [
    b"6,440,16238152,-;---- page #0, starting from user virt addr: 0x7f661d12e000\n",
    b"4,441,16238324,-;page: refcount:4 mapcount:1 mapping:00000000ec106142 index:0x0 "
    b"pfn:0x17fcf4\n",
    b"4,442,16238489,-;memcg:ff26699d8104d000\n",
    b'4,443,16238628,-;aops:shmem_aops ino:2 dentry name(?):"x"\n',
    b"4,444,16238804,-;flags: 0x57ffffc002011c(referenced|uptodate|dirty|active|swapbacked|node=1"
    b"|zone=2|lastcpupid=0x1fffff)\n",
    b"4,445,16238882,-;raw: 0057ffffc002011c 0000000000000000 dead000000000122 ff26699d81d7a298\n",
    b"4,446,16238926,-;raw: 0000000000000000 0000000000000000 0000000400000000 ff26699d8104d000\n",
    b"4,447,16238966,-;page dumped because: gup_test: dump_pages() test\n",
]

# 6.1.0-56-amd64: `gupctl dump --pin --thp --size 2M 0`: "head:%p order:%u compound_*".
K61_THP = [
    b"6,408,23940924,-;---- page #0, starting from user virt addr: 0x7ffacee00000\n",
    b"4,409,23941103,-;page:00000000123d926b refcount:513 mapcount:1 mapping:0000000000000000 "
    b"index:0x7ffacee00 pfn:0x149200\n",
    b"4,410,23941194,-;head:00000000123d926b order:9 compound_mapcount:1 compound_pincount:512\n",
    b"4,411,23941237,-;memcg:ff319aca4114e000\n",
    b"4,412,23941259,-;anon flags: 0x57ffffc00b0014(uptodate|lru|head|mappedtodisk|swapbacked"
    b"|node=1|zone=2|lastcpupid=0x1fffff)\n",
    b"4,413,23941336,-;raw: 0057ffffc00b0014 ff319acb8014d000 ff319acb8014d000 ff319aca9ebc0e39\n",
    b"4,414,23941380,-;raw: 00000007ffacee00 0000000000000000 00000201ffffffff ff319aca4114e000\n",
    b"4,415,23941421,-;page dumped because: gup_test: dump_pages() test\n",
]

# 6.1: `gupctl dump --pin --size 1M 19`: "page:%p refcount:" (no space after "page:").
K61_SMALL = [
    b"6,401,16269572,-;---- page #19, starting from user virt addr: 0x7f8a435b1000\n",
    b"4,402,16269608,-;page:00000000d5146a97 refcount:1025 mapcount:1 mapping:0000000000000000 "
    b"index:0x7f8a435c4 pfn:0x17fc06\n",
    b"4,403,16269669,-;memcg:ff319aca4114e000\n",
    b"4,404,16269689,-;anon flags: 0x57ffffc00a0014(uptodate|lru|mappedtodisk|swapbacked|node=1"
    b"|zone=2|lastcpupid=0x1fffff)\n",
    b"4,405,16269744,-;raw: 0057ffffc00a0014 ffb41a5305ff0148 ffb41a5305ff01c8 ff319aca41fc9a29\n",
    b"4,406,16269784,-;raw: 00000007f8a435c4 0000000000000000 0000040100000000 ff319aca4114e000\n",
    b"4,407,16269824,-;page dumped because: gup_test: dump_pages() test\n",
]


def _lines(records: list[bytes]) -> list[str]:
    return [line for r in records for line in kmsg.parse_record(r.decode())]


def test_kmsg_record_parser() -> None:
    assert kmsg.parse_record(K612_SMALL[0].decode()) == [
        "---- page #0, starting from user virt addr: 0x7fd3b7e50000"
    ]
    # Dictionary lines follow the message with a leading space; a caller id may
    # follow the flags (CONFIG_PRINTK_CALLER); escaped newlines split a record.
    record = "6,7,8,-,caller=T12;first\\x0asecond\n SUBSYSTEM=virtio\n DEVICE=c10:260\n"
    assert kmsg.parse_record(record) == ["first", "second"]
    assert kmsg.parse_record("not a record\n") == []


def test_612_small_pages() -> None:
    pages = dump.parse_dump(_lines(K612_SMALL))
    assert [p.index for p in pages] == [0, 19]
    first, last = pages
    assert first.user_addr == 0x7FD3B7E50000 and last.user_addr == 0x7FD3B7E50000 + 19 * PAGE_SIZE
    assert (first.pfn, first.refcount, first.mapcount) == (0x17FD0A, 1025, 1)
    assert first.pincount is None and first.order is None and first.mapping is None
    assert first.flags[:2] == ["uptodate", "lru"] and "node=1" in first.flags
    assert last.pfn == 0x17FC08
    assert first.raw[0].startswith("page: refcount:1025") and len(first.raw) == 6


def test_612_thp_head_line_and_folio_hex() -> None:
    (page,) = dump.parse_dump(_lines(K612_THP))
    assert (page.index, page.pfn, page.order, page.pincount) == (1, 0x149601, 9, 512)
    assert page.mapcount == 0  # the subpage's own, from the page: line
    assert "head" in page.flags


def test_612_shmem_has_a_mapping() -> None:
    (page,) = dump.parse_dump(_lines(K612_SHMEM))
    assert page.mapping == "00000000ec106142" and page.refcount == 4
    assert page.flags[0] == "referenced"
    assert any(line.startswith("aops:shmem_aops") for line in page.raw)


def test_61_formats() -> None:
    (thp,) = dump.parse_dump(_lines(K61_THP))
    assert (thp.pfn, thp.refcount, thp.order, thp.pincount) == (0x149200, 513, 9, 512)
    (small,) = dump.parse_dump(_lines(K61_SMALL))
    assert (small.index, small.pfn, small.refcount, small.pincount) == (19, 0x17FC06, 1025, None)
    assert small.user_addr == 0x7F8A435B1000 + 19 * PAGE_SIZE


def test_other_lines_and_unfinished_dumps_are_ignored() -> None:
    noise = ["9pnet: some other message", "page: refcount:9 mapcount:9 pfn:0x9"]
    unfinished = _lines(K612_SMALL)[:4]  # a header and part of a dump, no terminator
    pages = dump.parse_dump(noise + unfinished + _lines(K612_SHMEM) + noise)
    assert [p.pfn for p in pages] == [0x17FCF4]


def test_default_size() -> None:
    assert dump.default_size([0, 19], MemorySpec()) == 20 * PAGE_SIZE
    assert dump.default_size([3], MemorySpec(thp=True)) == 2 << 20


def _fake_kernel(monkeypatch: pytest.MonkeyPatch, records: list[bytes]) -> list[list[int]]:
    """Inject the kernel: the ioctl answers as it would, the log holds `records`."""
    asked: list[list[int]] = []

    def ioctl(self: Device, command: abi.Command, arg: object = None) -> None:
        assert command is abi.DUMP_USER_PAGES_TEST
        asked.append(list(arg.which_pages))  # type: ignore[attr-defined]

    class Log:
        def read_new(self) -> list[str]:
            return _lines(records)

        def close(self) -> None:
            pass

    patch_ioctl(monkeypatch, ioctl)
    monkeypatch.setattr(kmsg, "KernelLog", Log)
    return asked


def test_cli_json(cli: CliRunner, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    asked = _fake_kernel(monkeypatch, K612_SMALL)
    result = cli.invoke(main, ["dump", "--device", str(fake), "--json", "0", "19"])
    assert result.exit_code == 0, result.output
    assert asked == [[1, 20, 0, 0, 0, 0, 0, 0]]  # 1-based, 0 = none
    data = json.loads(result.stdout)
    assert data["size"] == 20 * PAGE_SIZE and data["call"] == "get_user_pages"
    assert [p["index"] for p in data["pages"]] == [0, 19] and data["missing"] == []
    assert data["balance"]["expected"] == 0


def test_cli_table(cli: CliRunner, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    _fake_kernel(monkeypatch, K612_SHMEM)
    result = cli.invoke(main, ["dump", "--device", str(fake), "0", "1"])
    assert result.exit_code == 0, result.output
    assert "0x17fcf4" in result.stdout and "pin balance" in result.stdout
    assert "no dump of page(s) [1]" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["dump"], "Missing argument"),
        (["dump", *map(str, range(9))], "at most 8 pages"),
        (["dump", "--size", "64K", "16"], "beyond --size"),
        (["dump", "--", "-1"], "-1"),
    ],
)
def test_cli_usage_errors(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(main, args)
    assert result.exit_code == 2 and message in result.stderr
