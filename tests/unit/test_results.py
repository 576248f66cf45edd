"""Sweeps, saved results and `gupctl compare`, with the kernel's answers injected at the ioctl."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import patch_ioctl

from gupctl import abi, results
from gupctl.bench import RunResult
from gupctl.cli import main
from gupctl.device import Device
from gupctl.vmstat import Balance

PAGE = 4096


def make_run(command: str = "pin_fast_benchmark", size: int = 1 << 20, per_call: int = 1,
             gets: tuple[int, ...] = (10, 11, 12), puts: tuple[int, ...] = (5, 5, 5),
             repeats: int = 3, threads: int = 1, write: bool = True) -> RunResult:  # fmt: skip
    """A RunResult as bench.run makes it, with the samples given."""
    return RunResult(command, "anon-private", size, size // PAGE, per_call, repeats, threads,
                     write, list(gets), list(puts),
                     balance=Balance("node1", 0, 0, 0, 0, 0, True))  # fmt: skip


def doc(*runs: RunResult) -> results.SavedResults:
    return results.document(list(runs), "/dev/gup_test")


@pytest.fixture
def fake(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A gup_test 'device' (a plain file) whose ioctl answers like the kernel."""
    path = tmp_path / "gup_test"
    path.write_bytes(b"")

    def ioctl(self: Device, command: abi.Command, arg: object = None) -> None:
        arg.get_delta_usec, arg.put_delta_usec = 7, 3  # type: ignore[attr-defined]

    patch_ioctl(monkeypatch, ioctl)
    return str(path)


def test_sweep_is_the_cartesian_product_and_saves(cli: CliRunner, fake: str, tmp_path) -> None:
    saved = tmp_path / "a.json"
    result = cli.invoke(main, ["bench", "-s", "64K,128K", "-n", "1,all", "-r", "2", "--json",
                               "--device", fake, "--save", str(saved), "pin_fast_benchmark",
                               "gup_fast_benchmark"])  # fmt: skip
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    got = [(r["command"], r["size"], r["nr_pages_per_call"]) for r in runs]
    assert got == [(c, s, n) for c in ("pin_fast_benchmark", "gup_fast_benchmark")
                   for s in (64 << 10, 128 << 10) for n in (1, abi.ALL_PAGES)]  # fmt: skip
    assert "run 8/8 done" in result.stderr  # stderr is no terminal: one line per run
    data = json.loads(saved.read_text())
    assert data["format"] == "gupctl-bench/1" and data["device"] == fake
    assert data["date"].endswith("Z") and data["kernel"] and data["machine"]
    assert data["results"] == runs  # the same dicts as --json
    loaded = results.load(str(saved))
    assert [r.get_usec.tolist() for r in loaded.results] == [[7, 7]] * 8


def test_single_values_behave_as_before(cli: CliRunner, fake: str) -> None:
    result = cli.invoke(main, ["bench", "-s", "64K", "--json", "--device", fake])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)
    assert run["size"] == 64 << 10 and run["nr_pages_per_call"] == 1
    assert "run " not in result.stderr


def test_table_and_save(cli: CliRunner, fake: str, tmp_path) -> None:
    saved = tmp_path / "t.json"
    result = cli.invoke(main, ["bench", "-s", "64K", "--device", fake, "--save", str(saved)])
    assert result.exit_code == 0 and "pin_fast_benchmark" in result.stdout
    assert len(results.load(str(saved)).results) == 1


