"""The rows of modeling's exports, for ``core.streaming``: the API streams them (``modeling/api/export.py``,
``modeling/api/version_exports.py``), the purge writes them to files (``modeling/services/purge.py``).

The scores: one row per image, with its model score under a chosen version, its human score, its comparison
count and its tags. The model versions: one row per version with its status, training data and metrics.

Rows are read in keyset-paginated chunks (``id > last`` ordered by id, ``values_list``), each chunk one
joined query for the image, its score under the chosen model version, its human score and its
comparison count, plus one query for the chunk's tags. Nothing holds more than one chunk, so the
export of 10^5 or 10^7 images needs the same memory, and no long-running cursor or transaction is
kept open while a slow client reads.
"""
from __future__ import annotations

import json
from typing import Iterator

from django.db.models import FilteredRelation, Q, TextField
from django.db.models.functions import Cast

from core import pg_export, streaming
from core.streaming import Column, keyset_chunks
from labeling.models import SCORE_BINS, Image, ImageStats, ImageTag, Project, ReferenceRating, Tag
from modeling.models import CriterionScore, HumanScore, ImageScore, ModelVersion

CHUNK_SIZE = 2000

DISTRIBUTION_COLUMNS = [f"p{score}" for score in range(1, SCORE_BINS + 1)]
CSV_COLUMNS = (
    ["image_id", "external_id", "file_name", "tags", "model_mean"]
    + DISTRIBUTION_COLUMNS
    + ["uncertainty", "human_score", "human_score_variance", "human_score_fitted_at", "comparison_count"]
    + ["model_version", "caption", "metadata", "reference_mean"]
)
TAG_SEPARATOR = ";"  # what `import_images --tags` reads back

# values_list positions
_ID, _EXTERNAL_ID, _NAME, _MEAN, _DISTRIBUTION, _UNCERTAINTY, _HUMAN, _HUMAN_VARIANCE, _COUNT = range(9)
_CAPTION, _METADATA, _REFERENCE, _FITTED = range(9, 13)


def score_chunks(project: Project, model_version_id: int | None, chunk_size: int = CHUNK_SIZE,
                 criterion: str | None = None) -> Iterator[tuple]:
    """Yield (rows, tags by image id) for consecutive chunks of the project's images, in id order. The human
    score is the primary criterion's (``HumanScore``), or a secondary ``criterion``'s (``CriterionScore``)."""

    def human_relation(last_id: int) -> FilteredRelation:
        if criterion is None:
            return FilteredRelation("human_score", condition=Q(human_score__image_id__gt=last_id))
        return FilteredRelation("criterion_scores", condition=Q(criterion_scores__criterion=criterion,
                                                                criterion_scores__image_id__gt=last_id))

    def chunk(last_id: int):
        # Every joined table is bounded by ``image_id > last_id`` too: without it PostgreSQL merge-joins
        # each chunk from the first row of the score tables, and the export grows quadratically.
        images = Image.objects.filter(project=project, id__gt=last_id).annotate(
            human=human_relation(last_id),
            counters=FilteredRelation("stats", condition=Q(stats__image_id__gt=last_id)),
            reference=FilteredRelation("reference_rating", condition=Q(reference_rating__image_id__gt=last_id)),
            metadata_text=Cast("metadata", output_field=TextField()),
        )
        fields = ["id", "external_id", "original_name"]
        if model_version_id is not None:
            images = images.annotate(
                score=FilteredRelation(
                    "scores", condition=Q(scores__model_version_id=model_version_id, scores__image_id__gt=last_id)
                ),
                distribution_text=Cast("score__distribution", output_field=TextField()),
            )
            fields += ["score__mean", "distribution_text", "score__uncertainty"]
        fields += ["human__mean", "human__variance", "counters__comparison_count"]
        fields += ["caption", "metadata_text", "reference__mean", "human__fitted_at"]
        rows = list(images.order_by("id").values_list(*fields)[:chunk_size])
        if model_version_id is None:
            rows = [row[:3] + (None, None, None) + row[3:] for row in rows]
        return rows

    last_id = 0
    while True:
        rows = chunk(last_id)
        if not rows:
            return
        last_id = rows[-1][_ID]
        tags: dict[int, list[str]] = {}
        # By id range only, on the image_id index: joining the images to filter by project made PostgreSQL
        # scan every image per chunk. Another project's images inside the range are fetched and ignored.
        for image_id, name in (
            ImageTag.objects.filter(image_id__gte=rows[0][_ID], image_id__lte=last_id)
            .order_by("image_id", "tag__name")
            .values_list("image_id", "tag__name")
        ):
            tags.setdefault(image_id, []).append(name)
        yield rows, tags


