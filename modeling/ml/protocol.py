"""The AVA evaluation protocol: a fixed test split that training never sees, several seeds, bootstrap
intervals, and the poster's tables (main, per tag, score against metadata).

    is_test = fixed_test_split(names, test_list)        # AVA's generic_test.jpgl, or a name hash
    runs = run_protocol(data, is_test, cfg, seeds=(0, 1, 2))
    print(main_table(runs, data, is_test))

The test split is the data's standard one where it provides one (AVA: the image ids listed in
``aesthetics_image_lists/generic_test.jpgl``), otherwise the images whose name hashes to the lowest
10 of 100 buckets (``TEST_SPLIT_DEFINITION``), the same on every run and host. Early stopping and
weight selection use a validation split drawn (per seed) from the other images only; comparisons
between a test image and a training image are used by neither side.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .metrics import BINS, evaluate_scores, format_row

TEST_PERCENT = 10
TEST_SPLIT_DEFINITION = f"name-hash-v1: sha256(file name) % 100 < {TEST_PERCENT}"
N_BOOTSTRAP = 1000
MODELS = (("image_only", "Image only (NIMA head)"), ("tags", "Tags (cross-attention)"))


def fixed_test_split(names: list[str], test_list: list[str] | None = None) -> np.ndarray:
    """[N] bool, True for test images: those in ``test_list`` (file names or their stems, e.g. AVA ids),
    else the name-hash rule."""
    if test_list is not None:
        listed = {str(t).strip() for t in test_list if str(t).strip()}
        return np.array([n in listed or n.rsplit(".", 1)[0] in listed for n in names], dtype=bool)
    return np.array([int(hashlib.sha256(n.encode()).hexdigest()[:8], 16) % 100 < TEST_PERCENT for n in names],
                    dtype=bool)


def protocol_split(data, is_test: np.ndarray, val_fraction: float, seed: int):
    """A training.Split among the non-test images: (train, validation) by image, per seed."""
    from .training_data import Split

    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(~is_test)
    order = rng.permutation(pool)
    n_val = int(round(len(pool) * val_fraction))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    side = np.full(data.n_images, -1)
    side[train], side[val] = 0, 1
    sa, sb = side[data.comp_a], side[data.comp_b]
    train_c, val_c = np.flatnonzero((sa == 0) & (sb == 0)), np.flatnonzero((sa == 1) & (sb == 1))
    return Split(train, val, train_c, val_c, int(data.n_comparisons - len(train_c) - len(val_c)))


@dataclass
class ProtocolRuns:
    """Test-set predictions of each model for each seed."""

    test_images: np.ndarray            # [Nt] row indices
    test_comparisons: np.ndarray       # [Pt] comparison indices with both images in the test split
    seeds: list
    mean: dict                         # model kind -> [S, Nt] predicted mean scores
    dist: dict                         # model kind -> [S, Nt, 10]
    losses_used: dict                  # model kind -> losses of the first seed
    counts: dict


def run_protocol(data, is_test: np.ndarray, cfg, seeds=(0, 1, 2), progress=None) -> ProtocolRuns:
    from dataclasses import replace

    from .training import score_images, train_ranker

    test = np.flatnonzero(is_test)
    ta, tb = is_test[data.comp_a], is_test[data.comp_b]
    test_c = np.flatnonzero(ta & tb)
    mean = {k: [] for k, _ in MODELS}
    dist = {k: [] for k, _ in MODELS}
    losses, counts = {}, {}
    for seed in seeds:
        split = protocol_split(data, is_test, cfg.val_fraction, seed)
        for kind, _ in MODELS:
            r = train_ranker(data, replace(cfg, seed=seed), model_kind=kind, split=split,
                             progress=progress(kind, seed) if progress else None)
            m, d, _ = score_images(r.model, data.image_tokens[test], data.tag_tokens[test], data.tag_mask[test])
            mean[kind].append(m)
            dist[kind].append(d)
            losses.setdefault(kind, r.losses_used)
            counts = {**r.counts, "test_images": len(test), "test_comparisons": len(test_c),
                      "cross_test_comparisons_unused": int((ta ^ tb).sum())}
    return ProtocolRuns(test, test_c, list(seeds), {k: np.stack(v) for k, v in mean.items()},
                        {k: np.stack(v) for k, v in dist.items()}, losses, counts)


def _test_metrics(runs: ProtocolRuns, data, kind: str, seed_index: int) -> dict:
    t = runs.test_images
    position = np.full(data.n_images, -1)
    position[t] = np.arange(len(t))
    c = runs.test_comparisons
    comparisons = (position[data.comp_a[c]], position[data.comp_b[c]], data.outcome[c]) if len(c) else None
    ref_dist = None
    if data.ref_dist is not None and data.ref_mask[t].all():
        ref_dist = data.ref_dist[t]
    return evaluate_scores(runs.mean[kind][seed_index], ref_dist=ref_dist,
                           pred_dist=runs.dist[kind][seed_index] if ref_dist is not None else None,
                           comparisons=comparisons)


def seed_metrics(runs: ProtocolRuns, data, kind: str) -> dict:
    """Each metric's mean over the seeds (None where undefined), and its standard deviation as ``<name>_sd``."""
    per_seed = [_test_metrics(runs, data, kind, s) for s in range(len(runs.seeds))]
    out = {}
    for key, value in per_seed[0].items():
        values = [m[key] for m in per_seed]
        if any(v is None for v in values):
            out[key] = None
            continue
        out[key] = float(np.mean(values))
        out[f"{key}_sd"] = float(np.std(values))
    return out


