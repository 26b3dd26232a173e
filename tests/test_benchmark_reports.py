"""The benchmark scripts' report step, run as their command runs it (the end-to-end benchmark's report
once stopped on an import that a rename had broken, after every campaign had run)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUDGETS = ("0.5", "1.0", "2.0", "3.0")


def campaign_line(strategy: str, seed: int, srcc: list[float]) -> str:
    return json.dumps({
        "slug": f"ladder-none-{strategy.replace('_', '-')}-s{seed}", "srcc": dict(zip(BUDGETS, srcc)),
        "judged": dict(zip(BUDGETS, (20, 39, 78, 117))), "no_pair": 0, "retrain": None, "seconds": 60.0,
        "next_pair_ms": [6.0, 40.0],
    })


def test_the_end_to_end_benchmark_rebuilds_its_table_from_a_log(tmp_path):
    random_srcc = {0: [0.40, 0.60, 0.70, 0.80], 1: [0.50, 0.62, 0.74, 0.82]}
    lines = ["a line that is not a campaign"]
    for seed, values in random_srcc.items():
        lines.append(campaign_line("random", seed, values))
        lines.append(campaign_line("round_robin", seed, [v - 0.05 for v in values]))
        lines.append(campaign_line("active", seed, [v + 0.10 for v in values]))
    lines.append(campaign_line("random", 2, [0.9] * 4))  # seed 2 has no other strategy: left out
    log = tmp_path / "run.log"
    log.write_text("\n".join(lines) + "\n")

    result = subprocess.run(
        [sys.executable, "benchmarks/active_learning_api.py", "--report-from", str(log), "--no-write",
         "--sets", "ladder", "--models", "none", "--seeds", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TAGRANK_VAR_DIR": str(tmp_path / "var")},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "6 campaigns with all strategies of their seed, seeds [0, 1]" in result.stdout
    rows = {line.split("|")[3].strip(): line for line in result.stdout.splitlines() if line.startswith("| ladder |")}
    assert set(rows) == {"random", "round_robin", "active"}
    assert "| 2 | 0.450 ± 0.050 | 0.610 ± 0.010 |" in rows["random"]
    assert rows["active"].count("(Δ +0.100 ± 0.000)") == 4
    assert rows["round_robin"].count("(Δ -0.050 ± 0.000)") == 4


def test_the_small_budget_tables_show_the_figures_of_their_runs():
    import small_budgets

    table = small_budgets.designs_table(n_images=12, seeds=3, noises=(1.0,))
    rows = [[cell.strip() for cell in row.split("|")[1:-1]] for row in table.splitlines()[2:]]
    swiss = "Swiss: random matching, then winners vs winners, losers vs losers"
    assert [row[0] for row in rows] == ["random pairs", "every image twice (one random cycle)", swiss]
    # Each figure recomputed from the seeds' runs: the mean SRCC, and the paired difference as mean ± s.e.
    runs = [small_budgets.design_srcc(12, seed, 1.0) for seed in range(3)]
    random_srcc = np.array([run["random pairs"] for run in runs])
    difference = np.array([run[swiss] for run in runs]) - random_srcc
    assert rows[0][1:] == [f"{random_srcc.mean():.3f}", ""]
    assert rows[2][2] == f"{difference.mean():+.3f} ± {difference.std(ddof=1) / np.sqrt(3):.3f}"
    image_set = small_budgets.latent_set("levels", 16, seed=0)
    assert len(np.unique(np.round(image_set.quality, 6))) == 4  # four tied levels
    srcc = small_budgets.served_campaign(image_set, "active", seed=0, cadence="half the batch", with_prior=False)
    assert len(srcc) == len(small_budgets.BUDGETS)
    # A seeded campaign is reproducible, so a table row can be regenerated from its seed.
    assert srcc == small_budgets.served_campaign(image_set, "active", seed=0, cadence="half the batch", with_prior=False)


def test_campaign_cost_worth_reads_the_classic_curve_in_log_budget():
    from campaign_cost import worth

    curve = [(0.25, 0.3), (0.5, 0.4), (1.0, 0.6), (2.0, 0.75), (4.0, 0.86)]
    assert worth(curve, 0.6) == pytest.approx(1.0)
    assert worth(curve, 0.675) == pytest.approx(2 ** 0.5)  # half way between 1 and 2, in log budget
    assert worth(curve, 0.15) == pytest.approx(0.125)  # below the first point: that share of its budget
    assert np.isnan(worth(curve, 0.9))  # beyond the curve: not extrapolated


def test_campaign_cost_calibration_report_recomputes_predicted_minus_measured():
    from campaign_cost import calibration_report

    results = [{"predicted": {0.5: {"expected_srcc": p, "interval": [p - 0.05, p + 0.05]}},
                "srcc": {"tagrank": {0.5: m}}} for p, m in [(0.80, 0.70), (0.70, 0.72), (0.75, 0.74)]]
    row = calibration_report(results, (0.5,)).splitlines()[-1].split(" | ")
    gaps = np.array([0.10, -0.02, 0.01])
    assert row[3] == f"{gaps.mean():.3f} ± {gaps.std(ddof=1) / np.sqrt(3):.3f}"
    assert row[4].startswith("2/3")  # 0.70 lies outside [0.75, 0.85]
