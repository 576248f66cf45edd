"""`gupctl plot`: the series, and SVG that parses, with what a reader needs on it."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from test_results import doc, make_run

from gupctl import abi, plot, results
from gupctl.cli import main

NS = {"s": "http://www.w3.org/2000/svg"}


def sweep(gets: tuple[int, int, int] = (40, 20, 10)) -> results.SavedResults:
    """Two commands x pages per call 1, 16, all over 1 MiB (256 pages)."""
    runs = [make_run(command=c, per_call=n, gets=(g, g + 1, g + 2))
            for c in ("pin_fast_benchmark", "gup_fast_benchmark")
            for n, g in zip((abi.ALL_PAGES, 1, 16), (gets[2], gets[0], gets[1]))]  # fmt: skip
    return doc(*runs)


def test_series_group_and_sort() -> None:
    s = plot.series([("a", sweep()), ("b", sweep())])
    assert [(x.file, x.command[:3]) for x in s] == [("a", "pin"), ("a", "gup"), ("b", "pin"),
                                                    ("b", "gup")]  # fmt: skip
    # 'all' sits at the run's page count, and points go left to right.
    assert [p.pages_per_call for p in s[0].points] == [1, 16, 256]
    assert s[0].points[0].get_ns_per_page == 41 * 1000 / 256
    assert s[0].name == "a: pin_fast_benchmark anon-private 1 MiB write"


def test_a_bound_run_says_so_and_is_not_drawn_with_a_free_one() -> None:
    """--cpus is in the legend as the table shows it (@ each thread's CPU),
    and runs bound differently are separate lines."""
    free = make_run(threads=2)
    bound = dataclasses.replace(free, cpus=[1, 0])
    s = plot.series([("a", doc(free, bound))])
    assert [x.name for x in s] == [
        "a: pin_fast_benchmark anon-private 1 MiB write j=2",
        "a: pin_fast_benchmark anon-private 1 MiB write j=2 @1,0",
    ]
    assert [len(x.points) for x in s] == [1, 1]


def test_labels_fall_back_to_paths_when_names_clash() -> None:
    assert plot.labels(["x/a.json", "y/b.json"]) == ["a", "b"]
    assert plot.labels(["x/a.json", "y/a.json"]) == ["x/a.json", "y/a.json"]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_svg_has_axes_ticks_legend_and_a_path_pair_per_series() -> None:
    s = plot.series([("a", sweep()), ("b", sweep((400, 200, 10)))])
    root = parse(plot.svg(s, "GUP & friends", ["a: 6.12 on host"]))
    groups = root.findall(".//s:g[@class='series']", NS)
    assert len(groups) == len(s) == 4
    for g in groups:
        assert len(g.findall("s:path[@class='get']", NS)) == 1
        assert len(g.findall("s:path[@class='put']", NS)) == 1
        dashed = g.find("s:path[@class='put']", NS)
        assert dashed is not None and dashed.get("stroke-dasharray")
        assert len(g.findall("s:circle", NS)) == 6  # 3 points, get and put
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "GUP & friends" in texts
    assert [t for t in texts if t in ("1", "16", "256")] == ["1", "16", "256"]  # log2 ticks
    assert any(t.startswith("pages per GUP call") for t in texts)
    assert "ns per page, median (log scale)" in texts  # 10 to 400: an order of magnitude
    assert all(x.name in texts for x in s) and "put (dashed)" in texts
    assert "a: 6.12 on host" in texts


def test_small_ranges_are_linear_and_zero_puts_survive_log() -> None:
    lin = parse(plot.svg(plot.series([("a", sweep((12, 11, 10)))]), "t"))
    texts = ["".join(t.itertext()) for t in lin.iter("{http://www.w3.org/2000/svg}text")]
    assert "ns per page, median (linear)" in texts
    zero = doc(make_run(per_call=1, gets=(100,) * 3, puts=(0,) * 3),
               make_run(per_call=16, gets=(5,) * 3, puts=(0,) * 3))  # fmt: skip
    root = parse(plot.svg(plot.series([("z", zero)]), "t"))
    put = root.find(".//s:path[@class='put']", NS)
    assert put is not None and put.get("d") == "M0,0"  # nothing to draw, and no crash


def test_one_point_series() -> None:
    root = parse(plot.svg(plot.series([("a", doc(make_run()))]), "t"))
    get = root.find(".//s:path[@class='get']", NS)
    assert get is not None and get.get("d", "").count("M") == 1


def test_plot_cli(cli: CliRunner, tmp_path) -> None:
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "p.svg"
    results.save(sweep(), str(a))
    results.save(sweep(), str(b))
    result = cli.invoke(main, ["plot", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "4 series" in result.stderr
    assert len(parse(out.read_text()).findall(".//s:g[@class='series']", NS)) == 4
    stdout = cli.invoke(main, ["plot", str(a), "-o", "-"]).stdout
    assert parse(stdout).tag == "{http://www.w3.org/2000/svg}svg"
    data = json.loads(cli.invoke(main, ["plot", str(a), "--json"]).stdout)
    assert [len(s["points"]) for s in data] == [3, 3]


@pytest.mark.parametrize(
    "args, code, words",
    [([], 2, "-o OUT.svg is needed"), (["-o", "/no/such/dir/p.svg"], 2, "does not exist")],
)
def test_plot_cli_errors(cli: CliRunner, tmp_path, args: list[str], code: int,
                         words: str) -> None:  # fmt: skip
    a = tmp_path / "a.json"
    results.save(sweep(), str(a))
    result = cli.invoke(main, ["plot", str(a), *args])
    assert result.exit_code == code and words in result.stderr


def test_plot_of_no_runs(cli: CliRunner, tmp_path) -> None:
    empty = tmp_path / "e.json"
    results.save(doc(), str(empty))
    result = cli.invoke(main, ["plot", str(empty), "-o", str(tmp_path / "p.svg")])
    assert result.exit_code == 1 and "no runs to plot" in result.stderr


def test_control_characters_leave_the_svg_well_formed() -> None:
    """A title or a field holding ESC, NUL or a surrogate is shown escaped, and the
    SVG still parses (XML 1.0 cannot hold those even as references)."""
    s = plot.series([('a\x1b[31m\x00\udcff"<', sweep())])
    root = parse(plot.svg(s, "title \x1b[2J \x07", ["note \x01"]))
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "title \\x1b[2J \\x07" in texts
    names = [g.get("data-name") for g in root.findall(".//s:g[@class='series']", NS)]
    assert names and all(n.startswith('a\\x1b[31m\\x00\\udcff"<') for n in names)