@pytest.mark.parametrize(
    "args, message",
    [(["-s", "4M,0"], "'0' is not a size"), (["-n", "1,,2"], "'' is not a page count")],
)
def test_bad_list_items_are_usage_errors(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(main, ["bench", *args])
    assert result.exit_code == 2 and message in result.stderr


def test_save_to_missing_directory_is_one_line(cli: CliRunner, fake: str, tmp_path) -> None:
    target = tmp_path / "no" / "such.json"
    result = cli.invoke(main, ["bench", "-s", "64K", "--device", fake, "--save", str(target)])
    assert result.exit_code == 2  # refused before the benchmark runs, not after
    assert len(result.stderr.strip().splitlines()) == 1
    assert "does not exist: create it first" in result.stderr


@pytest.mark.parametrize(
    "content, words",
    [(None, "does not exist: save results first with `gupctl bench ... --save"),
     ("{not json", "is not JSON"),
     ("[]", "is not a gupctl-bench/1 document"),
     ('{"format": "gupctl-bench/1", "kernel": "6.12"}', "gupctl is missing"),
     ('{"format": "gupctl-bench/2"}', "format: 'gupctl-bench/2'")],
)  # fmt: skip
def test_bad_files_are_one_line_hints(cli: CliRunner, tmp_path, content: str | None,
                                      words: str) -> None:  # fmt: skip
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = tmp_path / "good.json"
    results.save(doc(make_run()), str(good))
    for args in (["compare", str(good), str(bad)], ["plot", str(bad), "-o", "x.svg"]):
        result = cli.invoke(main, args)
        assert result.exit_code == 1, result.output
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_malformed_samples_are_refused(tmp_path) -> None:
    path = tmp_path / "m.json"
    results.save(doc(make_run()), str(path))
    data = json.loads(path.read_text())
    data["results"][0]["get_usec"] = ["fast"]
    path.write_text(json.dumps(data))
    with pytest.raises(results.ResultsError, match="get_usec"):
        results.load(str(path))


def test_noise_rule() -> None:
    assert results.beyond_noise([10, 11, 12], [20, 21, 22]) is True
    assert results.beyond_noise([10, 11, 30], [20, 21, 22]) is False  # B's median in A's range
    assert results.beyond_noise([10, 11, 12], [9, 13, 25]) is False  # A's median in B's range
    assert results.beyond_noise([10], [20, 21]) is None
    assert results.beyond_noise([10, 12], [20, 22]) is True  # two samples make a range


def test_compare_pairs_runs_by_key() -> None:
    a = doc(make_run(per_call=1), make_run(per_call=abi.ALL_PAGES),
            make_run(command="gup_fast_benchmark"), make_run(size=2 << 20))  # fmt: skip
    b = doc(make_run(per_call=1, gets=(20, 22, 24)),
            make_run(per_call=256, gets=(5, 5, 6), repeats=5),  # 256 pages: all of 1 MiB
            make_run(command="gup_fast_benchmark", gets=(11,), puts=(0,), repeats=1),
            make_run(write=False))  # fmt: skip
    c = results.compare(a, b, "a.json", "b.json")
    assert len(c.pairs) == 3
    slower, faster, single = c.pairs
    assert (slower.get.verdict, slower.get.ratio, slower.get.beyond_noise) == ("slower", 2, True)
    assert slower.put.verdict == "within noise" and slower.put.ratio == 1
    assert faster.get.verdict == "faster" and (faster.repeats_a, faster.repeats_b) == (3, 5)
    assert faster.key.pages_per_call == 256
    assert single.get.verdict == results.NEEDS_REPEATS and single.get.beyond_noise is None
    assert single.put.ratio == 0
    assert [k.size for k in c.only_in_a] == [2 << 20]
    assert [k.write for k in c.only_in_b] == [False]


def test_compare_zero_median_and_duplicates() -> None:
    a = doc(make_run(puts=(0, 0, 0)), make_run())
    b = doc(make_run(), make_run(), make_run())
    c = results.compare(a, b, "a", "b")
    assert len(c.pairs) == 2 and c.pairs[0].put.ratio is None
    assert len(c.only_in_b) == 1 and not c.only_in_a


def test_compare_cli_table_and_json(cli: CliRunner, tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    results.save(doc(make_run(), make_run(size=2 << 20)), str(a))
    results.save(doc(make_run(gets=(30, 31, 32)), make_run(threads=2)), str(b))
    table = cli.invoke(main, ["compare", str(a), str(b)])
    assert table.exit_code == 0, table.output
    assert "slower" in table.stdout and "2.818" in table.stdout
    assert "without a match" in table.stdout
    data = json.loads(cli.invoke(main, ["compare", str(a), str(b), "--json"]).stdout)
    assert data["pairs"][0]["get"] == {"median_a": 11, "median_b": 31, "ratio": 31 / 11,
                                       "beyond_noise": True, "verdict": "slower"}  # fmt: skip
    assert len(data["only_in_a"]) == 1 and data["only_in_b"][0]["threads"] == 2


def test_compare_pairs_across_bindings_and_says_so(cli: CliRunner, tmp_path) -> None:
    # Binding (--cpus) is how a run was taken, not what it measured: bound and
    # unbound runs still pair, each side's CPUs are in the JSON, and a
    # difference in binding is one warning on stderr.
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    bound = make_run()
    object.__setattr__(bound, "cpus", [1])
    results.save(doc(bound), str(a))
    results.save(doc(make_run()), str(b))
    ran = cli.invoke(main, ["compare", str(a), str(b), "--json"])
    assert ran.exit_code == 0, ran.output
    (pair,) = json.loads(ran.stdout)["pairs"]
    assert (pair["cpus_a"], pair["cpus_b"]) == ([1], [])
    assert "1 pair(s) ran with their threads bound differently" in ran.stderr
    same = cli.invoke(main, ["compare", str(a), str(a)])
    assert same.exit_code == 0 and "bound differently" not in same.stderr
