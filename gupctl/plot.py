"""`gupctl plot`: ns per page against pages per call, as SVG built from strings.

Saved results are data; so is their plot, which is why it is drawn here and
not in gupctl/render (rich).  No plotting library: the chart is a few dozen
elements, and SVG text is easy to check (tests parse it with xml.etree).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from gupctl import cpus, output
from gupctl.memory import size_label
from gupctl.results import SavedResults

# Tableau 10: distinguishable, and still apart when printed in grey.
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
          "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR_W = 7.0  # average width of a 12px character, to size the legend
LEFT, TOP, PLOT_W, PLOT_H, BOTTOM = 80, 70, 640, 420, 60


@dataclass(frozen=True)
class Point:
    """One run: pages per call in effect ('all' is the run's nr_pages), median ns per page."""

    pages_per_call: int
    get_ns_per_page: float
    put_ns_per_page: float


@dataclass(frozen=True)
class Series:
    """One line pair on the plot (get solid, put dashed): runs differing only in -n."""

    file: str
    command: str
    backing: str
    size: int
    write: bool
    threads: int
    cpus: tuple[int, ...]  # each thread's CPU (--cpus), as the table shows it; (): unbound
    folio_size: int | None  # as the table shows it; None: not read
    points: list[Point]

    @property
    def name(self) -> str:
        """The legend text."""
        mode = "write" if self.write else "read"
        threads = f" j={self.threads}" if self.threads > 1 else ""
        bound = f" {cpus.label(self.cpus)}" if self.cpus else ""
        folio = f" in {size_label(self.folio_size)} folios" if self.folio_size else ""
        return (f"{self.file}: {self.command} {self.backing} {size_label(self.size)}{folio} "
                f"{mode}{threads}{bound}")  # fmt: skip


def labels(paths: Sequence[str]) -> list[str]:
    """Short names for files in the legend: the file name without .json, unless two clash."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return stems if len(set(stems)) == len(stems) else list(paths)


def notes(docs: Sequence[tuple[str, SavedResults]]) -> list[str]:
    """The plot's lines naming where each labelled document ran."""
    return [f"{label}: {d.kernel} on {d.hostname}, {d.date}" for label, d in docs]


def series(docs: Sequence[tuple[str, SavedResults]]) -> list[Series]:
    """Group every run of the labelled documents into series, points sorted by pages per call."""
    groups: dict[tuple[str, str, str, int, bool, int, tuple[int, ...], int | None],
                 list[Point]] = {}  # fmt: skip
    for label, doc in docs:
        for r in doc.results:
            key = (label, r.command, r.backing, r.size, r.write, r.threads, tuple(r.cpus),
                   r.folio_size)  # fmt: skip
            point = Point(r.pages_per_call, r.get_ns_per_page, r.put_ns_per_page)
            groups.setdefault(key, []).append(point)
    return [Series(*key, sorted(points, key=lambda p: p.pages_per_call))
            for key, points in groups.items()]  # fmt: skip


class _Axis:
    """Maps data to pixels on a linear or logarithmic scale, and picks the ticks."""

    def __init__(self, lo: float, hi: float, log: float | None, pixels: float, flip: bool):
        self.log, self.pixels, self.flip = log, pixels, flip
        f = self._f
        self.lo, self.hi = f(lo), f(hi)

    def _f(self, v: float) -> float:
        return math.log(v, self.log) if self.log else v

    def __call__(self, v: float) -> float:
        frac = (self._f(v) - self.lo) / (self.hi - self.lo)
        return (1 - frac if self.flip else frac) * self.pixels


def _x_axis(xs: list[int]) -> tuple[_Axis, list[float]]:
    lo, hi = math.floor(math.log2(min(xs))), math.ceil(math.log2(max(xs)))
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    step = max(1, math.ceil((hi - lo) / 12))  # at most ~12 labels
    ticks = [2.0**k for k in range(lo, hi + 1, step)]
    # A little room either side, so the end points do not sit on the frame.
    return _Axis(2.0 ** (lo - 0.25), 2.0 ** (hi + 0.25), 2, PLOT_W, False), ticks


def _y_axis(ys: list[float]) -> tuple[_Axis, list[float]]:
    positive = [y for y in ys if y > 0] or [1.0]
    lo, hi = min(positive), max(positive)
    if hi / lo >= 10:  # an order of magnitude or more: log scale, or the fast runs flatten
        d_lo, d_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        mults = (1, 2, 5) if d_hi - d_lo <= 4 else (1,)
        nice = [m * 10.0**d for d in range(d_lo, d_hi + 1) for m in mults]
        # The axis ends at the nice values just around the data, not at whole decades.
        bottom = max(t for t in nice if t <= lo * 1.0001)
        top = min(t for t in nice if t >= hi * 0.9999)
        ticks = [t for t in nice if bottom <= t <= top]
        return _Axis(bottom, top, 10, PLOT_H, True), ticks
    raw = hi / 5
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    top = math.ceil(hi / step) * step
    return _Axis(0, top, None, PLOT_H, True), [i * step for i in range(round(top / step) + 1)]


def _num(v: float) -> str:
    if v >= 1024 and float(v).is_integer() and math.log2(v).is_integer():
        return f"{int(v) >> 10}Ki"
    return f"{v:g}"


#: Characters XML 1.0 cannot hold even as references (C0 but tab and line
#: ends), shown as \xNN: a saved run's fields and the title come from files.
_NOT_XML = {c: f"\\x{c:02x}" for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)}


