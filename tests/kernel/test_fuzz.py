"""The ioctl ABI fuzzed (tests/kernel/fuzz.py): at least 10,000 ioctls per kernel,
as root, and on the kmod also as a member of /dev/gup_test's group.

The fuzzer runs in a child bound to the memory-only node, under
panic_on_warn=1: any WARN ends the guest and with it the run.  Afterwards the
node's pins balance (acquired == released, read directly), and the kernel
log is clean (conftest's autouse fixture).  The seed is printed; set
GUPCTL_FUZZ_SEED to replay a run, GUPCTL_FUZZ_IOCTLS to change its length.

On the in-kernel gup_test the inputs upstream WARNs on (fuzz.WARNS) are held
back from that stream; test_upstream_warn_record runs one of each alone,
without panic_on_warn, and prints what upstream did.  The kmod gets them in
the stream, and alone must not WARN on any.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import oracle_counters
from fuzz import GUP_STRUCT, PAGE, WARNS, Arena, Fuzzer, Op
from procs import drop, group_device

from gupctl import abi, flags, kmsg, process, release
from gupctl.device import locate
from gupctl.numa import bind_task

SEED = int(os.environ.get("GUPCTL_FUZZ_SEED") or random.randrange(1 << 32))
IOCTLS = int(os.environ.get("GUPCTL_FUZZ_IOCTLS") or 10_000)
PANIC_ON_WARN = Path("/proc/sys/kernel/panic_on_warn")
#: The group member's RLIMIT_MEMLOCK: the fuzzer's arena is 4 MiB, and its
#: requests go past it, which the kmod must refuse (ENOMEM), not pin.
GROUP_MEMLOCK = 2 << 20


def _kmod() -> bool:
    return Path("/sys/module/gupctl").exists()


@contextmanager
def panic_on_warn(value: int) -> Iterator[None]:
    old = PANIC_ON_WARN.read_text().strip()
    PANIC_ON_WARN.write_text(f"{value}\n")
    try:
        yield
    finally:
        PANIC_ON_WARN.write_text(f"{old}\n")


def _in_child(node: int | None, work, as_group: bool = False) -> dict:
    """Run `work(arena)` in a forked child bound to `node` (as uid 65534 in the
    device's group, with a small RLIMIT_MEMLOCK, if `as_group`); its JSON result."""
    rfd, wfd = os.pipe()
    pid = process.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rfd)
            if node is not None:
                bind_task(node)
            if as_group:
                drop(GROUP_MEMLOCK, True)
            arena = Arena.make()
            out = work(arena)
            arena.close()
            os.write(wfd, json.dumps(out).encode())
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 1 << 16):
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
        f"the fuzzer died (status {status:#x}; seed {SEED}): see its stderr above"
    )
    return json.loads(b"".join(chunks))


def test_fuzz(node) -> None:
    _fuzz(node, locate(), IOCTLS, as_group=False)


@pytest.mark.kmod  # the device a group may be given is the kmod's
def test_fuzz_as_group_member(node) -> None:
    """The same stream from uid 65534 in /dev/gup_test's group: what the group is
    refused (EPERM) or over its RLIMIT_MEMLOCK (ENOMEM) must stay refused, and
    nothing it can reach may WARN (panic_on_warn) or leave a pin behind."""
    with group_device("/dev/gup_test"):
        out = _fuzz(node, "/dev/gup_test", IOCTLS, as_group=True)
    results = {result for _, result, _ in out["counts"]}
    assert "EPERM" in results, "the group was refused nothing: FORCE and DUMP are root's"


def _fuzz(node, device: str, ioctls: int, as_group: bool) -> dict:
    hold_back = not _kmod()
    who = "uid 65534 in the device's group" if as_group else "root"
    print(f"fuzz seed: GUPCTL_FUZZ_SEED={SEED} ({ioctls} ioctls on {device} as {who})")

    def work(arena: Arena) -> dict:
        fuzzer = Fuzzer(SEED, device, arena, hold_back)
        start = time.monotonic()
        issued = fuzzer.run(ioctls)
        fuzzer.close()
        counts = [[name, result, n] for (name, result), n in sorted(fuzzer.counts.items())]
        return {"issued": issued, "seconds": time.monotonic() - start, "counts": counts,
                "held_back": dict(fuzzer.held_back),
                "rw_zero_pages": fuzzer.rw_zero_pages}  # fmt: skip

    before = oracle_counters(node)
    with panic_on_warn(1):
        out = _in_child(node, work, as_group)
    after = oracle_counters(node)
    acquired, released = after[0] - before[0], after[1] - before[1]
    held = out["held_back"] or "none"
    print(f"{out['issued']} ioctls in {out['seconds']:.1f} s; pins acquired {acquired}, "
          f"released {released}; held back (upstream WARNs): {held}")  # fmt: skip
    for name, result, n in out["counts"]:
        print(f"  {name:28} {result:12} {n}")
    assert out["issued"] == ioctls, f"seed {SEED}: {out['issued']} ioctls"
    assert acquired > 0, "no ioctl pinned anything: the fuzzer is not reaching GUP"
    assert acquired == released, f"seed {SEED}: {acquired - released} pins outstanding"
    assert not out["rw_zero_pages"], (
        f"seed {SEED}: a page of the prefaulted region became the shared zero page"
    )
    return out