def bootstrap_intervals(runs: ProtocolRuns, data, kind: str, n: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """95% percentile intervals of LCC, SRCC and binary accuracy of the seed-averaged metric, resampling
    test images (the test set's sampling error; the seeds' spread is in ``seed_metrics``)."""
    from scipy import stats

    t = runs.test_images
    if data.ref_dist is None or not data.ref_mask[t].all() or len(t) < 3:
        return {}
    ref = data.ref_dist[t] @ BINS
    pred = runs.mean[kind]                                                   # [S,Nt]
    rng = np.random.default_rng(seed)
    draws = {"lcc": [], "srcc": [], "binary_accuracy": []}
    for _ in range(n):
        i = rng.integers(0, len(t), len(t))
        r, p = ref[i], pred[:, i]
        if np.ptp(r) == 0:
            continue
        draws["lcc"].append(np.mean([stats.pearsonr(ps, r)[0] for ps in p]))
        draws["srcc"].append(np.mean([stats.spearmanr(ps, r)[0] for ps in p]))
        draws["binary_accuracy"].append(np.mean((p > 5.0) == (r > 5.0)))
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items() if v}


def main_table(runs: ProtocolRuns, data, n_bootstrap: int = N_BOOTSTRAP) -> str:
    """The poster's table on the test split (seed means), then each method's intervals."""
    from .metrics import TABLE_HEADER

    lines = [TABLE_HEADER]
    notes = []
    for kind, label in MODELS:
        m = seed_metrics(runs, data, kind)
        lines.append(format_row(label, m))
        ci = bootstrap_intervals(runs, data, kind, n_bootstrap)
        parts = [f"{k.upper() if k != 'binary_accuracy' else 'accuracy'} {m[k]:.3f} "
                 f"(seeds sd {m[k + '_sd']:.3f}; 95% CI {lo:.3f}-{hi:.3f})"
                 for k, (lo, hi) in ci.items() if m.get(k) is not None]
        if m.get("pairwise_agreement") is not None:
            parts.append(f"pairwise {m['pairwise_agreement']:.3f} (seeds sd {m['pairwise_agreement_sd']:.3f})")
        notes.append(f"- {label}: " + ("; ".join(parts) or "no reference scores on the test split"))
    return "\n".join(lines + ["", f"{len(runs.seeds)} seeds {runs.seeds}; bootstrap over the "
                              f"{len(runs.test_images)} test images ({n_bootstrap} resamples):"] + notes)


def _cell(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return "-" if not len(values) else f"{values.mean():.2f}"


def tag_table(runs: ProtocolRuns, data, tags: list[list[str]], min_images: int = 1) -> str:
    """The poster's per-tag table on the test split: mean score of the images with each tag."""
    t = runs.test_images
    base, ours = runs.mean["image_only"].mean(axis=0), runs.mean["tags"].mean(axis=0)   # seed means [Nt]
    human = (data.ref_dist[t] @ BINS) if data.ref_dist is not None else np.full(len(t), np.nan)
    if data.ref_dist is not None:
        human = np.where(data.ref_mask[t], human, np.nan)
    by_tag: dict[str, list[int]] = {}
    for j, row in enumerate(t):
        for tag in tags[row]:
            by_tag.setdefault(tag, []).append(j)
    lines = ["| TextTag | Baseline | Ours | Human | Images |", "|---|---|---|---|---|"]
    for tag in sorted(by_tag, key=lambda k: (-len(by_tag[k]), k)):
        j = by_tag[tag]
        if len(j) >= min_images:
            lines.append(f"| {tag} | {_cell(base[j])} | {_cell(ours[j])} | {_cell(human[j])} | {len(j)} |")
    return "\n".join(lines)


def metadata_table(field: str, values: list, columns: dict[str, np.ndarray], max_levels: int = 12) -> str:
    """Mean scores by a metadata field (e.g. cfg_scale): one row per value, or per quantile bin when the
    field has more than ``max_levels`` numeric values. ``columns``: name -> [N] scores (NaN = none)."""
    numeric = []
    for v in values:
        try:
            numeric.append(float(v))
        except (TypeError, ValueError):
            numeric.append(np.nan)
    numeric = np.asarray(numeric)
    have = np.isfinite(numeric)
    levels = np.unique(numeric[have])
    if len(levels) > max_levels:
        edges = np.unique(np.quantile(numeric[have], np.linspace(0, 1, 6)))
        groups = [(f"{lo:g}-{hi:g}", have & (numeric >= lo) & ((numeric <= hi) if k == len(edges) - 2 else (numeric < hi)))
                  for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    else:
        groups = [(f"{v:g}", have & (numeric == v)) for v in levels]
    names = list(columns)
    lines = [f"| {field} | " + " | ".join(names) + " | Images |", "|---|" + "---|" * (len(names) + 1)]
    for label, mask in groups:
        lines.append(f"| {label} | " + " | ".join(_cell(columns[n][mask]) for n in names) + f" | {int(mask.sum())} |")
    if len(levels) > 1:
        rho = {n: _spearman(numeric[have], columns[n][have]) for n in names}
        lines.append("")
        lines.append("Spearman with " + field + ": " + ", ".join(f"{n} {r}" for n, r in rho.items()))
    return "\n".join(lines)


def _spearman(x, y) -> str:
    from scipy import stats

    ok = np.isfinite(y)
    if ok.sum() < 3 or np.ptp(y[ok]) == 0:
        return "-"
    return f"{stats.spearmanr(x[ok], y[ok])[0]:.3f}"
