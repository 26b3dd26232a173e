"""The leaderboard page (managers): which value of a categorical field wins, human and model side by side.

Numbers from ``modeling.services.leaderboard``; this module picks the field and draws the interval plot.
"""
from __future__ import annotations

from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.http import require_safe

from labeling.project_scope import manager_page
from modeling.dashboard_views import page_criterion
from modeling.services import leaderboard

ROW_HEIGHT, LEFT, WIDTH = 28, 160, 640


def interval_plot_svg(rows: list[dict]) -> str:
    """A forest plot: each value's human rating (blue) and model rating (orange) with their intervals."""
    bounds = [row[key] for row in rows for key in ("human_low", "human_high", "model_low", "model_high")
              if row[key] is not None]
    if not bounds:
        return ""
    low, high = min(bounds + [0.0]), max(bounds + [0.0])
    span = (high - low) or 1.0

    def x(value: float) -> float:
        return LEFT + (value - low) / span * (WIDTH - LEFT - 20)

    height = ROW_HEIGHT * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="Ratings with intervals">',
             f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height - 20}" stroke="#bbb" stroke-dasharray="3,3"/>']
    for index, row in enumerate(rows):
        y = ROW_HEIGHT * index + 18
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end" font-size="13">{escape(row["value"])}</text>')
        for source, colour, shift in (("human", "#2f5d9e", -5), ("model", "#d9822b", 5)):
            if row[f"{source}_rating"] is None:
                continue
            parts.append(f'<line x1="{x(row[f"{source}_low"]):.1f}" y1="{y + shift}" x2="{x(row[f"{source}_high"]):.1f}" '
                         f'y2="{y + shift}" stroke="{colour}" stroke-width="2"/>')
            parts.append(f'<circle cx="{x(row[f"{source}_rating"]):.1f}" cy="{y + shift}" r="4" fill="{colour}"/>')
    parts.append(f'<text x="{x(low):.1f}" y="{height - 4}" font-size="11">{low:.2f}</text>')
    parts.append(f'<text x="{x(high):.1f}" y="{height - 4}" font-size="11" text-anchor="end">{high:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


@manager_page(require_safe)
def leaderboard_page(request, project):
    fields = leaderboard.candidate_fields(project)
    field = request.GET.get("field") or ("generator" if "generator" in fields else (fields[0] if fields else None))
    criterion = page_criterion(request, project)  # 404 for a key the project does not ask
    context = {"project": project, "fields": fields, "field": field, "problem": None, "rows": None,
               "criteria": project.criteria or [], "criterion": criterion}
    if field:
        try:
            result = leaderboard.field_leaderboard(project, field, criterion=criterion)
        except leaderboard.LeaderboardUnavailable as exc:
            context["problem"] = str(exc)
        else:
            rows = leaderboard.board_rows(result)
            context.update({
                "result": result, "rows": rows, "svg": interval_plot_svg(rows),
                "human_matrix": _matrix(result.human, result.values, rows),
                "model_matrix": _matrix(result.model, result.values, rows),
                "level_percent": round(100 * (result.human or result.model).level) if (result.human or result.model) else 95,
            })
    return render(request, "modeling/leaderboard.html", context)


def _matrix(board, values: list[str], rows: list[dict]) -> list[dict] | None:
    """The win-rate matrix in the leaderboard's order: row value's share of wins against each column value."""
    if board is None:
        return None
    order = [values.index(row["value"]) for row in rows]
    rate = board.win_rate
    return [{"value": values[i], "cells": [
        None if i == j else {"rate": None if board.games[i, j] == 0 else round(float(rate[i, j]), 2),
                             "games": int(board.games[i, j])} for j in order]} for i in order]
