"""Record .ci/run's wall time, for benchmarks/run.py to report.

    python benchmarks/ci_time.py kind             # prints cold or warm
    python benchmarks/ci_time.py record KIND START

.ci/run asks for the kind before its tests (cold: gupctl's cache is empty,
so every kernel, root and build is fetched and made) and, once they have
passed, appends {cache, seconds, date, commit} to the cache's CI_TIMES file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import CI_TIMES  # noqa: E402
from gupctl.cache import cache_dir  # noqa: E402


def main() -> int:
    if sys.argv[1:] == ["kind"]:
        cache = cache_dir()  # cold: nothing in it but the times recorded
        warm = cache.is_dir() and any(p.name != CI_TIMES for p in cache.iterdir())
        print("warm" if warm else "cold")
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        kind, start = sys.argv[2], float(sys.argv[3])
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
        date = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
        record = {"cache": kind, "seconds": round(time.time() - start), "date": date,
                  "commit": commit}  # fmt: skip
        cache_dir().mkdir(parents=True, exist_ok=True)
        with open(cache_dir() / CI_TIMES, "a") as f:
            f.write(json.dumps(record) + "\n")
        return 0
    print(__doc__.splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
