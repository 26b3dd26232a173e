"""Several criteria per pair (``Project.criteria``): 2 to 4 questions, each with its own key and answer.

One lease serves all of them and one submit carries every answer (``submit_comparison(..., answers=)``). The
primary criterion's answer (key ``overall``, else the first) is the comparison's ``outcome``, so everything
that reads outcomes (the comparisons export, the primary human scores) reads it as before; every answer is a
``CriterionAnswer`` row, which the leaderboard, the preference export, the scores export, the agreement report
and the dashboard read per criterion (``?criterion=``; ``modeling/services/criterion_scores.py``), and the model
trains on the criterion its training settings name. A project without criteria asks its one question and
answers exactly as before.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError

from labeling.models import CRITERION_KEY_VALIDATOR, MAX_CRITERIA, CriterionAnswer, Project, primary_criterion


def validate_criteria(value) -> list[dict]:
    """The criteria as stored, or ValueError saying what is wrong. An empty list: one question."""
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError('Criteria are a list of {"key": ..., "question": ...} objects.')
    if len(value) == 1 or len(value) > MAX_CRITERIA:
        raise ValueError(f"A project asks 2 to {MAX_CRITERIA} criteria (or none: its question alone).")
    cleaned, keys = [], set()
    for item in value:
        key, question = str(item.get("key", "")).strip(), str(item.get("question", "")).strip()
        try:
            CRITERION_KEY_VALIDATOR(key)
        except ValidationError:
            raise ValueError(f"{key!r} is not a criterion key: a-z first, then a-z, digits or _ (40 at most).") from None
        if key in keys:
            raise ValueError(f"The criterion key {key!r} is used twice.")
        if not question or len(question) > 500:
            raise ValueError(f"The criterion {key!r} needs a question of 1 to 500 characters.")
        keys.add(key)
        cleaned.append({"key": key, "question": question})
    return cleaned


def parse_criteria_lines(text: str) -> list[dict]:
    """The form's text: one criterion a line, ``key: question``."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise ValueError(f"Line {number}: write key: question, e.g. alignment: Which matches the prompt better?")
        key, question = line.split(":", 1)
        items.append({"key": key.strip(), "question": question.strip()})
    return validate_criteria(items)


def criteria_lines(criteria: list[dict]) -> str:
    return "\n".join(f"{item['key']}: {item['question']}" for item in criteria)


def checked_answers(project: Project, answers: dict | None) -> dict[str, str] | None:
    """The answers of one submit, checked against the project's criteria (None for a one-question project).
    Raises ValueError naming what is missing, extra or not allowed."""
    keys = [item["key"] for item in project.criteria or []]
    if not keys:
        if answers:
            raise ValueError("This project asks one question: send winner, not answers.")
        return None
    if not isinstance(answers, dict) or set(answers) != set(keys):
        raise ValueError(f"Send one answer for each criterion: {', '.join(keys)}.")
    for key, outcome in answers.items():
        if outcome not in ("a", "b", "tie", "bad"):
            raise ValueError(f"The answer to {key!r} must be a, b, tie or bad.")
        if outcome == "tie" and not project.allow_ties:
            raise ValueError("This project does not allow ties.")
        if outcome == "bad" and not project.allow_both_bad:
            raise ValueError("This project does not allow 'both bad'.")
    return {key: answers[key] for key in keys}


def store_answers(comparison_id: int, answers: dict[str, str]) -> None:
    CriterionAnswer.objects.bulk_create(
        [CriterionAnswer(comparison_id=comparison_id, criterion=key, outcome=outcome) for key, outcome in answers.items()]
    )


def primary(project: Project) -> str | None:
    return primary_criterion(project.criteria or [])


def answers_of(comparison_ids, criterion: str) -> dict[int, str]:
    """{comparison id: the answer to ``criterion``} for the given comparisons."""
    return dict(
        CriterionAnswer.objects.filter(comparison_id__in=list(comparison_ids), criterion=criterion)
        .values_list("comparison_id", "outcome")
    )
