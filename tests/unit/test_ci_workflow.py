"""The GitHub Actions workflow runs what tests/run.py runs (actionlint checks the rest)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _run_py():
    spec = importlib.util.spec_from_file_location("tests_run", ROOT / "tests" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matrix_is_every_kernel_and_architecture() -> None:
    # Every kernel and architecture tests/run.py knows, .ci/run's or not.
    run = _run_py()
    m = re.search(r"^\s+kernel: (\[.*\])$", WORKFLOW.read_text(), re.MULTILINE)
    assert m, "no one-line kernel matrix in ci.yml"
    assert json.loads(m.group(1)) == [*run.KERNELS, *run.ARCH_KERNELS, run.LOCKDOWN, *run.WHOLE]


def test_jobs_split_run_py_in_two() -> None:
    text = WORKFLOW.read_text()
    assert "tests/run.py --no-vm" in text
    assert 'tests/run.py --vm-only --kernel "$KERNEL"' in text
