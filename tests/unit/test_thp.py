"""THP knobs: which sizes the kernel lists, and that a run's choice is undone.

The knobs live in a fake sysfs tree laid out as v6.8+ and as older kernels
lay it out; the values are the kernel's own words (mm/huge_memory.c)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gupctl import thp
from gupctl.errors import MappingError

K = 1024
CHOICES = ("always", "inherit", "madvise", "never")


def _knob(path: Path, value: str, choices: tuple[str, ...] = CHOICES) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" ".join(f"[{c}]" if c == value else c for c in choices) + "\n")


def _tree(tmp_path: Path, per_size: dict[int, str] | None, top: str = "madvise") -> Path:
    root = tmp_path / "transparent_hugepage"
    _knob(root / "enabled", top, ("always", "madvise", "never"))
    (root / "hpage_pmd_size").write_text(f"{2 << 20}\n")
    for size, value in (per_size or {}).items():
        _knob(root / f"hugepages-{size // K}kB" / "enabled", value)
    # A shmem-only size has no `enabled`: it is no anonymous size.
    (root / "hugepages-4096kB").mkdir()
    return root


def _values(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): thp.setting(p) for p in sorted(root.rglob("enabled"))}


REFUSED: set[Path] = set()  # knobs whose writes fail with EACCES, as a non-root caller's


@pytest.fixture(autouse=True)
def sysfs_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a choice to a knob brackets it, as the kernel's store does."""
    real = Path.write_text
    REFUSED.clear()

    def write(self: Path, text: str, *a: object, **kw: object) -> int:
        if self in REFUSED:
            raise PermissionError(13, "Permission denied", str(self))
        if self.name == "enabled" and "[" not in text:
            words = [w.strip("[]") for w in self.read_text().split()]
            assert text in words, f"{text!r} is no choice of {self}"
            text = " ".join(f"[{w}]" if w == text else w for w in words) + "\n"
        return real(self, text)

    monkeypatch.setattr(Path, "write_text", write)


def test_sizes_are_the_anonymous_ones(tmp_path: Path) -> None:
    root = _tree(tmp_path, {16 * K: "never", 64 * K: "never", 2 << 20: "inherit"})
    assert thp.sizes(root) == [16 * K, 64 * K, 2 << 20]
    assert thp.sizes(_tree(tmp_path / "old", None)) == [2 << 20]  # before v6.8
    assert thp.sizes(tmp_path / "none") == []


def test_only_allows_one_size_and_restores_all(tmp_path: Path) -> None:
    root = _tree(tmp_path, {16 * K: "always", 64 * K: "never", 2 << 20: "inherit"})
    before = _values(root)
    with thp.only(64 * K, root):
        assert _values(root) == {"enabled": "madvise",
                                 "hugepages-16kB/enabled": "never",
                                 "hugepages-2048kB/enabled": "never",
                                 "hugepages-64kB/enabled": "madvise"}  # fmt: skip
    assert _values(root) == before


def test_only_restores_on_an_exception(tmp_path: Path) -> None:
    root = _tree(tmp_path, {64 * K: "never", 2 << 20: "always"})
    before = _values(root)
    with pytest.raises(KeyboardInterrupt), thp.only(64 * K, root):
        raise KeyboardInterrupt  # what gupctl's signal handlers raise
    assert _values(root) == before


def test_only_makes_the_size_madvise_whatever_it_inherits(tmp_path: Path) -> None:
    """madvise even where the policy allows (always, or inheriting it): then
    only the run's mapping gets the size, and its fault counters are the run's."""
    for top in ("always", "never"):
        root = _tree(tmp_path / top, {64 * K: "never", 2 << 20: "inherit"}, top=top)
        with thp.only(2 << 20, root):
            assert _values(root)["hugepages-2048kB/enabled"] == "madvise"
            assert _values(root)["enabled"] == top
        assert _values(root)["hugepages-2048kB/enabled"] == "inherit"
    root = _tree(tmp_path / "kept", {64 * K: "madvise"})
    REFUSED.add(root / "hugepages-64kB" / "enabled")  # no write where none is needed
    with thp.only(64 * K, root):
        assert _values(root)["hugepages-64kB/enabled"] == "madvise"


def test_only_before_mthp_sets_the_top_knob(tmp_path: Path) -> None:
    root = _tree(tmp_path, None, top="never")
    with thp.only(2 << 20, root):
        assert _values(root) == {"enabled": "madvise"}
    assert _values(root) == {"enabled": "never"}
    with pytest.raises(MappingError, match=r"no 64K THP size here \(sizes: 2048K\)"):
        thp.only(64 * K, root).__enter__()


def test_only_refused_a_write_undoes_what_it_did(tmp_path: Path) -> None:
    root = _tree(tmp_path, {16 * K: "always", 64 * K: "never", 2 << 20: "always"})
    before = _values(root)
    REFUSED.add(root / "hugepages-64kB" / "enabled")
    with pytest.raises(MappingError, match="cannot set .*hugepages-64kB/enabled to madvise"):
        thp.only(64 * K, root).__enter__()
    assert _values(root) == before


def test_allowed_opens_never_sizes_and_tolerates_refusal(tmp_path: Path) -> None:
    root = _tree(tmp_path, {16 * K: "never", 32 * K: "never", 64 * K: "always"})
    REFUSED.add(root / "hugepages-32kB" / "enabled")  # its cases skip, as cow.c's
    with thp.allowed([16 * K, 32 * K, 64 * K, 128 * K], root):
        assert _values(root)["hugepages-16kB/enabled"] == "madvise"
        assert _values(root)["hugepages-32kB/enabled"] == "never"
        assert _values(root)["hugepages-64kB/enabled"] == "always"
    assert _values(root)["hugepages-16kB/enabled"] == "never"
