#!/usr/bin/env python3
"""Draws a table of figures as an SVG chart, with Python's standard library
only: scripts/compare.sh and scripts/dns-compare.sh call it on the tables
they measure, and docs/COMPARISON.md shows the charts.

The table is tab-separated text with a header line naming the columns
('-' reads standard input). Two kinds of chart:

  plot.py line TABLE --x COL --y COL [--y COL...] --series COL --out FILE
          [--title T] [--xlabel L] [--ylabel L] [--log-x] [--log-y]

    One line per distinct value of the --series column (a server, say),
    its points (x, y) taken from the rows that carry it, in x order. With
    several --y columns each series gets a line per column (solid, dashed,
    dotted), named "<series> <column>".

  plot.py bar TABLE --label COL --value COL --out FILE
          [--group COL] [--title T] [--xlabel L] [--format F]

    One horizontal bar per row, labelled with the --label column, in the
    table's order; bars of the same --group value share a colour and a
    legend entry.

A cell that is not a number ('n/a', empty) leaves its point out (a line)
or draws no bar ('n/a' at the bar's place). Each series is an SVG group
<g class="series" data-name="..."> holding one <path class="point"> per
point, and each bar a <rect class="bar" data-name="..." data-value="...">,
so that tools and tests can read the figures back.

Exit codes: 0 drawn, 2 bad usage or a table that cannot be drawn (the
message says which file, line or column).
"""

import argparse
import math
import sys
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe palette (Okabe and Ito), in the order series appear.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"]
DASHES = ["", "10 6", "3 5"]
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
TITLE_SIZE = 30
LABEL_SIZE = 24
TICK_SIZE = 21
LEGEND_SIZE = 22


class Unusable(Exception):
    """A table or an option the chart cannot be drawn from."""


def text_width(text, size):
    """Estimated width of `text` at font `size` (sans-serif, about 0.6 em a character)."""
    return len(text) * size * 0.6


def read_table(path):
    """The header and rows (lists of strings) of a tab-separated table."""
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
    except OSError as e:
        raise Unusable(f"{path}: {e.strerror}") from e
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise Unusable(f"{path}: empty: a header line naming the columns is needed")
    header = lines[0].split("\t")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise Unusable(f"{path}:{n}: {len(cells)} columns, the header has {len(header)}")
        rows.append(cells)
    return header, rows


def column(header, name, path):
    """The index of column `name`."""
    if name not in header:
        raise Unusable(f"{path}: no column {name!r} (columns: {', '.join(header)})")
    return header.index(name)


def number(cell):
    """The cell as a finite float, or None when it is not a number."""
    try:
        value = float(cell.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def fmt_tick(value):
    """A tick label: 20k, 1.5M, 0.25, 64."""
    magnitude = abs(value)
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:g}{suffix}"
    if magnitude == 0:
        return "0"
    return f"{value:.6g}"


