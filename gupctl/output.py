"""Writing an output file (--save, --junit, plot -o) so that no reader, and no
interruption, ever leaves half of one behind."""

from __future__ import annotations

import array
import dataclasses
import json
import os
from typing import Any

from gupctl.errors import ResultsError


def write_file(path: str, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file beside it, renamed into
    place; on any failure, or a signal (an exception, gupctl/cli/signals.py),
    the temporary file is removed and `path` is as it was."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ResultsError(f"cannot write {path}", path, "write", e.errno) from e
        raise


def dumps(data: Any) -> str:
    """JSON of `data`, a dataclass or a list of them (--json, --save): sample
    buffers (array.array, gupctl/samples.py) become lists only here."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        return obj

    def default(obj: Any) -> Any:
        if isinstance(obj, array.array):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON")

    value = [plain(d) for d in data] if isinstance(data, list) else plain(data)
    return json.dumps(value, indent=2, default=default)
