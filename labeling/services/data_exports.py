"""The rows of a project's raw-data exports (comparisons, image tags, raters) for ``core.streaming``: the API
streams them (``labeling/api/data_exports.py``) and the purge writes them to files. Columns are listed in
docs/exports.md.
"""
from __future__ import annotations

from typing import Iterator

from django.db.models import Avg, Count, IntegerField, Max, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce

from django.contrib.auth import get_user_model

from core import pg_export, streaming
from core.streaming import Column, keyset_chunks, mapped
from labeling.models import Comparison, CriterionAnswer, Image, ImageTag, Membership, PairLease, Project

COMPARISON_COLUMNS = [
    Column("comparison_id", "int"),
    Column("image_a_id", "int"), Column("image_a_external_id"), Column("image_a_file_name"),
    Column("image_b_id", "int"), Column("image_b_external_id"), Column("image_b_file_name"),
    Column("outcome"), Column("winner_image_id", "int"),
    Column("rater_id", "int"), Column("rater"),
    Column("created_at", "time"), Column("response_ms", "int"), Column("client_key"),
    Column("lease"), Column("lease_created_at", "time"), Column("lease_expires_at", "time"),
    Column("is_gold", "bool"), Column("gold_pair_id", "int"), Column("gold_correct", "bool"),
]
_COMPARISON_FIELDS = [
    "id", "image_a_id", "image_a__external_id", "image_a__original_name",
    "image_b_id", "image_b__external_id", "image_b__original_name", "outcome",
    "rater_id", "rater__username", "created_at", "response_ms", "client_key",
    "lease__token", "lease__created_at", "lease__expires_at", "is_gold", "lease__gold_id", "gold_correct",
]

IMAGE_TAG_COLUMNS = [
    Column("image_tag_id", "int"), Column("image_id", "int"), Column("external_id"), Column("file_name"),
    Column("tag"), Column("source"), Column("rater_id", "int"), Column("rater"), Column("created_at", "time"),
]
_IMAGE_TAG_FIELDS = [
    "id", "image_id", "image__external_id", "image__original_name", "tag__name", "source", "rater_id",
    "rater__username", "created_at",
]

RATER_COLUMNS = [
    Column("user_id", "int"), Column("rater"), Column("role"), Column("is_active", "bool"),
    Column("excluded_from_training", "bool"), Column("joined_at", "time"),
    Column("comparisons", "int"), Column("ties", "int"), Column("tie_rate", "float"),
    Column("mean_response_ms", "float"), Column("first_comparison_at", "time"), Column("last_comparison_at", "time"),
    Column("gold_judged", "int"), Column("gold_correct", "int"), Column("gold_accuracy", "float"),
    Column("skipped", "int"), Column("tags_added", "int"),
]


def active_model_version_id(project: Project) -> int | None:
    # Through the reverse relation: labeling does not import modeling.
    return project.model_versions.filter(is_active=True).values_list("pk", flat=True).first()


def criterion_keys(project: Project) -> list[str]:
    return [item["key"] for item in project.criteria or []]


def comparison_columns(project: Project) -> list[Column]:
    """The comparisons export's columns: ``COMPARISON_COLUMNS``, then, in a project with several criteria, one
    ``answer_<key>`` per criterion in the project's order (a, b, tie or bad; empty where the judgment has no
    answer to it, e.g. one made before the criterion was added). A one-question project: the columns alone."""
    return COMPARISON_COLUMNS + answer_columns(project)


def answer_columns(project: Project) -> list[Column]:
    """One ``answer_<key>`` column per criterion, in the project's order; none in a one-question project."""
    return [Column(f"answer_{key}") for key in criterion_keys(project)]


def comparison_chunks(project: Project) -> Iterator[list[tuple]]:
    """Every comparison of the project with its images, rater, lease, gold outcome and (several criteria) its
    answers, in id order."""
    rows = keyset_chunks(Comparison.objects.filter(project=project), _COMPARISON_FIELDS)

    def row(v):
        winner = v[1] if v[7] == Comparison.Outcome.A else v[4] if v[7] == Comparison.Outcome.B else None
        token = str(v[13]) if v[13] is not None else None
        return (*v[:8], winner, *v[8:13], token, *v[14:])

    return with_answers(mapped(rows, row), project)


def with_answers(chunks: Iterator[list[tuple]], project: Project) -> Iterator[list[tuple]]:
    """Chunks of comparison rows (the comparison's id first, in id order) with the ``answer_columns`` values
    appended; the chunks unchanged in a one-question project. The comparisons export and the purge's archive."""
    keys = criterion_keys(project)
    return _answered(chunks, project.pk, keys) if keys else chunks


def _answered(chunks: Iterator[list[tuple]], chunk_project: int, keys: list[str]) -> Iterator[list[tuple]]:
    """Each row with its answers to ``keys`` appended: one query per chunk, over the chunk's range of ids."""
    for chunk in chunks:
        answers = CriterionAnswer.objects.filter(
            comparison__project_id=chunk_project, comparison_id__gte=chunk[0][0], comparison_id__lte=chunk[-1][0],
            criterion__in=keys,
        ).values_list("comparison_id", "criterion", "outcome")
        given = {(comparison_id, criterion): outcome for comparison_id, criterion, outcome in answers}
        yield [(*row, *(given.get((row[0], key)) for key in keys)) for row in chunk]