def _distribution(text: str | None) -> list[str]:
    """The ten probabilities as text, straight from the stored JSON array (no float round trip)."""
    if not text:
        return [""] * SCORE_BINS
    values = [value.strip() for value in text.strip()[1:-1].split(",")]
    return (values + [""] * SCORE_BINS)[:SCORE_BINS]


def _count(value) -> int:
    return value or 0


def active_version_id(project: Project) -> int | None:
    """The project's active model version, whose scores an export shows by default (None: no version yet)."""
    return ModelVersion.objects.filter(project=project, is_active=True).values_list("pk", flat=True).first()


def _time(value) -> str | None:
    """ISO 8601, as the other exports write times."""
    return None if value is None else value.isoformat()


# CSV: the distribution as ten columns of the stored text, tags joined, times as text; every cell is written as is.
CSV_OUTPUT_COLUMNS = [Column(name) for name in CSV_COLUMNS]


def csv_chunks(project: Project, model_version_id: int | None, criterion: str | None = None
               ) -> Iterator[list[tuple]]:
    """The rows of ``CSV_COLUMNS``, one list per chunk."""
    for rows, tags in score_chunks(project, model_version_id, criterion=criterion):
        yield [
            (
                row[_ID], row[_EXTERNAL_ID], row[_NAME], TAG_SEPARATOR.join(tags.get(row[_ID], ())), row[_MEAN],
                *_distribution(row[_DISTRIBUTION]), row[_UNCERTAINTY], row[_HUMAN], row[_HUMAN_VARIANCE],
                _time(row[_FITTED]), _count(row[_COUNT]), model_version_id if row[_MEAN] is not None else None,
                row[_CAPTION], row[_METADATA], row[_REFERENCE],
            )
            for row in rows
        ]


def csv_query(project: Project, model_version_id: int | None, criterion: str | None = None) -> pg_export.Query:
    """``csv_chunks`` as SQL, for PostgreSQL's fast path (``core.pg_export``): the same columns and cells.
    Every joined table is bounded by the range's image ids, as in ``score_chunks``."""
    def bounded(column: str) -> str:
        return f"{column} > %(after)s AND {column} <= %(upto)s"

    # The distribution's cells are number text as stored (as ``_distribution`` splits it): written as they are,
    # each taken from the JSON array by position (a tenth of the time of splitting its text).
    kinds = {**{name: "int" for name in DISTRIBUTION_COLUMNS}, "image_id": "int", "model_mean": "float", "uncertainty": "float", "human_score": "float",
             "human_score_variance": "float", "human_score_fitted_at": "time", "comparison_count": "int",
             "model_version": "int", "reference_mean": "float", "metadata": "json"}
    scored = model_version_id is not None
    expressions = [
        "i.id", "i.external_id", "i.original_name", "tg.names", "s.mean" if scored else "NULL::float8",
        *[f"(s.distribution->>{index})" if scored else "NULL::text" for index in range(SCORE_BINS)],
        "s.uncertainty" if scored else "NULL::float8", "h.mean", "h.variance", "h.fitted_at",
        "COALESCE(st.comparison_count, 0)", "CASE WHEN s.mean IS NOT NULL THEN %(version)s END" if scored else "NULL::int",
        "i.caption", "i.metadata::text", "r.mean",
    ]
    human_table = (HumanScore if criterion is None else CriterionScore)._meta.db_table
    human_filter = "" if criterion is None else " AND h.criterion = %(criterion)s"
    score_join = (f"LEFT JOIN {ImageScore._meta.db_table} s ON s.image_id = i.id AND s.model_version_id = %(version)s "
                  f"AND {bounded('s.image_id')} " if scored else "")
    return pg_export.Query(
        columns=[Column(name, kinds.get(name, "str")) for name in CSV_COLUMNS],
        expressions=expressions,
        source=(
            f"FROM {Image._meta.db_table} i {score_join}"
            f"LEFT JOIN {human_table} h ON h.image_id = i.id AND {bounded('h.image_id')}{human_filter} "
            f"LEFT JOIN {ImageStats._meta.db_table} st ON st.image_id = i.id AND {bounded('st.image_id')} "
            f"LEFT JOIN {ReferenceRating._meta.db_table} r ON r.image_id = i.id AND {bounded('r.image_id')} "
            # The tags sorted once for the range, then joined in that order: an ORDER BY inside string_agg
            # sorts each image's tags on its own (PostgreSQL 15), a third of the export's time. An aggregate
            # takes its rows in the order given unless it runs in parallel, which the range settings turn off.
            f"LEFT JOIN (SELECT x.image_id, string_agg(x.name, '{TAG_SEPARATOR}') AS names FROM (SELECT it.image_id, "
            f"t.name FROM {ImageTag._meta.db_table} it JOIN {Tag._meta.db_table} t ON t.id = it.tag_id "
            f"WHERE {bounded('it.image_id')} ORDER BY it.image_id, t.name) x GROUP BY x.image_id) tg "
            "ON tg.image_id = i.id "
            "WHERE i.project_id = %(project)s"
        ),
        key="i.id",
        key_source=f"FROM {Image._meta.db_table} i WHERE i.project_id = %(project)s",
        params={"project": project.pk, "version": model_version_id, "criterion": criterion},
    )


