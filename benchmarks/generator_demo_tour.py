"""The generator leaderboard of the second demo project after simulated raters judged every pair.

    .venv/bin/python benchmarks/generator_demo_tour.py

Seeds the ``demo-generators`` project (``labeling.services.generator_demo``) in a scratch SQLite database under
var/bench/, then the demo's two raters judge, in turn, every pair they are served (within prompts) until
nothing is left: a simulated rater prefers image a with probability ``sigmoid(1.5 (strength_a - strength_b))``
on the generators' known strengths (3, 2, 1), and says "both bad" to one pair in ten between the two weaker
generators; both of the demo's questions (alignment, overall) get the same answer. Prints the leaderboard (``modeling.services.leaderboard``) as the README's Markdown table.
"""
from __future__ import annotations

import math
import random
import shutil

from bench_setup import REPO  # and the repository on sys.path


def main():
    work = REPO / "var" / "bench" / "generator_demo_tour"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from bench_setup import scratch_environment, start_django

    start_django(f"sqlite:///{work / 'db.sqlite3'}", **scratch_environment(work))
    from django.contrib.auth import get_user_model

    from labeling.models import Image
    from labeling.services.comparisons import submit_comparison
    from labeling.services.generator_demo import seed_generator_demo
    from labeling.services.pair_serving import next_pair
    from modeling.services.leaderboard import board_rows, field_leaderboard

    project = seed_generator_demo().project
    strength = {pk: metadata["generator_strength"] for pk, metadata in Image.objects.filter(project=project).values_list("pk", "metadata")}
    raters = [get_user_model().objects.get(username=name) for name in ("rater", "rater2")]
    rng = random.Random(7)
    judged, turn = 0, 0
    while True:
        rater = raters[turn % 2]
        turn += 1
        result = next_pair(project, rater, rng=rng)
        if result is None:
            if next_pair(project, raters[turn % 2], rng=rng) is None:
                break
            continue
        _, lease = result
        a, b = strength[lease.image_a_id], strength[lease.image_b_id]
        if max(a, b) < 3 and rng.random() < 0.1:
            winner = "bad"
        else:
            winner = "a" if rng.random() < 1 / (1 + math.exp(-1.5 * (a - b))) else "b"
        # The demo asks two questions; this rater gives both the same answer (the leaderboard reads "overall").
        submit_comparison(project, rater, lease=lease.token, client_key=str(lease.token),
                          answers={criterion["key"]: winner for criterion in project.criteria})
        judged += 1
    result = field_leaderboard(project, "generator")
    print(f"{judged} judgments")
    print("| Rank | generator | human rating [95 % interval] | rank interval | win rate |")
    print("|---|---|---|---|---|")
    for row in board_rows(result):
        print(f"| {row['human_rank']} | {row['value']} | {row['human_rating']:.2f} [{row['human_low']:.2f}, "
              f"{row['human_high']:.2f}] | {row['human_rank_low']}–{row['human_rank_high']} | {row['human_win_rate']:.2f} |")


if __name__ == "__main__":
    main()
