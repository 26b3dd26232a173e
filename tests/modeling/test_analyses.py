"""Per-tag and per-metadata-field aggregates against hand-computed values; seeded intervals; the API."""
from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import ReferenceRating
from modeling.models import CriterionScore
from modeling.services import analyses
from tests.modeling.analysis_data import (
    attach_weights, put_features, ranker, set_human_scores, tag_images, write_baseline_cache,
)
from tests.modeling.dashboard_data import make_images, make_model_version

OURS = np.array([2.0, 4.0, 6.0, 8.0, 5.0, 5.0, 9.0])
HUMAN_RAW = np.array([0.0, 2.0, 1.0, 3.0, 1.5, 1.5, 0.5])
BASELINE = np.array([3.0, 5.0, 4.0, 7.0, 6.0, 2.0, 9.0])
BLUR = [0, 0, 1, 1, 2, 2, 2]


@pytest.fixture
def scored(project):
    """Seven images: 'bird' on 0-2, 'nature' on 1-4, 'rare' on 5 only, image 6 untagged."""
    images = make_images(project, 7)
    for image, blur in zip(images, BLUR):
        image.metadata = {"blur_sigma": blur, "photo": "astronaut", "mixed": 1 if image == images[0] else "x"}
        image.save(update_fields=["metadata"])
    tag_images(project, {"bird": images[0:3], "nature": images[1:5], "rare": images[5:6]})
    version = make_model_version(project, images, OURS)
    set_human_scores(project, images, HUMAN_RAW)
    write_baseline_cache(version, images, BASELINE)
    ReferenceRating.objects.create(image=images[0], votes_7=2, votes_9=2)  # mean 8
    return {"images": images, "version": version}


def mapped_human() -> np.ndarray:
    """The documented moment matching, by hand: over every image with both scores."""
    return (HUMAN_RAW - HUMAN_RAW.mean()) / HUMAN_RAW.std() * OURS.std() + OURS.mean()


def test_tag_summary_matches_hand_computed_means_and_leaves_out_small_tags(scored):
    summary = analyses.tag_summary(scored["version"].project, min_images=3)
    rows = {row["tag"]: row for row in summary["rows"]}
    human = mapped_human()

    assert set(rows) == {"bird", "nature"} and summary["tags_left_out"] == ["rare"]
    for tag, at in {"bird": [0, 1, 2], "nature": [1, 2, 3, 4]}.items():
        row = rows[tag]
        assert row["images"] == len(at)
        assert row["ours"]["value"] == pytest.approx(OURS[at].mean())
        assert row["baseline"]["value"] == pytest.approx(BASELINE[at].mean())
        assert row["human"]["value"] == pytest.approx(human[at].mean())
        assert row["ours_minus_human"]["value"] == pytest.approx((OURS[at] - human[at]).mean())
        assert row["baseline_minus_human"]["value"] == pytest.approx((BASELINE[at] - human[at]).mean())
        for column in ("ours", "human", "ours_minus_human"):
            assert row[column]["low"] <= row[column]["value"] <= row[column]["high"]
    # Only image 0 has a reference rating.
    assert rows["bird"]["reference"]["value"] == pytest.approx(8.0) and rows["bird"]["reference"]["n"] == 1
    assert rows["nature"]["reference"]["value"] is None
    assert summary["has_baseline"] and summary["human_mapping"]["images"] == 7

    with_rare = {row["tag"]: row for row in analyses.tag_summary(scored["version"].project, min_images=1)["rows"]}
    assert with_rare["rare"]["ours"]["value"] == pytest.approx(OURS[5])
    # The untagged image 6 (ours 9) is in no row.
    assert sum(row["images"] for row in with_rare.values()) == 3 + 4 + 1


def test_bootstrap_intervals_are_deterministic_under_a_seed(scored):
    project = scored["version"].project
    first = analyses.tag_summary(project, seed=5)
    again = analyses.tag_summary(project, seed=5)
    other = analyses.tag_summary(project, seed=6)
    assert first == again
    lows = lambda s: [row["ours"]["low"] for row in s["rows"]]  # noqa: E731
    assert lows(first) != lows(other)


