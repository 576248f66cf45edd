"""The schema of every JSON file gupctl reads back: its own dataclasses.

A saved run (`bench --save`, read by `compare` and `plot`) is the JSON of
RunResult and Balance; reading one builds those dataclasses again, each field
checked against its annotation here, the one place that knows what a field
may hold.  What is wrong is named by its path (`results[3].balance.acquired`)
so that the CLI can say it in one line.  Fields a later gupctl adds are
ignored; fields that are derived (init=False) are not read, but derived again.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from gupctl import samples

#: Integers a counter or a size can be: what a __u64 or a long holds.  Past
#: 2^64 a float (a ratio, a median) of one is no longer exact.
INT_LIMIT = 1 << 64


class SchemaError(ValueError):
    """`where` in a JSON document does not hold what its field is."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")
        self.where = where
        self.problem = problem


def build(cls: type, value: Any, where: str) -> Any:
    """An instance of dataclass `cls` from the JSON object `value`."""
    return cls(**kwargs(cls, value, where))


def kwargs(cls: type, value: Any, where: str) -> dict[str, Any]:
    """The arguments of dataclass `cls` that the JSON object `value` holds, each
    checked: for a caller with more to check before `cls` derives anything."""
    if not isinstance(value, dict):
        raise SchemaError(where, f"is not an object ({_kind(value)})")
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where}.{f.name}", "is missing")
            continue
        found[f.name] = check(hints[f.name], value[f.name], f"{where}.{f.name}")
    return found


def check(hint: Any, value: Any, where: str) -> Any:
    """`value` as the annotation `hint` has it (dataclass, Samples, list, tuple,
    a union with None, int, float, bool, str, dict); SchemaError where it is not."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is samples.Samples:
        return samples.of(_list(value, where, lambda v, w: _int(v, w, low=0)))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        return check(options[0], value, where)
    if origin is list:
        (item,) = typing.get_args(hint)
        return _list(value, where, lambda v, w: check(item, v, w))
    if origin is tuple:  # a fixed-length tuple is a JSON list of that length
        items = typing.get_args(hint)
        got = _list(value, where, lambda v, w: v)
        if len(got) != len(items):
            raise SchemaError(where, f"does not hold {len(items)} values ({len(got)})")
        return tuple(check(h, v, f"{where}[{i}]") for i, (h, v) in enumerate(zip(items, got)))
    if hint is int:
        return _int(value, where)
    if hint is float:
        return _float(value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(where, f"is not true or false ({_kind(value)})")
        return value
    if hint is dict:  # an object whose fields a caller checks (schema.build)
        if not isinstance(value, dict):
            raise SchemaError(where, f"is not an object ({_kind(value)})")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(where, f"is not a string ({_kind(value)})")
        return value
    raise TypeError(f"{where}: no schema for {hint!r}")  # a gupctl bug, not the file's


def _list(value: Any, where: str, item: Any) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError(where, f"is not a list ({_kind(value)})")
    return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _int(value: Any, where: str, low: int = -INT_LIMIT) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(where, f"is not an integer ({_kind(value)})")
    if not low <= value < INT_LIMIT:
        raise SchemaError(where, f"is out of range ({shown(value)})")
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(_int(value, where))
    if not isinstance(value, float) or not math.isfinite(value):
        raise SchemaError(where, f"is not a finite number ({_kind(value)})")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def shown(value: Any) -> str:
    """A value from a file as a message may quote it: short, and escaped (repr);
    an integer too long to print whole, by its size."""
    if isinstance(value, int) and value.bit_length() >= 200:
        text = f"an integer of {value.bit_length()} bits"
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
