"""gupctl.cache: one locked way into the cache, and keys that keep parts apart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gupctl import cache


@pytest.fixture(autouse=True)
def private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GUPCTL_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


def test_key_keeps_parts_apart() -> None:
    assert cache.key(["ab", "c"]) != cache.key(["a", "bc"])
    assert cache.key(["ab", b"c"]) == cache.key([b"ab", "c"])


def test_entry_made_once_and_reused(private: Path) -> None:
    calls = []

    def make(scratch: Path) -> None:
        calls.append(scratch)
        (scratch / "f").write_text("x")

    first = cache.entry("k", "n", make)
    assert first == private / "k" / "n" and (first / "f").read_text() == "x"
    assert cache.entry("k", "n", make) == first and len(calls) == 1


def test_failed_make_leaves_nothing(private: Path) -> None:
    def make(scratch: Path) -> None:
        (scratch / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.entry("k", "n", make)
    assert [p.name for p in (private / "k").iterdir()] == [".n.lock"]


def test_concurrent_callers_build_once(private: Path) -> None:
    calls = []
    start = threading.Barrier(3)

    def make(scratch: Path) -> None:
        calls.append(1)
        time.sleep(0.3)  # long enough for the others to reach the lock
        (scratch / "f").write_text("x")

    def caller() -> None:
        start.wait(5)  # all three ask at once: without the lock, each would make
        cache.entry("k", "n", make)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
