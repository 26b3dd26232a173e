"""The scores export (``GET /api/v1/projects/<slug>/scores/``): one row per image, streamed as CSV or
JSON Lines in constant memory.

Rows are read in keyset-paginated chunks (``id > last`` ordered by id, ``values_list``), each chunk one
joined query for the image, its score under the chosen model version, its human score and its
comparison count, plus one query for the chunk's tags. Nothing holds more than one chunk, so the
export of 10^5 or 10^7 images needs the same memory, and no long-running cursor or transaction is
kept open while a slow client reads.
"""
from __future__ import annotations

import io
import json
from typing import Iterator

from django.db.models import FilteredRelation, Q, TextField
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.limits import MAX_ID
from core.api_errors import ErrorSerializer
from core import spreadsheet_safety
from core.streaming import Column
from core.streaming import iter_parquet as parquet_rows
from labeling.project_scope import ProjectScopedMixin

from labeling.models import SCORE_BINS, Image, ImageTag, Project
from modeling.models import ModelVersion

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


def score_chunks(project: Project, model_version_id: int | None, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple]:
    """Yield (rows, tags by image id) for consecutive chunks of the project's images, in id order."""

    def chunk(last_id: int):
        # Every joined table is bounded by ``image_id > last_id`` too: without it PostgreSQL merge-joins
        # each chunk from the first row of the score tables, and the export grows quadratically.
        images = Image.objects.filter(project=project, id__gt=last_id).annotate(
            human=FilteredRelation("human_score", condition=Q(human_score__image_id__gt=last_id)),
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


def _time(value) -> str | None:
    """ISO 8601, as the other exports write times."""
    return None if value is None else value.isoformat()


def iter_csv(project: Project, model_version_id: int | None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = spreadsheet_safety.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for rows, tags in score_chunks(project, model_version_id):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(
            [
                row[_ID], row[_EXTERNAL_ID], row[_NAME], TAG_SEPARATOR.join(tags.get(row[_ID], ())), row[_MEAN],
                *_distribution(row[_DISTRIBUTION]), row[_UNCERTAINTY], row[_HUMAN], row[_HUMAN_VARIANCE],
                _time(row[_FITTED]), _count(row[_COUNT]), model_version_id if row[_MEAN] is not None else None,
                row[_CAPTION], row[_METADATA], row[_REFERENCE],
            ]
            for row in rows
        )
        yield buffer.getvalue()


def iter_jsonl(project: Project, model_version_id: int | None) -> Iterator[str]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for rows, tags in score_chunks(project, model_version_id):
        lines = []
        for row in rows:
            distribution = json.loads(row[_DISTRIBUTION]) if row[_DISTRIBUTION] else None
            lines.append(
                dumps(
                    {
                        "image_id": row[_ID],
                        "external_id": row[_EXTERNAL_ID],
                        "file_name": row[_NAME],
                        "tags": tags.get(row[_ID], []),
                        "model_mean": row[_MEAN],
                        "distribution": distribution,
                        "uncertainty": row[_UNCERTAINTY],
                        "human_score": row[_HUMAN],
                        "human_score_variance": row[_HUMAN_VARIANCE],
                        "human_score_fitted_at": _time(row[_FITTED]),
                        "comparison_count": _count(row[_COUNT]),
                        "model_version": model_version_id if row[_MEAN] is not None else None,
                        "caption": row[_CAPTION],
                        "metadata": json.loads(row[_METADATA]) if row[_METADATA] else {},
                        "reference_mean": row[_REFERENCE],
                    }
                )
            )
        lines.append("")
        yield "\n".join(lines)


def iter_parquet(project: Project, model_version_id: int | None) -> Iterator[bytes]:
    """The scores as Parquet, one row group per chunk; the columns of the JSONL export."""
    columns = [
        Column("image_id", "int"), Column("external_id"), Column("file_name"), Column("tags", "json"),
        Column("model_mean", "float"), Column("distribution", "json"), Column("uncertainty", "float"),
        Column("human_score", "float"), Column("human_score_variance", "float"),
        Column("human_score_fitted_at", "time"), Column("comparison_count", "int"),
        Column("model_version", "int"), Column("caption"), Column("metadata", "json"), Column("reference_mean", "float"),
    ]

    def chunks():
        for rows, tags in score_chunks(project, model_version_id):
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

    return parquet_rows(columns, chunks())


# --- Files, for the purge command (modeling/management/commands/purge_project.py) -------------------

COMPARISON_COLUMNS = [
    "id", "created_at", "rater", "image_a", "image_b", "image_a_file", "image_b_file", "outcome",
    "response_ms", "is_gold", "gold_correct", "client_key",
]


def iter_comparisons_csv(project: Project) -> Iterator[str]:
    """Every comparison of the project, oldest first, in chunks (keyset by id, like the scores)."""
    from labeling.models import Comparison

    buffer = io.StringIO()
    writer = spreadsheet_safety.writer(buffer, lineterminator="\n")
    writer.writerow(COMPARISON_COLUMNS)
    yield buffer.getvalue()
    last_id = 0
    while True:
        rows = list(
            Comparison.objects.filter(project=project, id__gt=last_id).order_by("id").values_list(
                "id", "created_at", "rater__username", "image_a_id", "image_b_id", "image_a__original_name",
                "image_b__original_name", "outcome", "response_ms", "is_gold", "gold_correct", "client_key",
            )[:CHUNK_SIZE]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([row[0], row[1].isoformat(), *row[2:]] for row in rows)
        yield buffer.getvalue()


def write_export(chunks: Iterator[str], path) -> int:
    """Write an export's chunks to ``path``; returns the bytes written."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            written += handle.write(chunk)
    return written


# --- The view ----------------------------------------------------------------------------------


class _StreamRenderer(BaseRenderer):
    """Lets ``?format=csv|jsonl`` pass DRF's content negotiation; errors still render as JSON."""

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, renderer_context=renderer_context)


class CSVRenderer(_StreamRenderer):
    media_type = "text/csv"
    format = "csv"


class JSONLinesRenderer(_StreamRenderer):
    media_type = "application/jsonl"
    format = "jsonl"


class ParquetRenderer(_StreamRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"


class ScoresExportView(ProjectScopedMixin, APIView):
    renderer_classes = [CSVRenderer, JSONLinesRenderer, ParquetRenderer, JSONRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            # An error is JSON whatever format was asked for, and says so in its Content-Type.
            response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "jsonl", "parquet"], description="csv (default), jsonl or parquet."),
            OpenApiParameter("model_version", int, description="A model version id; default: the active one."),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per image."),
            (200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR, description="One JSON object per image."),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="Parquet."),
            (400, "application/json"): ErrorSerializer,
            (401, "application/json"): ErrorSerializer,
            (403, "application/json"): ErrorSerializer,
            (404, "application/json"): ErrorSerializer,
        },
        tags=["export"],
    )
    def get(self, request, slug):
        """Every image with its model score (10-bin distribution, uncertainty), human score and comparison
        count, streamed. Uses the project's active model version unless ``model_version`` is given."""
        self.require_export()
        output = request.query_params.get("format") or "csv"
        if output not in ("csv", "jsonl", "parquet"):
            raise ValidationError({"format": ["csv, jsonl or parquet."]})
        raw_version = request.query_params.get("model_version")
        if raw_version:
            try:
                version_id = int(raw_version)
            except ValueError:
                raise ValidationError({"model_version": ["A model version id (a whole number)."]}) from None
            if not 0 < version_id <= MAX_ID:
                raise NotFound(f"Model version {version_id} is not a version of this project.")
            if not ModelVersion.objects.filter(project=self.project, pk=version_id).exists():
                raise NotFound(f"Model version {version_id} is not a version of this project.")
        else:
            version_id = (
                ModelVersion.objects.filter(project=self.project, is_active=True).values_list("pk", flat=True).first()
            )
        if output == "csv":
            response = StreamingHttpResponse(iter_csv(self.project, version_id), content_type="text/csv; charset=utf-8")
        elif output == "jsonl":
            response = StreamingHttpResponse(
                iter_jsonl(self.project, version_id), content_type="application/jsonl; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(
                iter_parquet(self.project, version_id), content_type="application/vnd.apache.parquet"
            )
        name = f"{self.project.slug}-scores" + (f"-v{version_id}" if version_id else "")
        response["Content-Disposition"] = f'attachment; filename="{name}.{output}"'
        response["X-Model-Version"] = str(version_id or "")
        return response