def comparison_query(project: Project) -> pg_export.Query:
    """``comparison_chunks`` as SQL, for PostgreSQL's fast path (``core.pg_export``): the same columns and rows."""
    keys = criterion_keys(project)
    # One look-up per answer, on the (comparison, criterion) unique index.
    answers = [
        f"(SELECT ca.outcome FROM {CriterionAnswer._meta.db_table} ca WHERE ca.comparison_id = c.id "
        f"AND ca.criterion = %(criterion_{index})s)"
        for index in range(len(keys))
    ]
    return pg_export.Query(
        columns=comparison_columns(project),
        expressions=[
            "c.id", "c.image_a_id", "a.external_id", "a.original_name", "c.image_b_id", "b.external_id",
            "b.original_name", "c.outcome",
            "CASE c.outcome WHEN 'a' THEN c.image_a_id WHEN 'b' THEN c.image_b_id END",
            "c.rater_id", "u.username", "c.created_at", "c.response_ms", "c.client_key", "l.token::text",
            "l.created_at", "l.expires_at", "c.is_gold", "l.gold_id", "c.gold_correct", *answers,
        ],
        source=(
            f"FROM {Comparison._meta.db_table} c JOIN {Image._meta.db_table} a ON a.id = c.image_a_id "
            f"JOIN {Image._meta.db_table} b ON b.id = c.image_b_id JOIN {get_user_model()._meta.db_table} u "
            f"ON u.id = c.rater_id LEFT JOIN {PairLease._meta.db_table} l ON l.comparison_id = c.id "
            "WHERE c.project_id = %(project)s"
        ),
        key="c.id",
        key_source=f"FROM {Comparison._meta.db_table} c WHERE c.project_id = %(project)s",
        params={"project": project.pk, **{f"criterion_{index}": key for index, key in enumerate(keys)}},
        lookups=True,  # the images, raters and leases are not bounded by the range of comparison ids
    )


def comparison_export(project: Project, output: str):
    """The comparisons export's pieces in ``output``: rendered by PostgreSQL there, else ``core.streaming``'s."""
    if pg_export.available():
        return pg_export.WRITERS[output](comparison_query(project))
    return streaming.WRITERS[output](comparison_columns(project), comparison_chunks(project))


def image_tag_chunks(project: Project):
    """Every tag on every image of the project, with who or what added it, in id order."""
    return keyset_chunks(ImageTag.objects.filter(image__project=project), _IMAGE_TAG_FIELDS)


def _count(model, *, user_field: str, **filters):
    rows = model.objects.filter(**{user_field: OuterRef("user_id")}, **filters).order_by().values(user_field)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), 0)


def rater_chunks(project: Project):
    """One row per member of the project (active or not) with their judging statistics."""
    mine = Comparison.objects.filter(project=project, rater_id=OuterRef("user_id")).order_by().values("rater_id")

    def aggregate(expression, output_field=None):
        return Subquery(mine.annotate(v=expression).values("v")[:1], output_field=output_field)

    members = Membership.objects.filter(project=project).annotate(
        n_comparisons=_count(Comparison, user_field="rater_id", project=project),
        n_ties=_count(Comparison, user_field="rater_id", project=project, outcome=Comparison.Outcome.TIE),
        mean_ms=aggregate(Avg("response_ms")),
        first_at=aggregate(Min("created_at")),
        last_at=aggregate(Max("created_at")),
        n_gold=_count(Comparison, user_field="rater_id", project=project, is_gold=True),
        n_gold_correct=_count(Comparison, user_field="rater_id", project=project, is_gold=True, gold_correct=True),
        n_skipped=_count(PairLease, user_field="rater_id", project=project, state=PairLease.State.SKIPPED),
        n_tags=_count(ImageTag, user_field="rater_id", image__project=project, source=ImageTag.Source.RATER),
    )
    fields = [
        "id", "user_id", "user__username", "role", "is_active", "excluded_from_training", "joined_at",
        "n_comparisons", "n_ties", "mean_ms", "first_at", "last_at", "n_gold", "n_gold_correct", "n_skipped",
        "n_tags",
    ]

    def row(v):
        (_, user_id, name, role, active, excluded, joined, n, ties, mean_ms, first, last, gold, correct, skipped,
         tags) = v
        return (
            user_id, name, role, active, excluded, joined, n, ties, ties / n if n else None,
            float(mean_ms) if mean_ms is not None else None, first, last, gold, correct,
            correct / gold if gold else None, skipped, tags,
        )

    return mapped(keyset_chunks(members, fields), row)


# The comparisons export's columns depend on the project (its criteria): ``comparison_export``.
EXPORTS = {
    "image-tags": (IMAGE_TAG_COLUMNS, image_tag_chunks),
    "raters": (RATER_COLUMNS, rater_chunks),
}
