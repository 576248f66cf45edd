"""Writing an output file (--save, --junit, plot -o) so that no reader, and no
interruption, ever leaves half of one behind."""

from __future__ import annotations

import array
import dataclasses
import json
import os
import stat
from typing import Any

from gupctl.errors import ResultsError


def write_file(path: str, data: str | bytes) -> None:
    """Write `data` to `path`.  A regular file (or a symlink to one: its target)
    is written through a temporary file beside it, renamed into place; on any
    failure, or a signal (an exception, gupctl/cli/signals.py), the temporary
    file is removed and `path` is as it was.  Anything else that exists there
    (/dev/stdout, a fifo, a device) is written in place, never replaced."""
    body = data.encode() if isinstance(data, str) else data
    try:
        st = os.stat(path)
    except OSError:
        st = None  # nothing there (or a dangling link: the rename replaces it)
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_in_place(path, body)
        return
    real = os.path.realpath(path) if st is not None else path
    tmp = f"{real}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, real)
    except BaseException as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ResultsError(f"cannot write {path}", path, "write", e.errno) from e
        raise


def _write_in_place(path: str, body: bytes) -> None:
    """`path` is no regular file: write it as it is.  Non-blocking open, so
    that a fifo nobody reads is refused (ENXIO), not waited on for ever; a
    directory is refused too (EISDIR)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.set_blocking(fd, True)
            with open(fd, "wb", closefd=False) as f:
                f.write(body)
        finally:
            os.close(fd)
    except OSError as e:
        raise ResultsError(f"cannot write {path}", path, "write", e.errno) from e


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