def _representatives() -> dict[str, tuple[abi.Command, int, int, int, str]]:
    """One input per WARNS class: command, gup_flags, size, pages per call, region."""
    table = flags.table()
    return {
        "foll-flags": (abi.GUP_FAST_BENCHMARK, table["longterm"], 4 * PAGE, 1, "rw"),
        "huge-size": (abi.PIN_BASIC_TEST, table["write"], 1 << 40, 1, "rw"),
        "zero-page": (abi.PIN_BASIC_TEST, 0, 4 * PAGE, 1, "untouched"),
        "partial-page": (abi.GUP_FAST_BENCHMARK, table["write"], PAGE // 2, 1, "rw"),
        "zero-per-call": (abi.PIN_FAST_BENCHMARK, table["write"], 4 * PAGE, 0, "rw"),
    }


#: Classes not run alone on the in-kernel gup_test: they oops it or overrun
#: its heap, and an oops fails the whole VM run (gupctl/vm/runner.py scans
#: the console).
OOPS = {"partial-page", "zero-per-call"}

_SAME = {"foll-flags": (0, "is_valid_gup_args"), "huge-size": (errno.ENOMEM, "__kvmalloc_node"),
         "zero-page": (0, "NOT dma-pinned")}  # fmt: skip
#: What the in-kernel gup_test does with each class run alone, by series: the
#: errno, and a word of the WARN it must print (the rest are OOPS).  Seen on
#: source:6.12 and source:7.3; a kernel without a row fails until one is added.
UPSTREAM: dict[tuple[int, int], dict[str, tuple[int, str]]] = {(6, 12): _SAME, (7, 3): _SAME}


def test_upstream_warn_record(node) -> None:
    """Each input class upstream WARNs on, alone: what the kernel log says."""
    assert set(_representatives()) == set(WARNS)
    device = locate()

    def work(arena: Arena) -> dict:
        record = {}
        fuzzer = Fuzzer(SEED, device, arena, hold_back=False, nfds=1)
        log = kmsg.KernelLog()
        for name, (cmd, gup_flags, size, per_call, region) in _representatives().items():
            if name in OOPS and not _kmod():
                record[name] = {"errno": -1, "warn": ["not run alone here: it oopses this kernel"]}
                continue
            g = abi.ffi.new("struct gup_test *")
            g.addr = getattr(arena, region).addr
            g.size, g.nr_pages_per_call, g.gup_flags = size, per_call, gup_flags
            data = bytes(abi.ffi.buffer(g))
            log.read_new()
            err = fuzzer.run_op(Op("ioctl", 0, cmd.number(), cmd.name, "ok", arena.arg, data))
            warned = [line for line in log.read_new() if kmsg.PROBLEM.search(line)]
            record[name] = {"errno": err, "warn": warned[:2]}
        fuzzer.close()
        log.close()
        return record

    assert GUP_STRUCT <= PAGE
    # Upstream's WARNs here are the record, not a failure of this run: the
    # markers tell conftest and the VM's console scan (kmsg.problems).  The
    # kmod gets no markers: any WARN of its fails.
    expected = not _kmod()
    with panic_on_warn(0):
        if expected:
            Path("/dev/kmsg").write_text(kmsg.EXPECTED_BEGIN + "\n")
        try:
            record = _in_child(node, work)
        finally:
            if expected:
                Path("/dev/kmsg").write_text(kmsg.EXPECTED_END + "\n")
    implementation = "kmod" if _kmod() else "in-kernel gup_test"
    print(f"upstream WARN classes on the {implementation} ({os.uname().release}):")
    for name, r in record.items():
        said = ("WARN: " + " | ".join(r["warn"]) if r["warn"] else "no WARN") if r[
            "errno"] >= 0 else r["warn"][0]  # fmt: skip
        print(f"  {name:13} errno {r['errno']:3}  {said}\n    ({WARNS[name]})")
    sys.stdout.flush()
    if _kmod():
        assert not any(r["warn"] for r in record.values()), "the kmod WARNed"
        return
    series = release.version()[:2]
    assert series in UPSTREAM, f"no row in UPSTREAM for {os.uname().release}: add one"
    for name, (code, word) in UPSTREAM[series].items():
        got = record[name]
        assert got["errno"] == code, f"{name}: errno {got['errno']}, not {code}"
        assert any(word in line for line in got["warn"]), f"{name}: no WARN with {word!r}"
