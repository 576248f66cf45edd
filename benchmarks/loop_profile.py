"""Where gupctl's time per ioctl goes: a profile of Device.repeat, in process.

Device.repeat (gupctl/device.py) hands the C loop (gupctl._loop's
gupctl_repeat) chunks of repeats and does Python work only between chunks.
This runs it as `gupctl bench pin_fast_benchmark -s 4K -n 1` does, with the
extension wrapped so that each chunk's time inside C is measured: the loop's
wall time splits into the C loop (ioctls and sample stores) and Python
between chunks, with the count of chunks.  Run in the guest by guest.py:

    python benchmarks/loop_profile.py NODE REPEATS    # JSON on stdout
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gupctl import abi, device  # noqa: E402
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec  # noqa: E402


class _TimedLoop:
    """gupctl._loop with its repeat loop timed, chunk by chunk."""

    def __init__(self, native: Any) -> None:
        self.ffi, self.lib, self._native = native.ffi, self, native
        self.in_c_ns = self.chunks = 0

    def gupctl_repeat(self, *args: Any) -> int:
        start = time.perf_counter_ns()
        done = int(self._native.lib.gupctl_repeat(*args))
        self.in_c_ns += time.perf_counter_ns() - start
        self.chunks += 1
        return done


def profile(node: int, repeats: int) -> dict[str, float]:
    """ns per repeat: the whole loop, the part inside C, and Python's part."""
    native = device.native
    if native is None:
        raise SystemExit("gupctl._loop is not built: pip install -e .")
    timed = _TimedLoop(native)
    device.native = timed
    try:
        with device.open_device() as dev, Mapping(MemorySpec(numa_node=node), PAGE_SIZE) as m:
            arg: Any = abi.ffi.new("struct gup_test *")
            arg.addr, arg.nr_pages_per_call, arg.gup_flags = m.addr, 1, abi.FOLL_WRITE
            measured = dev.repeat(abi.PIN_FAST_BENCHMARK, arg, PAGE_SIZE, repeats)
    finally:
        device.native = native
    loop = measured.loop_ns / repeats
    in_c = timed.in_c_ns / repeats
    return {"repeats": repeats, "chunks": timed.chunks, "loop_ns": loop, "in_c_ns": in_c,
            "python_ns": loop - in_c}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(profile(int(sys.argv[1]), int(sys.argv[2]))))
