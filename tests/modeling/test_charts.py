"""The pages' SVG charts (modeling/charts.py): marks where the numbers put them, tooltips, the empty case."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from modeling import charts

SVG = "{http://www.w3.org/2000/svg}"


def mean(value, low=None, high=None):
    return {"value": value, "low": low, "high": high, "n": 3}


def summary(clip=(0.20, None, 0.30)):
    """Three values of a field: the model's mean rises, the human mean falls, CLIP similarity has a gap."""
    groups = []
    for k, value in enumerate([0.0, 1.5, 3.0]):
        groups.append({"value": value, "low": value, "high": value, "images": 3,
                       "model": mean(4.0 + k, 3.5 + k, 4.5 + k), "human": mean(7.0 - k, 6.0 - k, 8.0 - k),
                       "clip_similarity": mean(clip[k], clip[k] and clip[k] - 0.01, clip[k] and clip[k] + 0.01)
                       if clip[k] is not None else mean(None)})
    return {"field": "blur_sigma", "groups": groups}


def points(svg: str, series: str) -> list[tuple[float, float, str]]:
    root = ET.fromstring(str(svg))
    return [(float(c.get("cx")), float(c.get("cy")), c.find(f"{SVG}title").text)
            for c in root.iter(f"{SVG}circle") if c.get("data-series") == series]


def test_metadata_plot_puts_each_mean_on_its_axis_with_its_interval():
    svg = charts.metadata_plot(summary())
    root = ET.fromstring(str(svg))
    model, human, clip = points(svg, "model"), points(svg, "human"), points(svg, "clip_similarity")

    assert root.get("data-chart") == "metadata" and not list(root.iter(f"{SVG}script"))
    assert len(model) == len(human) == 3 and len(clip) == 2  # the group without a CLIP mean has no mark
    xs = [x for x, _, _ in model]
    assert xs == sorted(xs) and xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)  # a linear x scale
    assert [x for x, _, _ in clip] == [xs[0], xs[2]]
    assert model[0][1] > model[1][1] > model[2][1]  # rising means are drawn higher (SVG's y grows downwards)
    assert human[0][1] < human[1][1] < human[2][1]
    assert model[0][1] - model[1][1] == pytest.approx(model[1][1] - model[2][1], abs=0.2)
    # 0.20 and 0.30 sit on the right-hand scale (ticks 0.2 … 0.3), not on the scores' 1–10 one.
    assert clip[0][1] > clip[1][1] and abs(clip[0][1] - clip[1][1]) > 100
    assert model[2][2] == "blur_sigma 3: model score 6.000 (95% CI 5.500–6.500)"
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "CLIP similarity" in labels and "blur_sigma" in labels and "mean score (95% interval)" in labels
    intervals = [line for line in root.iter(f"{SVG}line") if line.get("class") == "interval"]
    assert len(intervals) == 3 + 3 + 2


def test_metadata_plot_without_clip_means_has_no_right_axis_and_without_any_mean_says_so():
    no_clip = charts.metadata_plot(summary(clip=(None, None, None)))
    labels = [t.text for t in ET.fromstring(str(no_clip)).iter(f"{SVG}text")]
    assert "CLIP similarity" not in labels and "mean score (95% interval)" in labels
    assert len(points(no_clip, "model")) == 3 and not points(no_clip, "clip_similarity")
    groups = summary()["groups"]
    for group in groups:
        group.update(model=mean(None), human=mean(None), clip_similarity=mean(None))
    empty = charts.metadata_plot({"field": "steps", "groups": groups})
    assert 'data-chart="metadata"' in empty and "chart-empty" in empty and "<circle" not in empty


def test_metadata_plot_escapes_the_field_name():
    data = summary()
    data["field"] = "<b>&steps"
    svg = charts.metadata_plot(data)
    assert "<b>" not in svg and "&lt;b&gt;&amp;steps" in svg
    ET.fromstring(str(svg))  # still well-formed