def export_pieces(output: str, project: Project, model_version_id: int | None, criterion: str | None = None):
    """The scores export's pieces in ``output``: the CSV rendered by PostgreSQL there, else ``core.streaming``'s."""
    if output == "csv" and pg_export.available():
        return pg_export.iter_csv(csv_query(project, model_version_id, criterion))
    return streaming.WRITERS[output](*export_rows(output, project, model_version_id, criterion))


# JSON Lines and Parquet: tags, distribution and metadata as nested values.
RECORD_COLUMNS = [
    Column("image_id", "int"), Column("external_id"), Column("file_name"), Column("tags", "json"),
    Column("model_mean", "float"), Column("distribution", "json"), Column("uncertainty", "float"),
    Column("human_score", "float"), Column("human_score_variance", "float"),
    Column("human_score_fitted_at", "time"), Column("comparison_count", "int"),
    Column("model_version", "int"), Column("caption"), Column("metadata", "json"), Column("reference_mean", "float"),
]


def record_chunks(project: Project, model_version_id: int | None, criterion: str | None = None
                  ) -> Iterator[list[tuple]]:
    """The rows of ``RECORD_COLUMNS``, one list per chunk."""
    for rows, tags in score_chunks(project, model_version_id, criterion=criterion):
        yield [
            (
                row[_ID], row[_EXTERNAL_ID], row[_NAME], tags.get(row[_ID], []), row[_MEAN],
                json.loads(row[_DISTRIBUTION]) if row[_DISTRIBUTION] else None, row[_UNCERTAINTY], row[_HUMAN],
                row[_HUMAN_VARIANCE], row[_FITTED], _count(row[_COUNT]),
                model_version_id if row[_MEAN] is not None else None,
                row[_CAPTION], json.loads(row[_METADATA]) if row[_METADATA] else {}, row[_REFERENCE],
            )
            for row in rows
        ]


def export_rows(output: str, project: Project, model_version_id: int | None, criterion: str | None = None
                ) -> tuple[list[Column], Iterator]:
    """The columns and chunks of the scores export in ``output`` (csv, jsonl or parquet) for ``core.streaming``;
    ``criterion``: a secondary criterion whose human scores fill the human_score columns (None: the primary)."""
    if output == "csv":
        return CSV_OUTPUT_COLUMNS, csv_chunks(project, model_version_id, criterion)
    return RECORD_COLUMNS, record_chunks(project, model_version_id, criterion)


# --- The model versions ------------------------------------------------------------------------------

MODEL_VERSION_COLUMNS = [
    Column("model_version", "int"), Column("created_at", "time"), Column("status"), Column("is_active", "bool"),
    Column("activated_at", "time"), Column("encoder_id"), Column("n_comparisons", "int"),
    Column("last_comparison_id", "int"), Column("training_seconds", "float"), Column("status_reason"),
    Column("trained_by"), Column("metrics", "json"), Column("config", "json"),
]
_MODEL_VERSION_FIELDS = [
    "id", "created_at", "status", "is_active", "activated_at", "encoder_id", "n_comparisons", "last_comparison_id",
    "training_seconds", "status_reason", "trained_by__username", "metrics", "config",
]


def model_version_chunks(project: Project):
    return keyset_chunks(ModelVersion.objects.filter(project=project), _MODEL_VERSION_FIELDS)
