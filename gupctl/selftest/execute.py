"""Running one selftest case (in a child process: see runner.py).

Each function returns an Outcome; an exception escaping one is turned into a
failure by the runner.  Pin balance is measured on `env.node` when the VM
offers a memory-only node: the child binds all its allocations there first.
"""

from __future__ import annotations

import errno
import os

from gupctl import abi, bench, io_uring, longterm, thp, vmstat
from gupctl.device import Device
from gupctl.errors import GupctlError, IoUringError, MappingError, Truncated
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest import cow, placement, regress
from gupctl.selftest.cases import GUP_COMMANDS, HUGETLB_FACTOR, Case, longterm_should_work
from gupctl.selftest.outcome import Env, Outcome, judged_pins, skip_if_no_hugepages


def run_case(case: Case, env: Env) -> Outcome:
    """Dispatch on the case's kind."""
    with Device(env.device) as dev:
        kinds = {"gup": _gup, "dump": _dump, "longterm": _longterm, "cow": cow.run,
                 "placement": placement.run, "regress": regress.run}  # fmt: skip
        return kinds[case.kind](dev, case, env)


def _gup(dev: Device, case: Case, env: Env) -> Outcome:
    p = case.params
    mem = str(p["memory"])
    size = env.size * (HUGETLB_FACTOR if mem == "hugetlb" else 1)
    # gup_test ignores madvise(MADV_HUGEPAGE)'s failure on a kernel without
    # THP and runs on small pages: so does this case.
    want = {"thp": True, "nothp": False}.get(mem) if thp.available() else None
    spec = MemorySpec(shared=bool(p["shared"]), hugetlb=mem == "hugetlb", thp=want,
                      numa_node=env.node)  # fmt: skip
    run = bench.RunSpec(GUP_COMMANDS[str(p["command"])], size=size,
                        nr_pages_per_call=int(p["per_call"]),  # type: ignore[call-overload]
                        write=bool(p["write"]), memory=spec)  # fmt: skip
    try:
        result = bench.run(dev, run, gate=env.pinning())
    except MappingError as e:
        return skip_if_no_hugepages(e, spec, size, env.node)
    except Truncated as e:
        return Outcome("fail", f"truncated: kernel covered {e.got} of {e.asked} bytes")
    b = result.balance
    details = {"get_usec": result.get_usec[0], "put_usec": result.put_usec[0],
               "balance": vars(b)}  # fmt: skip
    if not b.exact and env.exact_counts:
        return Outcome("fail", f"pin balance on {b.scope}: expected {b.expected}, acquired "
                       f"{b.acquired}, released {b.released}", details)  # fmt: skip
    return Outcome("pass", details=details)


def _dump(dev: Device, case: Case, env: Env) -> Outcome:
    from gupctl import dump

    p = case.params
    indexes = [int(i) for i in p["indexes"]]  # type: ignore[attr-defined]
    pin = bool(p["pin"])
    spec = MemorySpec(thp=bool(p["thp"]) if thp.available() else None, numa_node=env.node)
    size = max(env.size, (max(indexes) + 1) * PAGE_SIZE)
    flags = abi.FOLL_WRITE if p.get("write") else 0
    with Mapping(spec, size) as mapping:
        per_call = int(p["per_call"]) if "per_call" in p else None  # type: ignore[call-overload]
        result = dump.dump_pages(dev, mapping, indexes, pin=pin, gup_flags=flags, per_call=per_call)
    pages = result.pages
    got = [pg.index for pg in pages]
    if got != indexes:
        return Outcome("fail", f"kernel dumped pages {got}, asked for {indexes}")
    if any(pg.refcount is None or pg.refcount < 1 or pg.pfn is None for pg in pages):
        return Outcome("fail", "a dumped page lacks its refcount or pfn")
    if not result.balance.exact and env.exact_counts:
        return Outcome("fail", f"pin balance: {vars(result.balance)}")
    return Outcome("pass", details={"pfns": [pg.pfn for pg in pages]})


def _longterm_spec(case: Case, env: Env) -> tuple[MemorySpec, int]:
    backing, shared = case.params["backing"], bool(case.params["shared"])
    if backing == "memfd":
        return MemorySpec(memfd=True, shared=shared), PAGE_SIZE
    if backing == "hugetlb":
        size = int(case.params["hugetlb_size"])  # type: ignore[call-overload]
        return MemorySpec(memfd=True, hugetlb=True, hugetlb_size=size, shared=shared), size
    directory = env.tmpfs_dir if backing == "tmpfs" else env.ext4_dir
    assert directory is not None
    path = os.path.join(directory, f"gupctl-longterm-{os.getpid()}")
    return MemorySpec(file=path, create=True, shared=shared), PAGE_SIZE


def _longterm(dev: Device, case: Case, env: Env) -> Outcome:
    """gup_longterm.c's do_test(): does PIN_LONGTERM_TEST_START work as it should?"""
    p = case.params
    backing, shared, write = str(p["backing"]), bool(p["shared"]), bool(p["write"])
    if backing == "ext4" and env.ext4_dir is None:
        return Outcome("skip", f"no ext4 filesystem ({env.no_ext4}; or pass --ext4-dir)")
    spec, size = _longterm_spec(case, env)
    iouring = bool(p.get("iouring"))
    expected = longterm_should_work(backing, shared, write, env.release, iouring)
    before = vmstat.snapshot(env.node)
    try:
        with Mapping(spec, size) as mapping:
            if not write:
                mapping.protect_readonly()  # as gup_longterm.c does for R/O pins
            if iouring:
                worked = _try_fixed_buffer(mapping)
            else:
                worked = _try_longterm_pin(dev, mapping, write, bool(p["fast"]))
    except MappingError as e:
        return skip_if_no_hugepages(e, spec, size, env.node)
    except IoUringError as e:  # gup_longterm.c: no io_uring, or no memlock, is a skip
        return Outcome("skip", str(e))
    details: dict[str, object] = {"worked": worked, "expected": expected}
    if worked != expected:
        verb = "worked" if worked else "failed"
        return Outcome("fail", f"the pin {verb}; it should {'work' if expected else 'fail'}",
                       details)  # fmt: skip
    pinned = size // PAGE_SIZE if worked else 0
    return judged_pins(before, env, pinned, details)


def _try_fixed_buffer(mapping: Mapping) -> bool:
    """The mapping registered as an io_uring fixed buffer, and unregistered:
    whether that worked.  gup_longterm.c takes ENOSPC, EOPNOTSUPP (before
    v6.5) and EFAULT for "refused"; any other error is the caller's skip."""
    with io_uring.Ring() as ring:
        try:
            ring.register_buffer(mapping.addr, mapping.size)
        except IoUringError as e:
            if e.errno in (errno.ENOSPC, errno.EOPNOTSUPP, errno.EFAULT):
                return False
            raise
        ring.unregister_buffers()
    return True


def _try_longterm_pin(dev: Device, mapping: Mapping, write: bool, fast: bool) -> bool:
    try:
        longterm.start(dev, mapping.addr, mapping.size, write=write, fast=fast)
    except GupctlError as e:
        if e.errno == errno.EFAULT:  # what gup_longterm.c takes for "refused"
            return False
        raise
    longterm.stop(dev)
    return True
