"""A fuzzer for the gup_test ioctl ABI (tests/kernel/test_fuzz.py runs it).

Each step is one ioctl, or a close and reopen of one of several files: the
command is one of gup_test's, a 'g' number beside them, a known number with
the wrong size or direction, or any number at all; the argument pointer is a
good buffer, NULL, read-only, unmapped, a kernel address, or a struct that
straddles the end of its mapping; the fields point at prefaulted memory,
untouched memory, read-only memory, holes, or nowhere, with sizes, pages per
call, FOLL_* and test flags from the edges of their ranges.  The memory is
small (a few MiB), so that every step is bounded.

Upstream's gup_test WARNs on some inputs (the WARNS table, each entry naming
the kernel line it follows).  Under panic_on_warn those would end the run,
so on the in-kernel gup_test they are held back and counted; test_fuzz.py
runs one of each alone to record what upstream does.  The kmod gets them all.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
from collections import Counter
from dataclasses import dataclass, field

from gupctl import abi, flags, pagemap

PAGE = mmap.PAGESIZE
GUP_STRUCT = abi.ffi.sizeof("struct gup_test")
LONGTERM_STRUCT = abi.ffi.sizeof("struct pin_longterm_test")
KERNEL_ADDR = 0xFFFF888000000000
GUP_TEST_CMDS = (abi.GUP_FAST_BENCHMARK, abi.PIN_FAST_BENCHMARK, abi.PIN_LONGTERM_BENCHMARK,
                 abi.GUP_BASIC_TEST, abi.PIN_BASIC_TEST, abi.DUMP_USER_PAGES_TEST)  # fmt: skip
PINNING = {abi.PIN_FAST_BENCHMARK, abi.PIN_LONGTERM_BENCHMARK, abi.PIN_BASIC_TEST}
FAST = {abi.GUP_FAST_BENCHMARK, abi.PIN_FAST_BENCHMARK}
GUP_TEST_FLAG_DUMP_PAGES_USE_PIN = 1

#: Inputs on which upstream's mm/gup_test.c (6.12, 7.3) WARNs, by class.
WARNS = {
    "foll-flags": "FOLL_* beyond WRITE and FORCE passed straight to GUP: mm/gup.c "
    "is_valid_gup_args() WARN_ON_ONCE(gup_flags & INTERNAL_GUP_FLAGS), and "
    "FOLL_LONGTERM without FOLL_PIN; gup_fast_fallback() WARN_ON_ONCE on bits it "
    "does not know",
    "huge-size": "size / PAGE_SIZE page pointers over INT_MAX bytes: mm/gup_test.c "
    "kvcalloc(nr_pages, ...) reaches kvmalloc's WARN_ON_ONCE(size > INT_MAX)",
    "partial-page": "a size that ends inside a page: mm/gup_test.c calls GUP for 0 pages "
    "into kvcalloc(0)'s ZERO_SIZE_PTR, and 7.3's gup_fast_fallback() walks one page "
    "anyway and stores it there: an Oops (found by this fuzzer on 7.3.4)",
    "zero-per-call": "nr_pages_per_call 0 on a FAST command: mm/gup_test.c calls "
    "get/pin_user_pages_fast() for 0 pages, whose walk (gup_fast_pgd_range()'s "
    "do-while) takes at least one page and stores it past the end of the pages "
    "array: a heap overrun (found by this fuzzer on 7.3.4 and 6.12)",
    "zero-page": "a read-only pin that reaches the shared zero page: GUP returns it "
    "unpinned (v6.5, c8070b787519) and mm/gup_test.c verify_dma_pinned() WARNs "
    "'pages[%lu] is NOT dma-pinned'.  Memory never written; a FOLL_FORCE read past "
    "a region into its PROT_NONE guard page (mm/gup.c check_vma_flags() lets "
    "FOLL_FORCE read a VM_MAYREAD mapping, and the read fault maps the zero page); "
    "and, with THP, a page that holds only zeros when its THP is split (v6.12, "
    '"mm: remap unused subpages to shared zeropage when splitting isolated thp": '
    "mm/huge_memory.c __split_huge_page() passes RMP_USE_SHARED_ZEROPAGE).  The "
    "fuzzer once made such pages in its prefaulted region by copying zero pages "
    "there with PIN_LONGTERM_TEST_READ (found on 6.12); Arena now rules that out",
}


def _ioc(direction: int, nr: int, size: int, kind: int = ord("g")) -> int:
    # x86_64 (asm-generic) encoding; the VM is x86_64.
    return (direction << 30) | (size << 16) | (kind << 8) | nr


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]  # fmt: skip
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
RW = mmap.PROT_READ | mmap.PROT_WRITE
PROT_NONE, MAP_NORESERVE = 0, 0x4000  # x86_64; in the mmap module only from Python 3.13
ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        raise OSError(ctypes.get_errno(), what)


@dataclass
class Region:
    addr: int
    size: int


@dataclass
class Arena:
    """The fuzzer's memory: one reservation, all of it mapped before the first ioctl.

    Every region sits between PROT_NONE guard pages inside that reservation,
    so that nothing the kernel writes for the fuzzer (PIN_LONGTERM_TEST_READ
    copies up to a whole pinned region) can run into this process's own heap
    or stack: it ends in a guard page with EFAULT.
    """

    base: int
    length: int
    rw: Region  # prefaulted, read-write, and never all zeros in any page
    untouched: Region  # read-write, never written from userspace
    ro: Region  # read-only, never written
    sink: Region  # prefaulted, where PIN_LONGTERM_TEST_READ copies to; never pinned
    arg: int  # a page for arguments, followed by an unmapped page
    hole: int  # an address with nothing mapped, between guard pages

    @classmethod
    def make(cls, size: int = 4 << 20) -> Arena:
        sizes = [size, size, size // 4, size // 4, PAGE]  # rw, untouched, ro, sink, arg
        length = sum(sizes) + (len(sizes) + 2) * PAGE  # a guard before each, hole, last guard
        base = _libc.mmap(None, length, PROT_NONE, ANON | MAP_NORESERVE, -1, 0)
        if base in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        regions, at = [], base
        for n, prot in zip(sizes, (RW, RW, mmap.PROT_READ, RW, RW)):
            at += PAGE  # the guard page before it
            _check(_libc.mprotect(at, n, prot), "mprotect")
            regions.append(Region(at, n))
            at += n
        _check(_libc.munmap(at, PAGE), "munmap")  # the hole, right after the argument page
        rw, untouched, ro, sink, arg = regions
        # No page of rw may ever hold only zeros: since v6.12 a THP split maps
        # such a page to the shared zero page (WARNS "zero-page"), which GUP
        # returns unpinned.  So the kernel never copies pages into it either.
        ctypes.memset(rw.addr, 0x5A, rw.size)
        ctypes.memset(sink.addr, 0x5A, sink.size)
        return cls(base, length, rw, untouched, ro, sink, arg.addr, at)

    def close(self) -> None:
        _libc.munmap(self.base, self.length)


@dataclass
class Op:
    """One step: an ioctl (cmd, argument pointer, the bytes put there) or a reopen."""

    kind: str  # "ioctl" or "reopen"
    fd_index: int
    cmd: int = 0
    name: str = ""
    where: str = ""  # what the argument pointer is
    arg: int = 0
    data: bytes = b""
    warns: str | None = None  # the WARNS class upstream would WARN on, if any
    written_back: bool = False  # a struct gup_test the kernel copies back on success


def check_written(op: Op, out: bytes) -> None:
    """What a successful gup_test command copied back: the caller's struct with
    only the times and the size done changed (DUMP_USER_PAGES_TEST also zeroes
    out-of-range which_pages[]), padding included: nothing uninitialized."""
    sent = abi.ffi.from_buffer("struct gup_test *", op.data)
    got = abi.ffi.from_buffer("struct gup_test *", out)
    where = f"{op.name} wrote back"
    for name in ("get_delta_usec", "put_delta_usec"):  # ktime_us_delta() of one call
        assert getattr(got, name) < 10**9, f"{where} {name} {getattr(got, name)}"
    assert got.size <= sent.size, f"{where} size {got.size:#x} > {sent.size:#x}"
    for name in ("addr", "nr_pages_per_call", "gup_flags", "test_flags"):
        assert getattr(got, name) == getattr(sent, name), f"{where} another {name}"
    for i in range(len(sent.which_pages)):
        ok = {sent.which_pages[i]}
        if op.name == "DUMP_USER_PAGES_TEST":
            ok.add(0)  # dump_pages_test() zeroes the indexes out of range
        assert got.which_pages[i] in ok, f"{where} which_pages[{i}] {got.which_pages[i]}"
    tail = abi.ffi.offsetof("struct gup_test", "which_pages") + abi.ffi.sizeof(sent.which_pages)
    assert out[tail:] == op.data[tail:GUP_STRUCT], f"{where} padding {out[tail:].hex()}"


@dataclass
class Fuzzer:
    seed: int
    device: str
    arena: Arena
    hold_back: bool  # the in-kernel gup_test: keep WARNS inputs out of the stream
    nfds: int = 3
    fds: list[int] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    held_back: Counter = field(default_factory=Counter)
    rw_zero_pages: int = 0  # read pins held back: a prefaulted page was the zero page

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fds = [os.open(self.device, os.O_RDWR) for _ in range(self.nfds)]
        table = flags.table()
        self.write, self.force = table["write"], table["force"]
        self.longterm = table["longterm"]
        self.flag_values = sorted(table.values())

    # --- the fields ---
    def _address(self) -> tuple[int, str]:
        a, r = self.arena, self.rng
        pick = r.choice(["rw", "rw", "rw", "untouched", "untouched", "ro", "hole", "null",
                         "kernel", "random", "top"])  # fmt: skip
        page = r.randrange(0, 1024) * PAGE
        unaligned = r.random() < 0.1
        off = page + (r.randrange(1, PAGE) if unaligned else 0)
        return {
            "rw": lambda: (a.rw.addr + off % a.rw.size, "rw"),
            "untouched": lambda: (a.untouched.addr + off % a.untouched.size, "untouched"),
            "ro": lambda: (a.ro.addr + off % a.ro.size, "ro"),
            "hole": lambda: (a.hole, "hole"),
            "null": lambda: (0, "hole"),
            "kernel": lambda: (KERNEL_ADDR + page, "hole"),
            "random": lambda: (r.getrandbits(64), "hole"),
            "top": lambda: ((1 << 47) - PAGE * r.randrange(1, 4), "hole"),
        }[pick]()

    def _read_target(self) -> int:
        """Where PIN_LONGTERM_TEST_READ copies the pinned pages to: only the
        arena, or addresses where nothing can be written (an address picked
        at random might be this process's own heap or stack).  Never rw: the
        pinned pages may be zero pages, and rw must not come to hold one."""
        a, r = self.arena, self.rng
        region = r.choice([a.sink, a.sink, a.untouched, a.ro])
        return r.choice([
            region.addr, region.addr + PAGE * r.randrange(region.size // PAGE),
            region.addr + r.randrange(region.size), a.hole, 0, KERNEL_ADDR, a.base,
        ])  # fmt: skip

    def _size(self) -> int:
        r = self.rng
        return r.choice([
            0, 1, PAGE - 1, PAGE, PAGE * r.randrange(1, 64), PAGE * r.randrange(1, 1024),
            PAGE * r.randrange(1, 1024) + r.randrange(1, PAGE), 1 << 40, (1 << 40) + PAGE,
            1 << 62, (1 << 63) - PAGE, (1 << 64) - 1, r.getrandbits(64),
        ])  # fmt: skip

    def _gup_flags(self) -> int:
        r = self.rng
        return r.choice([0, self.write, self.write, self.write | self.force, self.force,
                         r.choice(self.flag_values), r.choice(self.flag_values) | self.write,
                         r.getrandbits(32), 1 << r.randrange(32)])  # fmt: skip

    def _plausible(self, g, dump: bool) -> str:
        """Fields a careful caller would pass: most of these reach GUP and pin
        (test_flags and which_pages are DUMP_USER_PAGES_TEST's alone)."""
        r, a = self.rng, self.arena
        region = r.choice([a.rw, a.rw, a.untouched])
        pages = r.randrange(1, 256)
        g.addr = region.addr + PAGE * r.randrange(region.size // PAGE - pages)
        g.size = pages * PAGE
        g.nr_pages_per_call = r.choice([1, 2, 7, 512])
        g.gup_flags = r.choice([self.write, self.write | self.force, 0])
        g.test_flags = r.choice([0, GUP_TEST_FLAG_DUMP_PAGES_USE_PIN]) if dump else 0
        for i in range(len(g.which_pages) if dump else 0):
            g.which_pages[i] = r.choice([0, 1, r.randrange(1, pages + 1)])
        return "rw" if region is a.rw else "untouched"

    def _gup_test(self, cmd: abi.Command) -> tuple[bytes, dict]:
        r = self.rng
        g = abi.ffi.new("struct gup_test *")
        if r.random() < 0.4:
            region = self._plausible(g, cmd is abi.DUMP_USER_PAGES_TEST)
        else:
            g.addr, region = self._address()
            g.size = self._size()
            g.nr_pages_per_call = r.choice([0, 1, 1, 2, 7, 512, r.getrandbits(32), (1 << 32) - 1])
            g.gup_flags = self._gup_flags()
            g.test_flags = r.choice([0, 0, GUP_TEST_FLAG_DUMP_PAGES_USE_PIN, r.getrandbits(32)])
            for i in range(len(g.which_pages)):
                g.which_pages[i] = r.choice([0, 0, 1, r.randrange(1, 64), r.getrandbits(32)])
        fields = {"addr": int(g.addr), "size": int(g.size), "flags": int(g.gup_flags),
                  "region": region, "test_flags": int(g.test_flags),
                  "per_call": int(g.nr_pages_per_call)}  # fmt: skip
        return bytes(abi.ffi.buffer(g)), fields

    def _longterm(self) -> tuple[bytes, dict]:
        r = self.rng
        p = abi.ffi.new("struct pin_longterm_test *")
        p.addr, region = self._address()
        p.size = self._size()
        p.flags = r.choice([0, 1, 2, 3, r.getrandbits(32)])
        return bytes(abi.ffi.buffer(p)), {"size": int(p.size), "region": region}

    # --- one step ---
    def _pointer(self, length: int) -> tuple[int, str]:
        a, r = self.arena, self.rng
        base = a.arg
        where = r.choices(["ok", "null", "ro", "hole", "kernel", "straddle"],
                          weights=[80, 4, 4, 4, 4, 4])[0]  # fmt: skip
        if where == "straddle" and length > 1:
            return base + PAGE - r.randrange(1, length), where
        return {"ok": base, "straddle": base, "null": 0, "ro": a.ro.addr,
                "hole": a.hole, "kernel": KERNEL_ADDR}[where], where  # fmt: skip

    def _warns(self, cmd: abi.Command, f: dict) -> str | None:
        if cmd in GUP_TEST_CMDS:
            if f["size"] // PAGE * 8 > 0x7FFFFFFF and f["size"] < 1 << 64:
                return "huge-size"
            if f["size"] % PAGE:
                return "partial-page"
            if cmd in FAST and f["size"] and not f["per_call"]:
                return "zero-per-call"
            # Any size: a partial page still calls GUP, for 0 pages (mm/gup_test.c).
            if f["size"] and f["flags"] & ~(self.write | self.force):
                return "foll-flags"
            pins = cmd in PINNING or (cmd is abi.DUMP_USER_PAGES_TEST and f["test_flags"] & 1)
            if pins and not f["flags"] & self.write and self._reaches_zero_page(f):
                return "zero-page"
        if cmd is abi.PIN_LONGTERM_TEST_START and f["size"] // PAGE * 8 > 0x7FFFFFFF:
            return "huge-size" if f["size"] < 1 << 63 else None
        return None

    def _reaches_zero_page(self, f: dict) -> bool:
        """Whether a read-only pin of `f`'s range may meet the shared zero page:
        anywhere but the prefaulted region; past its end into the guard page
        with FOLL_FORCE; or on a page of it that is the zero page now, which
        Arena.make rules out (test_fuzz.py asserts that it never happened)."""
        if f["region"] != "rw":
            return True
        rw = self.arena.rw
        start, end = f["addr"] // PAGE * PAGE, f["addr"] + f["size"]
        if end > rw.addr + rw.size and f["flags"] & self.force:
            return True
        if not self.hold_back:
            return False  # the kmod's stream is not held back: no need to look
        end = min(end, rw.addr + rw.size)
        frames = pagemap.frames(start, (end - start + PAGE - 1) // PAGE * PAGE)
        if any(not fr.present or fr.zero or fr.huge_zero for fr in frames):
            self.rw_zero_pages += 1
            return True
        return False

    def next(self) -> Op:
        r = self.rng
        fd_index = r.randrange(self.nfds)
        roll = r.random()
        if roll < 0.02:
            return Op("reopen", fd_index)
        if roll < 0.80:
            cmd = r.choices(abi.COMMANDS, weights=[12, 12, 10, 10, 10, 2, 10, 8, 8])[0]
            number, name = cmd.number(), cmd.name
        elif roll < 0.90:  # gup_test's numbers with another size or direction
            cmd = r.choice(abi.COMMANDS)
            number = _ioc(r.randrange(4), cmd.nr, r.choice([0, 8, 16, 24, cmd.arg_size + 8]))
            name = f"{cmd.name}~"
        else:  # any 'g' number, or any number at all
            cmd, name = None, "other"
            number = (_ioc(r.randrange(4), r.randrange(256), r.randrange(1 << 14))
                      if r.random() < 0.5 else r.getrandbits(32))  # fmt: skip
        data, fields = b"", {}
        if cmd in GUP_TEST_CMDS:
            data, fields = self._gup_test(cmd)
        elif cmd is abi.PIN_LONGTERM_TEST_START:
            data, fields = self._longterm()
        elif cmd is abi.PIN_LONGTERM_TEST_READ:
            data = self._read_target().to_bytes(8, "little")
        else:
            data = r.randbytes(r.choice([8, GUP_STRUCT]))
        arg, where = self._pointer(len(data))
        exact = cmd is not None and number == cmd.number()
        warns = self._warns(cmd, fields) if exact else None
        return Op("ioctl", fd_index, number, name, where, arg, data, warns,
                  written_back=exact and cmd in GUP_TEST_CMDS)  # fmt: skip

    def run_op(self, op: Op) -> int:
        """Do `op`; the errno (0 on success)."""
        if op.kind == "reopen":
            os.close(self.fds[op.fd_index])
            self.fds[op.fd_index] = os.open(self.device, os.O_RDWR)
            return 0
        base = self.arena.arg
        if op.where in ("ok", "straddle"):
            room = base + PAGE - op.arg
            ctypes.memmove(op.arg, op.data, min(len(op.data), room))
        before = ctypes.string_at(base, PAGE)
        ret = _libc.ioctl(self.fds[op.fd_index], op.cmd, op.arg)
        if ret == 0:
            if op.written_back and op.where == "ok":
                check_written(op, ctypes.string_at(op.arg, GUP_STRUCT))
            return 0
        err = ctypes.get_errno()
        # A failed command copies nothing back to the caller.
        assert ctypes.string_at(base, PAGE) == before, f"{op.name} failed ({err}) and wrote"
        return err or errno.EIO

    def run(self, ioctls: int) -> int:
        """Steps until `ioctls` ioctls were issued (held-back ones are not); that count."""
        issued = 0
        while issued < ioctls:
            op = self.next()
            if op.warns and self.hold_back:
                self.held_back[op.warns] += 1
                continue
            err = self.run_op(op)
            issued += op.kind == "ioctl"
            self.counts[
                (op.name or op.kind, errno.errorcode.get(err, str(err)) if err else "ok")
            ] += 1
        return issued

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