def test_numeric_fields_and_metadata_summary_by_value(scored):
    project = scored["version"].project
    images = scored["images"]
    assert analyses.metadata_fields(project) == [
        {"field": "blur_sigma", "images": 7, "kind": "numeric"}, {"field": "mixed", "images": 7, "kind": "text"},
        {"field": "photo", "images": 7, "kind": "text"}]
    with pytest.raises(analyses.UnknownField):
        analyses.metadata_summary(project, "nothing")

    # Texts: each image's tags, as the ranker reads them; cosines computed by hand below.
    features = put_features(scored["version"], images, ["bird", "nature", "rare"])
    summary = analyses.metadata_summary(project, "blur_sigma", by_tag=True, min_images=3)
    human = mapped_human()
    assert summary["grouping"] == "distinct values"
    assert [g["value"] for g in summary["groups"]] == [0.0, 1.0, 2.0]

    def cosine(image_index, texts):
        image = features["tokens"][images[image_index].pk][0]
        mean_text = np.mean([features["texts"][t] for t in texts], axis=0)
        return float(image @ mean_text / np.linalg.norm(image) / np.linalg.norm(mean_text))

    texts_of = {0: ["bird"], 1: ["bird", "nature"], 2: ["bird", "nature"], 3: ["nature"], 4: ["nature"], 5: ["rare"]}
    for group, at in zip(summary["groups"], ([0, 1], [2, 3], [4, 5, 6])):
        assert group["images"] == len(at)
        assert group["model"]["value"] == pytest.approx(OURS[at].mean())
        assert group["human"]["value"] == pytest.approx(human[at].mean())
        assert group["baseline"]["value"] == pytest.approx(BASELINE[at].mean())
        # Image 6 has no texts: no similarity, left out of the mean.
        with_texts = [i for i in at if i in texts_of]
        assert group["clip_similarity"]["n"] == len(with_texts)
        assert group["clip_similarity"]["value"] == pytest.approx(np.mean([cosine(i, texts_of[i]) for i in with_texts]),
                                                                  abs=1e-5)
    per_tag = {entry["tag"]: entry for entry in summary["by_tag"]}
    assert set(per_tag) == {"bird", "nature"}
    assert [(g["value"], g["images"]) for g in per_tag["bird"]["groups"]] == [(0.0, 2), (1.0, 1)]


def test_many_distinct_values_are_grouped_in_quantile_bins():
    values = np.arange(30, dtype=float)
    index, groups = analyses.group_values(values)
    assert len(groups) == analyses.QUANTILE_BINS
    assert np.bincount(index).sum() == 30 and np.bincount(index).min() >= 2
    for k, group in enumerate(groups):
        assert np.all((values[index == k] >= group["low"]) & (values[index == k] <= group["high"]))


def test_baseline_scores_come_from_the_versions_baseline_checkpoint_and_are_cached(project):
    from modeling.ml.training import score_images

    images = make_images(project, 4)
    version = make_model_version(project, images, [5, 6, 7, 8])
    baseline = ranker("image_only", seed=3)
    attach_weights(version, ranker("tags"), baseline)
    features = put_features(version, images, [])
    ids = np.array([image.pk for image in images])
    expected, _, _ = score_images(baseline, np.stack([features["tokens"][i] for i in ids]))
    assert analyses.baseline_means(version, ids) == pytest.approx(expected.astype(float), abs=1e-5)
    # Cached: with the features gone the same numbers come back.
    import shutil
    from django.conf import settings
    shutil.rmtree(settings.TAGRANK_FEATURES_DIR)
    assert analyses.baseline_means(version, ids) == pytest.approx(expected.astype(float), abs=1e-5)


def test_api_tag_summary_json_csv_and_field_errors(scored, manager, rater):
    project = scored["version"].project
    client = APIClient()
    url = f"/api/v1/projects/{project.slug}/tags/summary/"
    assert client.get(url).status_code == 401
    client.force_authenticate(manager)
    body = client.get(url, {"min_images": 4}).json()
    assert [row["tag"] for row in body["rows"]] == ["nature"]
    csv = client.get(url, {"format": "csv"})
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().strip().splitlines()
    assert lines[0].startswith("tag,images,ours,ours_low,ours_high") and len(lines) == 3
    fields = client.get(f"/api/v1/projects/{project.slug}/metadata/blur_sigma/summary/")
    assert fields.status_code == 200 and len(fields.json()["groups"]) == 3
    missing = client.get(f"/api/v1/projects/{project.slug}/metadata/nothing/summary/")
    assert missing.status_code == 404 and "blur_sigma, mixed, photo" in missing.json()["detail"]
    client.force_authenticate(rater)  # a rater is a member, not a manager: project panels are for managers
    assert client.get(url).status_code == 403