def fmt_value(value, spec):
    """A value printed beside its bar: with thousands separators, or by `spec`."""
    if spec:
        return format(value, spec)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_ticks(low, high, count=6):
    """Round tick values covering [low, high] (a 1, 2, 5 step)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(low, high):
    """Ticks at 1, 2 and 5 times the powers of ten covering [low, high]
    (only the powers when the range spans many decades)."""
    first = math.floor(math.log10(low))
    last = math.ceil(math.log10(high))
    mults = (1,) if last - first > 4 else (1, 2, 5)
    ticks = [m * 10**e for e in range(first, last + 1) for m in mults]
    inside = [t for t in ticks if low <= t <= high]
    below = [t for t in ticks if t < low]
    above = [t for t in ticks if t > high]
    return ([below[-1]] if below else []) + inside + ([above[0]] if above else [])


class Axis:
    """Maps data values to pixels, linearly or on a log scale."""

    def __init__(self, values, start, end, log, from_zero, data_ticks=False):
        self.log = log
        self.start, self.end = start, end
        low, high = min(values), max(values)
        if log:
            if low <= 0:
                raise Unusable("a log scale needs values above 0")
            if data_ticks:
                self.ticks = sorted(set(values))
                pad = 1.15 if len(self.ticks) > 1 else 2
                self.low, self.high = low / pad, high * pad
            else:
                self.ticks = log_ticks(low, high)
                self.low, self.high = self.ticks[0], self.ticks[-1]
        else:
            if from_zero:
                low = min(low, 0)
            if data_ticks:
                self.ticks = sorted(set(values))
                span = (high - low) or 1
                self.low, self.high = low - span * 0.05, high + span * 0.05
            else:
                self.ticks = nice_ticks(low, high)
                self.low, self.high = self.ticks[0], self.ticks[-1]

    def __call__(self, value):
        if self.log:
            lo, hi, v = math.log10(self.low), math.log10(self.high), math.log10(value)
        else:
            lo, hi, v = self.low, self.high, value
        span = (hi - lo) or 1
        return self.start + (v - lo) / span * (self.end - self.start)


def svg_text(x, y, text, size, anchor="start", weight="normal", extra=""):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}"{extra}>{escape(text)}</text>'
    )


def marker(shape, x, y, r):
    """An SVG path drawing marker `shape` (0..3) centred on (x, y)."""
    if shape == 1:  # square
        return f"M{x - r:.1f},{y - r:.1f}h{2 * r:.1f}v{2 * r:.1f}h{-2 * r:.1f}z"
    if shape == 2:  # triangle
        return f"M{x:.1f},{y - r * 1.2:.1f}L{x + r * 1.1:.1f},{y + r * 0.8:.1f}L{x - r * 1.1:.1f},{y + r * 0.8:.1f}z"
    if shape == 3:  # diamond
        return f"M{x:.1f},{y - r * 1.3:.1f}L{x + r:.1f},{y:.1f}L{x:.1f},{y + r * 1.3:.1f}L{x - r:.1f},{y:.1f}z"
    # circle, as two arcs
    return f"M{x - r:.1f},{y:.1f}a{r:.1f},{r:.1f} 0 1,0 {2 * r:.1f},0a{r:.1f},{r:.1f} 0 1,0 {-2 * r:.1f},0z"


def document(width, height, title, body):
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT}">',
            f"<title>{escape(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def line_chart(args):
    header, rows = read_table(args.table)
    xi = column(header, args.x, args.table)
    si = column(header, args.series, args.table)
    yis = [column(header, y, args.table) for y in args.y]
    # series name -> (colour index, y index, points)
    series = {}
    owners = []
    for row in rows:
        owner = row[si]
        if owner not in owners:
            owners.append(owner)
        for k, yi in enumerate(yis):
            name = owner if len(yis) == 1 else f"{owner} {args.y[k]}"
            entry = series.setdefault(name, (owners.index(owner), k, []))
            x, y = number(row[xi]), number(row[yi])
            if x is not None and y is not None and (not args.log_x or x > 0) and (not args.log_y or y > 0):
                entry[2].append((x, y))
    xs = [x for _, _, pts in series.values() for x, _ in pts]
    ys = [y for _, _, pts in series.values() for _, y in pts]
    if not xs:
        raise Unusable(f"{args.table}: no row has numbers in both {args.x!r} and {', '.join(map(repr, args.y))}")
    title = args.title or f"{', '.join(args.y)} against {args.x}"
    legend_w = max(text_width(name, LEGEND_SIZE) for name in series) + 80
    width, height = 1200, 720
    left, right, top, bottom = 130, width - legend_w - 30, 80, height - 100
    x_axis = Axis(xs, left, right, args.log_x, from_zero=False, data_ticks=args.log_x)
    y_axis = Axis(ys, bottom, top, args.log_y, from_zero=not args.log_y)
    body = [svg_text(width / 2, 46, title, TITLE_SIZE, "middle", "bold")]
    # Grid, ticks and tick labels.
    for t in y_axis.ticks:
        y = y_axis(t)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#dddddd" stroke-width="1"/>')
        body.append(svg_text(left - 12, y + TICK_SIZE * 0.35, fmt_tick(t), TICK_SIZE, "end"))
    for t in x_axis.ticks:
        x = x_axis(t)
        body.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 8}" stroke="#333333" stroke-width="2"/>')
        body.append(svg_text(x, bottom + 12 + TICK_SIZE, fmt_tick(t), TICK_SIZE, "middle"))
    body.append(
        f'<path d="M{left},{top}V{bottom}H{right:.1f}" fill="none" stroke="#333333" stroke-width="2"/>'
    )
    body.append(svg_text((left + right) / 2, height - 30, args.xlabel or args.x, LABEL_SIZE, "middle"))
    cy = (top + bottom) / 2
    body.append(
        svg_text(34, cy, args.ylabel or ", ".join(args.y), LABEL_SIZE, "middle", extra=f' transform="rotate(-90 34 {cy:.1f})"')
    )
    # The series, then the legend.
    for n, (name, (colour_i, k, pts)) in enumerate(series.items()):
        colour = COLOURS[colour_i % len(COLOURS)]
        dash = DASHES[k % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        pts.sort()
        body.append(f'<g class="series" data-name={quoteattr(name)}>')
        if len(pts) > 1:
            d = " ".join(f"{x_axis(x):.1f},{y_axis(y):.1f}" for x, y in pts)
            body.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="4"{dash_attr}/>')
        for x, y in pts:
            body.append(
                f'<path class="point" data-x="{x:g}" data-y="{y:g}" d="{marker(colour_i % 4, x_axis(x), y_axis(y), 7)}" '
                f'fill="{colour if k == 0 else "#ffffff"}" stroke="{colour}" stroke-width="3"/>'
            )
        body.append("</g>")
        ly = top + 10 + n * (LEGEND_SIZE + 16)
        lx = right + 30
        body.append(f'<line x1="{lx}" y1="{ly:.1f}" x2="{lx + 44}" y2="{ly:.1f}" stroke="{colour}" stroke-width="4"{dash_attr}/>')
        body.append(f'<path d="{marker(colour_i % 4, lx + 22, ly, 7)}" fill="{colour if k == 0 else "#ffffff"}" stroke="{colour}" stroke-width="3"/>')
        body.append(svg_text(lx + 56, ly + LEGEND_SIZE * 0.35, name, LEGEND_SIZE))
    return document(width, height, title, body)


def bar_chart(args):
    header, rows = read_table(args.table)
    li = column(header, args.label, args.table)
    vi = column(header, args.value, args.table)
    gi = column(header, args.group, args.table) if args.group else None
    if not rows:
        raise Unusable(f"{args.table}: no rows to draw")
    bars = [(row[li], number(row[vi]), row[gi] if gi is not None else "") for row in rows]
    values = [v for _, v, _ in bars if v is not None]
    if not values:
        raise Unusable(f"{args.table}: no number in column {args.value!r}")
    if min(values) < 0:
        raise Unusable(f"{args.table}: column {args.value!r} has negative values; bars start at 0")
    groups = []
    for _, _, g in bars:
        if g not in groups:
            groups.append(g)
    title = args.title or args.value
    bar_h, gap = 40, 16
    label_w = max(text_width(label, LABEL_SIZE) for label, _, _ in bars)
    value_w = max(text_width(fmt_value(v, args.format), TICK_SIZE) for v in values) + 20
    width = 1200
    left = label_w + 40
    right = width - value_w - 20
    top = 80
    legend_h = (LEGEND_SIZE + 24) if args.group else 0
    bottom = top + legend_h + len(bars) * (bar_h + gap)
    height = bottom + 100
    axis = Axis(values, left, right, log=False, from_zero=True)
    body = [svg_text(width / 2, 46, title, TITLE_SIZE, "middle", "bold")]
    if args.group:
        lx = left
        for n, g in enumerate(groups):
            colour = COLOURS[n % len(COLOURS)]
            body.append(f'<rect x="{lx:.1f}" y="{top:.1f}" width="28" height="28" fill="{colour}"/>')
            body.append(svg_text(lx + 38, top + 22, g, LEGEND_SIZE))
            lx += 38 + text_width(g, LEGEND_SIZE) + 40
    plot_top = top + legend_h
    for t in axis.ticks:
        x = axis(t)
        body.append(f'<line x1="{x:.1f}" y1="{plot_top - 6}" x2="{x:.1f}" y2="{bottom}" stroke="#dddddd" stroke-width="1"/>')
        body.append(svg_text(x, bottom + 12 + TICK_SIZE, fmt_tick(t), TICK_SIZE, "middle"))
    for n, (label, value, g) in enumerate(bars):
        y = plot_top + gap / 2 + n * (bar_h + gap)
        colour = COLOURS[groups.index(g) % len(COLOURS)]
        body.append(svg_text(left - 14, y + bar_h / 2 + LABEL_SIZE * 0.35, label, LABEL_SIZE, "end"))
        if value is None:
            body.append(svg_text(left + 10, y + bar_h / 2 + TICK_SIZE * 0.35, "n/a", TICK_SIZE))
            continue
        w = axis(value) - left
        body.append(
            f'<rect class="bar" data-name={quoteattr(label)} data-value="{value:g}" x="{left:.1f}" y="{y:.1f}" '
            f'width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
        )
        body.append(svg_text(left + w + 10, y + bar_h / 2 + TICK_SIZE * 0.35, fmt_value(value, args.format), TICK_SIZE))
    body.append(f'<path d="M{left:.1f},{plot_top - 6}V{bottom}H{right:.1f}" fill="none" stroke="#333333" stroke-width="2"/>')
    body.append(svg_text((left + right) / 2, height - 30, args.xlabel or args.value, LABEL_SIZE, "middle"))
    return document(width, int(height), title, body)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="plot.py", description="Draws a tab-separated table as an SVG chart.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    line = kinds.add_parser("line", help="lines of y against x, one per series")
    line.add_argument("table", help="tab-separated table with a header line ('-': standard input)")
    line.add_argument("--x", required=True, help="column of the x values")
    line.add_argument("--y", required=True, action="append", help="column of the y values (repeatable)")
    line.add_argument("--series", required=True, help="column whose values name the series")
    line.add_argument("--log-x", action="store_true", help="log scale for x, ticks at the data's x values")
    line.add_argument("--log-y", action="store_true", help="log scale for y")
    line.add_argument("--ylabel")
    bar = kinds.add_parser("bar", help="one horizontal bar per row")
    bar.add_argument("table", help="tab-separated table with a header line ('-': standard input)")
    bar.add_argument("--label", required=True, help="column of the bar labels")
    bar.add_argument("--value", required=True, help="column of the bar lengths")
    bar.add_argument("--group", help="column whose values colour the bars")
    bar.add_argument("--format", help="Python format spec for the values beside the bars (e.g. .3f)")
    for p in (line, bar):
        p.add_argument("--out", required=True, help="the SVG file to write ('-': standard output)")
        p.add_argument("--title")
        p.add_argument("--xlabel")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    try:
        if args.kind == "bar" and args.format:
            try:
                format(1.0, args.format)
            except ValueError as e:
                raise Unusable(f"--format {args.format!r}: {e}") from e
        svg = line_chart(args) if args.kind == "line" else bar_chart(args)
        if args.out == "-":
            sys.stdout.write(svg)
        else:
            try:
                with open(args.out, "w", encoding="utf-8") as f:
                    f.write(svg)
            except OSError as e:
                raise Unusable(f"{args.out}: {e.strerror}") from e
    except Unusable as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
