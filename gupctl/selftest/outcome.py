"""What every selftest case is given (Env) and what it returns (Outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Env:
    """What every case may use: set up once by the runner."""

    device: str
    size: int
    node: int | None
    release: str
    ext4_dir: str | None
    tmpfs_dir: str = "/dev/shm"
    #: Each case's pin counts are exact: a memory-only node, and stat_refresh
    #: (root).  Elsewhere they are not judged per case; selftest() checks the
    #: whole run's balance between quiet control windows instead.
    exact_counts: bool = True
    #: Why ext4_dir is None: the step of making one that failed.
    no_ext4: str = ""


@dataclass
class Outcome:
    status: str  # "pass", "fail", "skip"
    reason: str = ""
    details: dict[str, object] = field(default_factory=dict)
