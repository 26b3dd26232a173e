"""The pages' charts, as inline SVG drawn from stored or computed numbers: the one chart stack of the site.

Inline SVG rather than images (or a plotting library's output): nothing to fetch (no CDN, no extra request,
no script, so nothing for the Content-Security-Policy to allow), the scatter's points are ordinary links that
open their image, every mark has a tooltip (``<title>``), the styles are the site's (``static/css/dashboard.css``),
and drawing a chart takes a millisecond or two, so the pages stay fast at any project size.
Charts: the dashboard's (``dashboard_views.py``) and the generation-parameter panel's (``analysis_views.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 62, 16, 16, 50
MARGIN_RIGHT_AXIS = 66  # room for a second y axis' ticks and label
COLORS = {"model": "#2456d6", "human": "#c2410c", "bars": "#5b7fd6", "gold": "#e0a526", "muted": "#5b6572",
          "clip": "#15803d"}


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


@dataclass
class Frame:
    """A plot area with linear x and y scales (and an optional right-hand y2 scale) and its SVG text."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float
    width: int = WIDTH
    height: int = HEIGHT
    y2_low: float | None = None
    y2_high: float | None = None

    def __post_init__(self):
        self.parts: list[str] = []
        self.left, self.top, self.bottom = MARGIN_LEFT, MARGIN_TOP, self.height - MARGIN_BOTTOM
        self.right = self.width - (MARGIN_RIGHT_AXIS if self.y2_low is not None else MARGIN_RIGHT)

    def x(self, value: float) -> float:
        return self.left + (value - self.x_low) / (self.x_high - self.x_low) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y_low) / (self.y_high - self.y_low) * (self.bottom - self.top)

    def y2(self, value: float) -> float:
        return self.bottom - (value - self.y2_low) / (self.y2_high - self.y2_low) * (self.bottom - self.top)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def axes(self, x_ticks, y_ticks, x_label: str, y_label: str, x_tick_labels=None) -> None:
        for value in y_ticks:
            y = self.y(value)
            self.add(f'<line class="grid" x1="{self.left:.1f}" x2="{self.right:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{self.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{_label(value)}</text>')
        labels = x_tick_labels or [_label(value) for value in x_ticks]
        for value, label in zip(x_ticks, labels):
            x = self.x(value)
            self.add(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{self.bottom:.1f}" y2="{self.bottom + 4:.1f}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{self.bottom + 19:.1f}" text-anchor="middle">{escape(label)}</text>')
        self.add(f'<line class="axis" x1="{self.left:.1f}" x2="{self.right:.1f}" y1="{self.bottom:.1f}" y2="{self.bottom:.1f}"/>'
                 f'<line class="axis" x1="{self.left:.1f}" x2="{self.left:.1f}" y1="{self.top:.1f}" y2="{self.bottom:.1f}"/>')
        self.add(f'<text class="axis-label" x="{(self.left + self.right) / 2:.1f}" y="{self.height - 8}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
        self.add(f'<text class="axis-label" transform="translate(16 {(self.top + self.bottom) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')

    def right_axis(self, ticks, label: str) -> None:
        """The y2 scale's ticks and label on the right-hand side."""
        for value in ticks:
            y = self.y2(value)
            self.add(f'<line class="tickmark" x1="{self.right:.1f}" x2="{self.right + 4:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{self.right + 6:.1f}" y="{y + 4:.1f}" text-anchor="start">{_label(value)}</text>')
        self.add(f'<line class="axis" x1="{self.right:.1f}" x2="{self.right:.1f}" y1="{self.top:.1f}" y2="{self.bottom:.1f}"/>'
                 f'<text class="axis-label" transform="translate({self.width - 8} {(self.top + self.bottom) / 2:.1f}) '
                 f'rotate(-90)" text-anchor="middle">{escape(label)}</text>')

    def svg(self, name: str, title: str, description: str) -> SafeString:
        return mark_safe(
            f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-labelledby="chart-{name}-title chart-{name}-desc" xmlns="http://www.w3.org/2000/svg" '
            f'xmlns:xlink="http://www.w3.org/1999/xlink">'
            f'<title id="chart-{name}-title">{escape(title)}</title><desc id="chart-{name}-desc">{escape(description)}</desc>'
            + "".join(self.parts) + "</svg>"
        )


def empty_chart(name: str, message: str) -> SafeString:
    return mark_safe(
        f'<svg class="chart chart-empty" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} 80" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(message)}</title>'
        f'<text x="{WIDTH / 2}" y="45" text-anchor="middle" class="tick">{escape(message)}</text></svg>'
    )


def agreement_by_version(rows: list[dict]) -> SafeString:
    """Held-out agreement of each version (with its interval) against the human ceiling."""
    rows = [row for row in rows if row.get("agreement") is not None]
    if not rows:
        return empty_chart("agreement-by-version", "No model version has been evaluated on held-out comparisons yet.")
    values = [row["agreement"] for row in rows] + [row["low"] for row in rows if row.get("low") is not None]
    values += [row["high"] for row in rows if row.get("high") is not None]
    values += [row["ceiling"] for row in rows if row.get("ceiling") is not None]
    y_ticks = nice_ticks(max(0.0, min(values + [0.5]) - 0.02), min(1.0, max(values) + 0.02), 5)
    frame = Frame(-0.5, len(rows) - 0.5, y_ticks[0], y_ticks[-1])
    frame.axes(range(len(rows)), y_ticks, "model version (oldest to newest)", "pairwise agreement",
               [row["label"] for row in rows])
    frame.add(f'<line class="chance" x1="{frame.left}" x2="{frame.right}" y1="{frame.y(0.5):.1f}" '
              f'y2="{frame.y(0.5):.1f}"/>' if y_ticks[0] <= 0.5 else "")
    ceiling = [(index, row["ceiling"]) for index, row in enumerate(rows) if row.get("ceiling") is not None]
    if ceiling:
        points = " ".join(f"{frame.x(index):.1f},{frame.y(value):.1f}" for index, value in ceiling)
        frame.add(f'<polyline class="ceiling" points="{points}" fill="none" stroke="{COLORS["human"]}" '
                  f'stroke-dasharray="6 4" stroke-width="2"/>')
        for index, value in ceiling:
            frame.add(f'<rect class="ceiling-mark" x="{frame.x(index) - 4:.1f}" y="{frame.y(value) - 4:.1f}" width="8" '
                      f'height="8" fill="{COLORS["human"]}"><title>human ceiling on the same pairs: {value:.3f}</title></rect>')
    line = " ".join(f"{frame.x(index):.1f},{frame.y(row['agreement']):.1f}" for index, row in enumerate(rows))
    frame.add(f'<polyline points="{line}" fill="none" stroke="{COLORS["model"]}" stroke-width="2"/>')
    for index, row in enumerate(rows):
        x = frame.x(index)
        if row.get("low") is not None and row.get("high") is not None:
            frame.add(f'<line class="interval" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.y(row["low"]):.1f}" '
                      f'y2="{frame.y(row["high"]):.1f}" stroke="{COLORS["model"]}"/>')
        interval = f" (95% CI {row['low']:.3f}–{row['high']:.3f})" if row.get("low") is not None else ""
        frame.add(f'<circle class="point" cx="{x:.1f}" cy="{frame.y(row["agreement"]):.1f}" r="5" fill="{COLORS["model"]}">'
                  f'<title>{escape(row["label"])}: held-out agreement {row["agreement"]:.3f}{interval}</title></circle>')
    _legend(frame, [("model, held-out comparisons", COLORS["model"], "line"),
                    ("human ceiling", COLORS["human"], "dash")])
    return frame.svg("agreement-by-version", "Agreement with held-out human comparisons, by model version",
                     "Each version's share of held-out comparisons whose winner it scores higher, with its 95% "
                     "interval; the dashed line is how often one rater agrees with the others on the same pairs.")


def scatter(points: list[dict], x_label: str = "model score (1–10)",
            y_label: str = "human score (comparisons only)") -> SafeString:
    """Model score against human score, one linked point per image."""
    if not points:
        return empty_chart("scatter", "No image has both a model score and a comparison yet.")
    xs, ys = [point["model"] for point in points], [point["human"] for point in points]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    frame = Frame(x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1])
    frame.axes(x_ticks, y_ticks, x_label, y_label)
    # Up to MAX_SCATTER_POINTS of these: kept short (colour in the stylesheet, ``target=_blank`` implies noopener).
    for point in points:
        label = (f"{point.get('name') or 'image ' + str(point['image_id'])}: model {point['model']:.2f}, "
                 f"human {point['human']:.2f}, {point['comparisons']} comparisons")
        circle = (f'<circle class="point scatter-point" cx="{frame.x(point["model"]):.1f}" '
                  f'cy="{frame.y(point["human"]):.1f}" r="3.5"><title>{escape(label)}</title></circle>')
        if point.get("url"):
            circle = f'<a href="{escape(point["url"])}" target="_blank" data-image-id="{int(point["image_id"])}">{circle}</a>'
        frame.add(circle)
    return frame.svg("scatter", "Model score against human score",
                     "One point per image with comparisons; a point opens its image.")


def histogram(data: dict | None, name: str, x_label: str, color: str) -> SafeString:
    if not data or not sum(data["counts"]):
        return empty_chart(name, "No scores yet.")
    edges, counts = data["edges"], data["counts"]
    y_ticks = nice_ticks(0, max(counts), 4)
    frame = Frame(edges[0], edges[-1], 0, y_ticks[-1])
    frame.axes(nice_ticks(edges[0], edges[-1], 6), y_ticks, x_label, "images")
    for low, high, count in zip(edges, edges[1:], counts):
        if count:
            x, width = frame.x(low), max(frame.x(high) - frame.x(low) - 1, 1)
            frame.add(f'<rect class="chart-bar" x="{x:.1f}" y="{frame.y(count):.1f}" width="{width:.1f}" '
                      f'height="{frame.bottom - frame.y(count):.1f}" fill="{color}">'
                      f'<title>{low:.2f} to {high:.2f}: {count} images</title></rect>')
    return frame.svg(name, f"Histogram of the {x_label}", f"How many images have each {x_label}.")


def comparisons_per_day(rows: list[dict]) -> SafeString:
    if not rows:
        return empty_chart("comparisons-per-day", "No comparisons yet.")
    counts = [row["comparisons"] for row in rows]
    y_ticks = nice_ticks(0, max(counts), 4)
    frame = Frame(-0.5, len(rows) - 0.5, 0, y_ticks[-1])
    step = max(1, math.ceil(len(rows) / 6))
    ticks = list(range(0, len(rows), step))
    frame.axes(ticks, y_ticks, "day (UTC)", "comparisons", [rows[index]["day"] for index in ticks])
    width = max((frame.right - frame.left) / len(rows) - 2, 1)
    for index, row in enumerate(rows):
        x = frame.x(index) - width / 2
        for value, color, kind in ((row["comparisons"], COLORS["bars"], "all"), (row.get("gold", 0), COLORS["gold"], "gold")):
            if value:
                frame.add(f'<rect class="chart-bar chart-bar-{kind}" x="{x:.1f}" y="{frame.y(value):.1f}" width="{width:.1f}" '
                          f'height="{frame.bottom - frame.y(value):.1f}" fill="{color}">'
                          f'<title>{escape(row["day"])}: {value} {"gold " if kind == "gold" else ""}comparisons</title></rect>')
    _legend(frame, [("all comparisons", COLORS["bars"], "box"), ("of which gold", COLORS["gold"], "box")])
    return frame.svg("comparisons-per-day", "Comparisons per day", "How many comparisons raters made each day.")


# The generation-parameter panel's series: (summary key, legend, colour, on the right-hand axis).
METADATA_SERIES = (("model", "model score", COLORS["model"], False),
                   ("human", "human score", COLORS["human"], False),
                   ("clip_similarity", "CLIP similarity (right axis)", COLORS["clip"], True))


def metadata_plot(summary: dict) -> SafeString:
    """Mean model and human score (1–10, left axis) and CLIP similarity (right axis) against a metadata field
    (``modeling.services.analyses.metadata_summary``), each mean with its 95% interval: along a numeric field's
    values, joined by lines, or one category per value of a text field."""
    field, groups = summary["field"], summary["groups"]
    text = summary.get("kind") == "text"  # a text field: one category per value, at 0, 1, 2, ... on the x axis
    series = [(key, label, color, right, [(k if text else g["value"], g[key]) for k, g in enumerate(groups)
                                          if g[key]["value"] is not None])
              for key, label, color, right in METADATA_SERIES]
    series = [entry for entry in series if entry[4]]
    if not series:
        return empty_chart("metadata", "No group of images has a score yet.")

    def span(on_right: bool) -> list[float]:
        return [number for _, _, _, right, points in series if right == on_right for _, mean in points
                for number in (mean["value"], mean["low"], mean["high"]) if number is not None]

    def ticks(values: list[float]) -> list[float]:
        headroom = (max(values) - min(values)) * 0.15  # the legend sits above the highest mark
        return nice_ticks(min(values), max(values) + headroom)

    if text:
        x_ticks, x_labels = list(range(len(groups))), [str(g["value"]) for g in groups]
        x_pad = 0.5
    else:
        xs = [g["value"] for g in groups]
        x_ticks, x_labels = nice_ticks(min(xs), max(xs), 6), None
        x_pad = (x_ticks[-1] - x_ticks[0]) * 0.04  # marks at the ends stay clear of the axes
    left_values, right_values = span(False) or [0.0, 1.0], span(True)
    y_ticks, y2_ticks = ticks(left_values), ticks(right_values) if right_values else None
    frame = Frame(x_ticks[0] - x_pad, x_ticks[-1] + x_pad, y_ticks[0], y_ticks[-1],
                  y2_low=y2_ticks[0] if y2_ticks else None, y2_high=y2_ticks[-1] if y2_ticks else None)
    frame.axes(x_ticks, y_ticks, field, "mean score (95% interval)", x_tick_labels=x_labels)
    if y2_ticks:
        frame.right_axis(y2_ticks, "CLIP similarity")
    for key, label, color, right, points in series:
        to_y = frame.y2 if right else frame.y
        if not text:  # categories have no order to draw a line along
            line = " ".join(f"{frame.x(x):.1f},{to_y(mean['value']):.1f}" for x, mean in points)
            frame.add(f'<polyline class="series" data-series="{key}" points="{line}" fill="none" stroke="{color}" '
                      f'stroke-width="2"/>')
        for x, mean in points:
            interval = ""
            if mean["low"] is not None and mean["high"] is not None:
                frame.add(f'<line class="interval" x1="{frame.x(x):.1f}" x2="{frame.x(x):.1f}" y1="{to_y(mean["low"]):.1f}" '
                          f'y2="{to_y(mean["high"]):.1f}" stroke="{color}"/>')
                interval = f" (95% CI {mean['low']:.3f}–{mean['high']:.3f})"
            frame.add(f'<circle class="point" data-series="{key}" cx="{frame.x(x):.1f}" cy="{to_y(mean["value"]):.1f}" '
                      f'r="4.5" fill="{color}"><title>{escape(field)} {escape(x_labels[x]) if text else f"{x:g}"}: '
                      f'{escape(label)} {mean["value"]:.3f}'
                      f'{interval}</title></circle>')
    _legend(frame, [(label, color, "line") for _, label, color, _, _ in series])
    return frame.svg("metadata", f"Scores against {field}",
                     f"Mean model score, human score and CLIP similarity of the images at each value of {field}, "
                     "with 95% bootstrap intervals.")


def _legend(frame: Frame, entries) -> None:
    x, y = frame.left + 10, frame.top + 8
    for label, color, kind in entries:
        if kind == "box":
            frame.add(f'<rect x="{x}" y="{y - 7}" width="12" height="10" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
            frame.add(f'<line x1="{x}" x2="{x + 18}" y1="{y - 2}" y2="{y - 2}" stroke="{color}" stroke-width="2"{dash}/>')
        frame.add(f'<text class="legend" x="{x + 24}" y="{y + 2}">{escape(label)}</text>')
        x += 34 + 8 * len(label)
