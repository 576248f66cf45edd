"""gupctl/vm/bytecode.py: bytecode compiled here lands where the guest looks for it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gupctl import cache
from gupctl.vm import bytecode


def test_package_bytecode_maps_to_each_source_pycache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUPCTL_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "src" / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "m.py").write_text("X = 1\n")
    tag = sys.implementation.cache_tag  # this interpreter stands in for the guest's
    found = bytecode.compile_package([sys.executable], package, tag)
    want = Path(importlib.util.cache_from_source(str(package / "sub" / "m.py")))
    assert want in found and found[want].is_file()
    assert found[want].is_relative_to(cache.cache_dir() / "bytecode")
    assert len(found) == 2