def test_metadata_page_draws_the_summary_as_the_site_s_svg_chart(scored, client, manager):
    """The panel's chart is the inline SVG of modeling/charts.py: one mark per group and series, nothing to run."""
    project = scored["version"].project
    put_features(scored["version"], scored["images"], ["bird", "nature", "rare"])
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/analyses/metadata/", {"field": "blur_sigma"})
    html = page.content.decode()
    figure = html[html.index('id="metadata-plot"'):html.index("</figure>")]

    assert page.status_code == 200 and '<svg class="chart" data-chart="metadata"' in figure
    assert "<script" not in figure and "<?xml" not in figure
    # Three blur values, each with a model, a human and a CLIP mean.
    for series in ("model", "human", "clip_similarity"):
        assert figure.count(f'<circle class="point" data-series="{series}"') == 3
    assert f"blur_sigma 2: model score {OURS[4:].mean():.3f} (95% CI" in figure  # images 4-6


def test_a_text_field_is_summarised_per_distinct_value(scored):
    """A generator name, a sampler: one group per value, most frequent first; numbers among texts are text."""
    project = scored["version"].project
    images = scored["images"]
    summary = analyses.metadata_summary(project, "mixed")
    human = mapped_human()
    assert summary["kind"] == "text" and summary["grouping"] == "distinct values"
    assert [(g["value"], g["images"]) for g in summary["groups"]] == [("x", 6), ("1", 1)]
    assert summary["groups"][0]["model"]["value"] == pytest.approx(OURS[1:].mean())
    assert summary["groups"][1]["human"]["value"] == pytest.approx(human[0])
    assert analyses.metadata_summary(project, "photo")["groups"][0]["images"] == len(images)


def test_a_text_field_with_many_values_pools_the_rarest():
    index, groups = analyses.group_texts([f"g{k % 25}" for k in range(100)] + ["g0"] * 5, max_distinct=5)
    assert [g["value"] for g in groups] == ["g0", "g1", "g10", "g11", analyses.OTHER_VALUES]
    assert groups[-1]["pooled_values"] == 21 and int((index == 4).sum()) == 105 - 9 - 3 * 4


def test_the_api_and_the_page_accept_a_text_field(scored, client, manager):
    project = scored["version"].project
    api = APIClient()
    api.force_authenticate(manager)
    fields = api.get(f"/api/v1/projects/{project.slug}/metadata/fields/").json()["fields"]
    assert {"field": "photo", "images": 7, "kind": "text"} in fields
    summary = api.get(f"/api/v1/projects/{project.slug}/metadata/mixed/summary/")
    assert summary.status_code == 200 and [g["value"] for g in summary.json()["groups"]] == ["x", "1"]
    client.force_login(manager)
    html = client.get(f"/projects/{project.slug}/analyses/metadata/", {"field": "mixed"}).content.decode()
    figure = html[html.index('id="metadata-plot"'):html.index("</figure>")]
    assert '<svg class="chart" data-chart="metadata"' in figure and ">x</text>" in figure
    assert "polyline" not in figure  # categories: points, no line
    table = html[html.index('id="metadata-table"'):]
    assert "<td>x</td><td>6</td>" in table


ALIGNMENT_RAW = np.array([3.0, -1.0, 0.5, 2.0, -2.0, 1.0])  # images 0-5; image 6 has no alignment score


@pytest.fixture
def two_criteria(scored):
    """The scored project asks two criteria; 'alignment' (secondary) has its own fitted scores."""
    project = scored["version"].project
    project.criteria = [{"key": "alignment", "question": "Which matches the prompt?"},
                        {"key": "overall", "question": "Which is better overall?"}]
    project.save(update_fields=["criteria"])
    CriterionScore.objects.bulk_create([
        CriterionScore(project=project, image=image, criterion="alignment", mean=float(m), variance=0.1,
                       fitted_at=timezone.now())
        for image, m in zip(scored["images"], ALIGNMENT_RAW)
    ])  # fmt: skip
    return scored