def _xml(s: str) -> str:
    """`s` escaped for SVG text or an attribute's value, always well-formed."""
    return escape(s.translate(_NOT_XML).encode("utf-8", "backslashreplace").decode())


def _text(
    x: float, y: float, s: str, size: int = 12, anchor: str = "start", extra: str = ""
) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{_xml(s)}</text>")  # fmt: skip


def svg(all_series: Sequence[Series], title: str, notes: Sequence[str] = ()) -> str:
    """The chart as an SVG document: title, axes with ticks and labels, and a legend.

    Each series is a `<g class="series">` holding one `<path class="get">` (solid)
    and one `<path class="put">` (dashed), plus a circle per point.
    """
    if not all_series:
        raise ValueError("no series to plot")
    points = [p for s in all_series for p in s.points]
    xa, xticks = _x_axis([p.pages_per_call for p in points])
    ya, yticks = _y_axis([v for p in points for v in (p.get_ns_per_page, p.put_ns_per_page)])
    legend = [s.name for s in all_series] + ["get (solid)", "put (dashed)", *notes]
    legend_x = LEFT + PLOT_W + 30
    width = legend_x + 40 + CHAR_W * max(len(t) for t in legend) + 20
    height = max(TOP + PLOT_H + BOTTOM, TOP + 20 * len(legend) + 20)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
           f'viewBox="0 0 {width:.0f} {height}" font-family={quoteattr(FONT)}>',
           '<rect width="100%" height="100%" fill="white"/>',
           _text(width / 2, 28, title, 16, "middle", ' font-weight="bold"'),
           f'<g class="plot" transform="translate({LEFT},{TOP})">']  # fmt: skip
    for t in xticks:
        x = xa(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{PLOT_H}" '
                   f'stroke="#e4e4e4"/>')  # fmt: skip
        out.append(
            f'<line x1="{x:.1f}" y1="{PLOT_H}" x2="{x:.1f}" y2="{PLOT_H + 5}" stroke="black"/>'
        )
        out.append(_text(x, PLOT_H + 20, _num(t), 11, "middle", ' class="xtick"'))
    for t in yticks:
        y = ya(t)
        out.append(f'<line class="grid" x1="0" y1="{y:.1f}" x2="{PLOT_W}" y2="{y:.1f}" '
                   f'stroke="#e4e4e4"/>')  # fmt: skip
        out.append(f'<line x1="-5" y1="{y:.1f}" x2="0" y2="{y:.1f}" stroke="black"/>')
        out.append(_text(-9, y + 4, _num(t), 11, "end", ' class="ytick"'))
    out.append(f'<rect x="0" y="0" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="black"/>')
    out.append(_text(PLOT_W / 2, PLOT_H + 45, "pages per GUP call (log2 scale; 'all' at the "
                     "run's page count)", 12, "middle"))  # fmt: skip
    scale = "log scale" if ya.log else "linear"
    out.append(_text(0, 0, f"ns per page, median ({scale})", 12, "middle",
                     f' transform="translate(-58,{PLOT_H / 2}) rotate(-90)"'))  # fmt: skip
    for i, s in enumerate(all_series):
        out += _series(s, COLORS[i % len(COLORS)], xa, ya)
    out.append("</g>")
    out += _legend(all_series, legend_x, notes)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _series(s: Series, color: str, xa: _Axis, ya: _Axis) -> list[str]:
    out = [f'<g class="series" data-name="{_xml(s.name).replace(chr(34), "&quot;")}">']
    for phase, dash in (("get", ""), ("put", ' stroke-dasharray="7 4"')):
        # A log axis has no place for 0 ns (a put too fast for the kernel's µs clock).
        pts = [(xa(p.pages_per_call), ya(v), p.pages_per_call, v) for p in s.points
               for v in [getattr(p, f"{phase}_ns_per_page")] if v > 0 or not ya.log]  # fmt: skip
        d = " ".join(f"{'L' if j else 'M'}{x:.1f},{y:.1f}" for j, (x, y, _, _) in enumerate(pts))
        out.append(f'<path class="{phase}" d="{d or "M0,0"}" fill="none" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')  # fmt: skip
        fill = color if phase == "get" else "white"
        for x, y, n, v in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" '
                       f'stroke="{color}" stroke-width="1.5"><title>{_xml(s.name)}, n={n}: '
                       f"{phase} {v:.1f} ns/page</title></circle>")  # fmt: skip
    out.append("</g>")
    return out


def _legend(all_series: Sequence[Series], x0: float, notes: Sequence[str]) -> list[str]:
    out = ['<g class="legend">']
    rows = [(s.name, COLORS[i % len(COLORS)], "") for i, s in enumerate(all_series)]
    rows += [("get (solid)", "black", ""), ("put (dashed)", "black", ' stroke-dasharray="7 4"')]
    for i, (text, color, dash) in enumerate(rows):
        y = TOP + 10 + 20 * i
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + 30}" y2="{y}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')  # fmt: skip
        out.append(_text(x0 + 38, y + 4, text))
    for j, note in enumerate(notes):
        out.append(_text(x0, TOP + 10 + 20 * (len(rows) + j) + 4, note, 11, extra=' fill="#555"'))
    out.append("</g>")
    return out


def write(text: str, path: str) -> None:
    """Write the SVG to `path`, or to stdout for '-'."""
    if path == "-":
        sys.stdout.write(text)
        return
    output.write_file(path, text)
