"""The leaderboard benchmark runs as its command runs it, and its figures mean what docs/benchmarks.md says."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_leaderboard_benchmark_reports_tau_and_coverage(tmp_path):
    out = tmp_path / "leaderboard.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/leaderboard.py", "--quick", "--budgets", "10", "--image-sd", "0",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["campaigns"] == 40 and run["judgments"] == 600
    assert 0.0 <= run["coverage_pairwise_differences"] <= 1.0 and -1.0 <= run["tau_mean"] <= 1.0
    assert run["tau_mean"] > 0.5  # generators 0.4 apart, 600 judgments: the order is mostly right
