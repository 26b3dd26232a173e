"""Training a ranker on cached features, and scoring images with it.

    data = RankingData(image_tokens, tag_tokens, tag_mask, comp_a, comp_b, outcome, ref_dist=...)
    result = train_ranker(data, TrainConfig(), model_kind="tags", progress=print)
    mean, dist, uncertainty = score_images(result.model, image_tokens, tag_tokens, tag_mask)

Scores are per image: a batch of comparisons is turned into its unique images, each image is
scored once, and the pair losses index those scores. A step's cost grows with its unique images,
not with its comparisons, which is what makes large comparison sets cheap to train on compared
with a per-pair head (docs/benchmarks.md). The data and the split are in ``training_data.py``,
checkpoints in ``checkpoints.py``, synthetic data sets in ``synthetic.py``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from .device import runtime
from .losses import comparison_loss, emd_loss, ranking_loss, ranking_target
from .metrics import BINS, evaluate_scores
from .ranker import RankerConfig, build_ranker
from .training_data import RankingData, Split, split_data, tag_vocabulary

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    ranker: RankerConfig = field(default_factory=RankerConfig)  # input_dim is taken from the data
    seed: int = 0
    epochs: int = 30
    patience: int = 3            # validations without a gain of min_delta before stopping...
    patience_steps: int = 60     # ...and at least this many steps (small data sets have short epochs)
    min_steps: int = 0           # train at least this many steps (a few hundred comparisons make one-step epochs)
    max_steps: int = 0           # and at most this many (0 = epochs decide): large data sets need fewer passes
    # Below this many validation comparisons the validation agreement is noise (its std is ~.1 at 25), so
    # it neither stops training nor picks the weights: the last weights are kept. It is still reported.
    min_val_comparisons: int = 200
    min_delta: float = 0.002     # smaller gains in the watched validation metric count as no gain
    batch_pairs: int = 1024      # comparisons per step
    batch_images: int = 256      # images with reference distributions per step
    eval_every: int = 30         # steps between validations (at least once an epoch); 0 = each epoch
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    split_by_image: bool = True
    w_pairwise: float = 1.0      # Bradley-Terry loss on human comparisons
    w_emd: float = 1.0           # EMD on reference distributions
    w_ranking: float = 1.0       # poster's ranking loss on pairs of images with references
    # lambda: weight of the CLIP image-tag similarity in the ranking key, score = quality + lam * sim,
    # for the reference pairs (ranking_target) and the rater comparisons (comparison_loss) alike.
    lam: float = 0.0
    device: str = ""             # "" = TAGRANK_DEVICE (auto | cpu | cuda), see modeling.ml.device
    # torch CPU threads while training (0 = leave torch's setting). 1 by default: on a shared
    # small host, a second thread gains little on these small matrices and can slow training a lot
    # (measured: docs/ranker.md, "Threads").
    threads: int = 1
    bootstrap: bool = True       # ensemble heads train on Poisson(1) resamplings of the data

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        ranker = d.pop("ranker", {})
        known = {f.name for f in fields(cls)}
        return cls(ranker=RankerConfig(**ranker) if isinstance(ranker, dict) else ranker,
                   **{k: v for k, v in d.items() if k in known})


@dataclass
class TrainResult:
    model: torch.nn.Module
    metrics: dict                # validation metrics of the kept (best) epoch
    history: list                # one dict per epoch
    counts: dict                 # images, comparisons and references on each side
    losses_used: dict            # loss name -> weight (and lambda)
    split: Split
    config: TrainConfig


def _losses_used(cfg: TrainConfig, data: RankingData, split: Split, model_kind: str) -> dict:
    used = {}
    # The similarity is tag information: the image-only baseline never sees it.
    lam = cfg.lam if (model_kind == "tags" and data.similarity is not None) else 0.0
    if len(split.train_comparisons) and cfg.w_pairwise > 0:
        used["pairwise"] = cfg.w_pairwise
        used["pairwise_lambda"] = lam
    has_train_refs = data.ref_dist is not None and data.ref_mask[split.train_images].any()
    if has_train_refs and cfg.w_emd > 0:
        used["emd"] = cfg.w_emd
    if has_train_refs and cfg.w_ranking > 0:
        used["ranking"] = cfg.w_ranking
        used["ranking_lambda"] = lam
    if not used:
        raise ValueError("nothing to train on: no comparisons and no reference distributions in the training split")
    return used


def train_ranker(data: RankingData, cfg: TrainConfig | None = None, model_kind: str = "tags",
                 progress=None, split: Split | None = None, rt=None) -> TrainResult:
    """Train a TagRanker ("tags") or ImageOnlyRanker ("image_only") on cached features.

    Deterministic for a given seed on CPU. Every ``eval_every`` steps (and at the end of each
    epoch when an epoch is shorter) the model is evaluated on the validation split and
    ``progress`` is called with the history entry; ``epoch`` in it counts passes over the
    training data and may be fractional. Early stopping watches validation pairwise agreement
    (validation SRCC against the reference means when there are no validation comparisons),
    stops after ``patience`` evaluations and ``patience_steps`` steps without a gain above
    ``min_delta``, and keeps the best weights. ``rt``: a ``device.Runtime`` instead of ``cfg.device``
    (tests run the mixed-precision path on the CPU with it).
    """
    cfg = cfg or TrainConfig()
    rt = rt or runtime(cfg.device or None)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if rt.device.type == "cpu":
            # Multi-threaded index_put (the backward of gathering scores) is not deterministic otherwise.
            torch.use_deterministic_algorithms(True)
        return _train(data, cfg, model_kind, progress, split, rt)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(data, cfg, model_kind, progress, split, rt) -> TrainResult:
    device = rt.device
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    split = split or split_data(data, cfg.val_fraction, cfg.seed, cfg.split_by_image)
    losses = _losses_used(cfg, data, split, model_kind)

    rcfg = RankerConfig(**{**asdict(cfg.ranker), "input_dim": int(data.image_tokens.shape[-1])})
    model = build_ranker(model_kind, rcfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = rt.grad_scaler()  # loss scaling for fp16 autocast; a pass-through in bf16 and fp32

    # All features live on the device once (float16 stays float16); a step gathers its unique images' rows.
    X = torch.from_numpy(data.image_tokens).to(device)                  # [N,T,D]
    tag_index, tag_vocab = tag_vocabulary(data.tag_tokens, data.tag_mask)
    TI = torch.from_numpy(tag_index).to(device)                          # [N,K] into V
    V = torch.from_numpy(tag_vocab).to(device)                           # [V,D]
    M = torch.from_numpy(data.tag_mask).to(device)                       # [N,K]
    A = torch.from_numpy(data.comp_a).to(device)
    B = torch.from_numpy(data.comp_b).to(device)
    Y = torch.from_numpy(data.outcome).to(device)
    pair_lam = losses.get("pairwise_lambda", 0.0)
    S = torch.from_numpy(data.similarity).to(device) if pair_lam else None  # [N]
    train_pairs = split.train_comparisons if "pairwise" in losses else split.train_comparisons[:0]
    ref_images = np.empty(0, dtype=np.int64)
    if "emd" in losses or "ranking" in losses:
        ref_images = split.train_images[data.ref_mask[split.train_images]]
        R = torch.from_numpy(data.ref_dist).to(device)                   # [N,10]
        target = ranking_target(torch.from_numpy(data.ref_dist @ BINS.astype(np.float32)),
                                None if data.similarity is None else torch.from_numpy(data.similarity),
                                losses.get("ranking_lambda", 0.0)).to(device)  # [N]

    # Bootstrap: each score head sees every comparison and reference a Poisson(1) number of times,
    # so the heads disagree where the data leave the score uncertain.
    E = model.score_heads.n
    boot = np.random.default_rng(cfg.seed + 1)
    if cfg.bootstrap and E > 1:
        WP = torch.from_numpy(boot.poisson(1.0, (data.n_comparisons, E)).astype(np.float32)).to(device)
        WR = torch.from_numpy(boot.poisson(1.0, (data.n_images, E)).astype(np.float32)).to(device)
    else:
        WP = torch.ones(data.n_comparisons, E, device=device)
        WR = torch.ones(data.n_images, E, device=device)

    steps_per_epoch = max(math.ceil(len(train_pairs) / cfg.batch_pairs),
                          math.ceil(len(ref_images) / cfg.batch_images), 1)
    eval_every = min(cfg.eval_every or steps_per_epoch, steps_per_epoch)
    has_val_pairs = len(split.val_comparisons) > 0
    has_val_refs = data.ref_dist is not None and data.ref_mask[split.val_images].sum() > 1
    watch = "pairwise_agreement" if has_val_pairs else ("srcc" if has_val_refs else None)
    keep_last = watch == "pairwise_agreement" and len(split.val_comparisons) < cfg.min_val_comparisons
    n_epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    max_steps = cfg.max_steps or n_epochs * steps_per_epoch

    history, best, best_state, best_metrics, best_epoch, bad_evals = [], -math.inf, None, {}, 0.0, 0
    step, gain_step, running, n_running, t0, stop = 0, 0, 0.0, 0, time.perf_counter(), False
    for epoch in range(n_epochs):
        pair_order = rng.permutation(train_pairs)
        ref_order = rng.permutation(ref_images)
        for s in range(steps_per_epoch):
            model.train()
            pairs = _batch(pair_order, s, cfg.batch_pairs)
            refs = _batch(ref_order, s, cfg.batch_images)
            p = torch.from_numpy(pairs).to(device)
            r = torch.from_numpy(refs).to(device)
            # Score each unique image once; the pairs index into these scores.
            images, inv = torch.unique(torch.cat([A[p], B[p], r]), return_inverse=True)
            with rt.autocast():
                out = model(X[images].float(), TI[images], M[images], tag_vocab=V)
            # The losses in fp32: score differences and CDFs lose too much in half precision.
            head_means = out["head_means"].float()                       # [U,E]
            head_dist = out["head_dist"].float()                         # [U,E,10]
            loss = head_means.new_zeros(())
            if len(pairs):
                ia, ib = inv[: len(pairs)], inv[len(pairs): 2 * len(pairs)]
                y = Y[p][:, None].expand(-1, head_means.shape[1])
                sa, sb = (None, None) if S is None else (S[A[p]][:, None], S[B[p]][:, None])
                loss = loss + losses["pairwise"] * comparison_loss(head_means[ia], head_means[ib], y, sa, sb,
                                                                   pair_lam, WP[p])
            if len(refs):
                ir = inv[2 * len(pairs):]
                if "emd" in losses:
                    ref = R[r][:, None, :].expand_as(head_dist[ir])
                    loss = loss + losses["emd"] * emd_loss(head_dist[ir], ref, weight=WR[r])
                if "ranking" in losses and len(refs) > 1:
                    # Pair each reference image with another one of the batch at random.
                    perm = torch.from_numpy(rng.permutation(len(refs))).to(device)
                    t = target[r][:, None].expand(-1, head_means.shape[1])
                    loss = loss + losses["ranking"] * ranking_loss(
                        head_means[ir], head_means[ir][perm], t, t[perm], WR[r] * WR[r][perm])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            running, n_running = running + float(loss.detach()), n_running + 1
            if step % eval_every and s != steps_per_epoch - 1 and step < max_steps:
                continue

            entry = {"epoch": round(step / steps_per_epoch, 3), "step": step,
                     "train_loss": running / n_running, "seconds": time.perf_counter() - t0}
            running, n_running, t0 = 0.0, 0, time.perf_counter()
            if watch:
                m = evaluate_split(model, data, split.val_images, split.val_comparisons)
                entry.update({f"val_{k}": m[k] for k in ("pairwise_agreement", "srcc") if m[k] is not None})
                score = -math.inf if m[watch] is None else m[watch]  # None: e.g. only tied comparisons
                if keep_last:
                    score = float(step)  # every evaluation is a "gain": the latest weights win, no early stop
            else:
                m, score = {}, -entry["train_loss"]
            history.append(entry)
            log.info("%s step %d: %s", model_kind, step, entry)
            if progress:
                progress(dict(entry))
            # Keep the best weights; but only a gain above min_delta (beyond validation noise) resets patience.
            if score > best + cfg.min_delta:
                bad_evals, gain_step = 0, step
            else:
                bad_evals += 1
            if score > best:
                best, best_metrics, best_epoch = score, m, entry["epoch"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if watch and bad_evals >= cfg.patience and step - gain_step >= cfg.patience_steps:
                stop = True
                break
            if step >= max_steps:
                stop = True
                break
        if stop:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = {**best_metrics, "best_epoch": best_epoch, "steps": step,
               "selected_on": "last" if keep_last else (watch or "train_loss"),
               "train_seconds": time.perf_counter() - t_start}
    counts = {
        "images": data.n_images, "train_images": len(split.train_images), "val_images": len(split.val_images),
        "comparisons": data.n_comparisons, "train_comparisons": len(split.train_comparisons),
        "val_comparisons": len(split.val_comparisons), "dropped_comparisons": split.dropped_comparisons,
        "references": data.n_references,
    }
    return TrainResult(model, metrics, history, counts, losses, split, cfg)


def _batch(order: np.ndarray, step: int, size: int) -> np.ndarray:
    """The step-th batch of an epoch, wrapping around when this stream is shorter than the epoch."""
    if len(order) == 0:
        return order
    n = math.ceil(len(order) / size)
    return order[(step % n) * size:(step % n + 1) * size]


# -- scoring and evaluation --------------------------------------------------------------------------
def score_images(model, image_tokens, tag_tokens=None, tag_mask=None, batch_size: int = 2048):
    """Scores of images from cached features: (mean [N], dist [N,10], uncertainty [N]) numpy float32.

    Runs on the model's device, in fp32 (a head is cheap; scores must not depend on the device's
    half precision). On CUDA the batch grows with the free memory.
    """
    device = next(model.parameters()).device
    N = len(image_tokens)
    if device.type == "cuda":
        T, D = np.shape(image_tokens)[1:]
        K = 0 if tag_tokens is None else np.shape(tag_tokens)[1]
        # ~20 activations of width W per token, and the inputs, float32, for every ensemble head
        item = 4 * ((T + K) * (D + 20 * model.cfg.width) + model.cfg.ensemble * 4 * model.cfg.width)
        batch_size = runtime(str(device)).batch_size(batch_size, item)
    def batch(a, sl, dtype):  # converted batch by batch: a float16 feature set is never copied whole
        return None if a is None else torch.as_tensor(np.asarray(a[sl], dtype=dtype)).to(device)

    means, dists, uncs = [], [], []
    for i in range(0, N, batch_size):
        sl = slice(i, i + batch_size)
        mean, dist, unc = model.predict(batch(image_tokens, sl, np.float32), batch(tag_tokens, sl, np.float32),
                                        batch(tag_mask, sl, bool))
        means.append(mean.float().cpu()), dists.append(dist.float().cpu()), uncs.append(unc.float().cpu())
    if not means:
        z = np.zeros(0, np.float32)
        return z, np.zeros((0, model.cfg.n_bins), np.float32), z
    return (torch.cat(means).numpy(), torch.cat(dists).numpy(), torch.cat(uncs).numpy())


def evaluate_split(model, data: RankingData, images: np.ndarray, comparisons: np.ndarray) -> dict:
    """Metrics of a model on some images (references, uncertainty) and on some comparisons.

    The comparisons may involve other images too (a split by comparison, ``split_by_image=False``):
    every image they touch is scored, so each comparison is judged on its own two images.
    """
    images = np.asarray(images, dtype=np.int64)
    touched = np.union1d(images, np.concatenate([data.comp_a[comparisons], data.comp_b[comparisons]]))  # sorted
    mean, dist, unc = score_images(model, data.image_tokens[touched], data.tag_tokens[touched],
                                   data.tag_mask[touched])
    own = np.searchsorted(touched, images)                               # rows of ``images`` in the scores
    if data.ref_dist is not None and data.ref_mask[images].any():
        has = data.ref_mask[images]
        m = evaluate_scores(mean[own][has], ref_dist=data.ref_dist[images][has], pred_dist=dist[own][has])
    else:
        m = evaluate_scores(mean[own])
    a, b = np.searchsorted(touched, data.comp_a[comparisons]), np.searchsorted(touched, data.comp_b[comparisons])
    pm = evaluate_scores(mean, comparisons=(a, b, data.outcome[comparisons]))
    m["pairwise_agreement"], m["n_comparisons"] = pm["pairwise_agreement"], pm["n_comparisons"]
    m["n_images"] = len(images)
    m["mean_uncertainty"] = float(unc[own].mean()) if len(own) else None
    return m