def mapped_alignment() -> np.ndarray:
    """The moment matching over the six images with both an alignment score and a model score."""
    ours = OURS[:6]
    return (ALIGNMENT_RAW - ALIGNMENT_RAW.mean()) / ALIGNMENT_RAW.std() * ours.std() + ours.mean()


def test_a_secondary_criterion_s_scores_fill_the_human_column(two_criteria):
    project = two_criteria["version"].project
    primary = analyses.tag_summary(project)
    chosen = analyses.tag_summary(project, criterion="alignment")
    assert primary["criterion"] == "overall" and chosen["criterion"] == "alignment"
    assert chosen["human_mapping"]["images"] == 6
    for row, primary_row in zip(chosen["rows"], primary["rows"]):
        at = {"bird": [0, 1, 2], "nature": [1, 2, 3, 4]}[row["tag"]]
        assert row["human"]["value"] == pytest.approx(mapped_alignment()[at].mean())
        assert primary_row["human"]["value"] == pytest.approx(mapped_human()[at].mean())
        assert row["ours"] == primary_row["ours"]  # the model's column does not depend on the criterion
    by_value = analyses.metadata_summary(project, "blur_sigma", criterion="alignment")
    assert by_value["criterion"] == "alignment"
    assert [g["human"]["value"] for g in by_value["groups"]] == pytest.approx(
        [mapped_alignment()[[0, 1]].mean(), mapped_alignment()[[2, 3]].mean(), mapped_alignment()[[4, 5]].mean()])
    assert by_value["groups"][2]["human"]["n"] == 2  # image 6 has no alignment score


def test_a_one_question_project_s_analyses_name_no_criterion(scored, manager):
    project = scored["version"].project
    assert "criterion" not in analyses.tag_summary(project)
    assert "criterion" not in analyses.metadata_summary(project, "blur_sigma")
    api = APIClient()
    api.force_authenticate(manager)
    refused = api.get(f"/api/v1/projects/{project.slug}/tags/summary/", {"criterion": "overall"})
    assert refused.status_code == 400 and "one question" in refused.json()["criterion"][0]


def test_the_api_and_the_pages_take_a_criterion(two_criteria, manager, client):
    project = two_criteria["version"].project
    api = APIClient()
    api.force_authenticate(manager)
    tags = f"/api/v1/projects/{project.slug}/tags/summary/"
    body = api.get(tags, {"criterion": "alignment"}).json()
    assert body["criterion"] == "alignment"
    assert body["rows"][0]["human"]["value"] == pytest.approx(mapped_alignment()[[0, 1, 2]].mean())
    assert api.get(tags, {"criterion": "overall"}).json() == api.get(tags).json()  # the primary, named or not
    csv = api.get(tags, {"criterion": "alignment", "format": "csv"})
    assert csv.status_code == 200 and 'filename="test-project-tags-alignment.csv"' in csv["Content-Disposition"]
    field = f"/api/v1/projects/{project.slug}/metadata/blur_sigma/summary/"
    assert api.get(field, {"criterion": "alignment"}).json()["criterion"] == "alignment"
    for url in (tags, field):
        unknown = api.get(url, {"criterion": "nope"})
        assert unknown.status_code == 400 and "alignment, overall" in unknown.json()["criterion"][0]

    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/analyses/tags/", {"criterion": "alignment"}).content.decode()
    assert '<option value="alignment" selected>' in page and "criterion=alignment" in page  # the CSV link
    assert 'id="human-criterion">alignment<' in page
    metadata_page = client.get(f"/projects/{project.slug}/analyses/metadata/",
                               {"field": "blur_sigma", "criterion": "alignment"}).content.decode()
    assert '<option value="alignment" selected>' in metadata_page
    for path in ("tags", "metadata"):
        assert client.get(f"/projects/{project.slug}/analyses/{path}/", {"criterion": "nope"}).status_code == 404
