"""Training a ranker on cached features, checkpoints, and scoring.

    data = RankingData(image_tokens, tag_tokens, tag_mask, comp_a, comp_b, outcome, ref_dist=...)
    result = train_ranker(data, TrainConfig(), model_kind="tags", progress=print)
    save_checkpoint("model.pt", result, {"encoder_id": enc.encoder_id})
    model, meta = load_checkpoint("model.pt")
    mean, dist, uncertainty = score_images(model, image_tokens, tag_tokens, tag_mask)

Scores are per image: a batch of comparisons is turned into its unique images, each image is
scored once, and the pair losses index those scores. This is what makes 100k comparisons train
in seconds rather than the 20 minutes an epoch of a per-pair head.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from .device import runtime
from .encoder import image_tag_similarity
from .json_values import plain_json
from .losses import comparison_loss, emd_loss, ranking_loss, ranking_target
from .metrics import BINS, evaluate_scores
from .ranker import RankerConfig, build_ranker

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "tagrank-ranker"
CHECKPOINT_VERSION = 1


# -- data --------------------------------------------------------------------------------------------
@dataclass
class RankingData:
    """Cached features and labels of N images. Comparisons index the images."""

    image_tokens: np.ndarray                 # [N,T,D] float32 or float16 (kept: half the memory); token 0 = class
    tag_tokens: np.ndarray                   # [N,K,D] float32; K may be 0
    tag_mask: np.ndarray                     # [N,K] bool, True where a tag is present
    comp_a: np.ndarray | None = None         # [P] int, image a of each comparison
    comp_b: np.ndarray | None = None         # [P] int, image b
    outcome: np.ndarray | None = None        # [P] float: 1 = a wins, 0 = b wins, 0.5 = tie
    ref_dist: np.ndarray | None = None       # [N,10] reference vote distributions
    ref_mask: np.ndarray | None = None       # [N] bool, which images have a reference distribution
    similarity: np.ndarray | None = None     # [N] CLIP image-tags similarity (for the ranking target)

    def __post_init__(self):
        tokens = np.asarray(self.image_tokens)
        self.image_tokens = tokens if tokens.dtype == np.float16 else tokens.astype(np.float32, copy=False)
        N = len(self.image_tokens)
        self.tag_tokens = np.asarray(self.tag_tokens, dtype=np.float32)
        self.tag_mask = np.asarray(self.tag_mask, dtype=bool)
        if self.tag_tokens.shape[:2] != self.tag_mask.shape or len(self.tag_tokens) != N:
            raise ValueError(f"tag_tokens {self.tag_tokens.shape} and tag_mask {self.tag_mask.shape} "
                             f"do not match {N} images")
        self.comp_a = np.asarray(self.comp_a if self.comp_a is not None else [], dtype=np.int64)
        self.comp_b = np.asarray(self.comp_b if self.comp_b is not None else [], dtype=np.int64)
        self.outcome = np.asarray(self.outcome if self.outcome is not None else [], dtype=np.float32)
        if not len(self.comp_a) == len(self.comp_b) == len(self.outcome):
            raise ValueError("comp_a, comp_b and outcome must have the same length")
        if len(self.comp_a) and (min(self.comp_a.min(), self.comp_b.min()) < 0
                                 or max(self.comp_a.max(), self.comp_b.max()) >= N):
            raise ValueError("a comparison refers to an image index outside 0..N-1")
        if self.ref_dist is not None:
            self.ref_dist = np.asarray(self.ref_dist, dtype=np.float32)
            self.ref_mask = (np.ones(N, dtype=bool) if self.ref_mask is None
                             else np.asarray(self.ref_mask, dtype=bool))
            if self.ref_dist.shape[0] != N or self.ref_mask.shape != (N,):
                raise ValueError("ref_dist and ref_mask must have one row per image")
        if self.similarity is not None:
            self.similarity = np.asarray(self.similarity, dtype=np.float32)

    @property
    def n_images(self) -> int:
        return len(self.image_tokens)

    @property
    def n_comparisons(self) -> int:
        return len(self.comp_a)

    @property
    def n_references(self) -> int:
        return 0 if self.ref_dist is None else int(self.ref_mask.sum())


@dataclass
class Split:
    """Image and comparison indices on each side; comparisons across sides are dropped."""

    train_images: np.ndarray
    val_images: np.ndarray
    train_comparisons: np.ndarray
    val_comparisons: np.ndarray
    dropped_comparisons: int = 0


def split_data(data: RankingData, val_fraction: float = 0.2, seed: int = 0, by_image: bool = True) -> Split:
    """Random train/validation split.

    by_image=True keeps every image and all of its comparisons on one side (no leakage): a
    comparison whose two images fall on different sides is dropped. by_image=False splits the
    comparisons independently of the images, so an image can appear on both sides.
    """
    rng = np.random.default_rng(seed)
    N, P = data.n_images, data.n_comparisons
    order = rng.permutation(N)
    n_val = int(round(N * val_fraction))
    val_images, train_images = np.sort(order[:n_val]), np.sort(order[n_val:])
    if by_image:
        in_val = np.zeros(N, dtype=bool)
        in_val[val_images] = True
        a_val, b_val = in_val[data.comp_a], in_val[data.comp_b]
        train_c = np.flatnonzero(~a_val & ~b_val)
        val_c = np.flatnonzero(a_val & b_val)
        dropped = P - len(train_c) - len(val_c)
    else:
        corder = rng.permutation(P)
        n_val_c = int(round(P * val_fraction))
        val_c, train_c, dropped = np.sort(corder[:n_val_c]), np.sort(corder[n_val_c:]), 0
    return Split(train_images, val_images, train_c, val_c, int(dropped))


# -- training ----------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    ranker: RankerConfig = field(default_factory=RankerConfig)  # input_dim is taken from the data
    seed: int = 0
    epochs: int = 30
    patience: int = 3            # validations without a gain of min_delta before stopping...
    patience_steps: int = 60     # ...and at least this many steps (small data sets have short epochs)
    min_steps: int = 0           # train at least this many steps (a few hundred comparisons make one-step epochs)
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
    # 2-core host, 2 threads trained 100k comparisons 8x slower than 1 (docs/benchmarks.md).
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


def tag_vocabulary(tag_tokens: np.ndarray, tag_mask: np.ndarray):
    """Dense tag tokens [N,K,D] -> (index [N,K] int64, vocab [V,D]) of the distinct tag vectors.

    Images share tags, so training projects each distinct tag of a batch once instead of once
    per image. Masked slots point at an arbitrary entry; the mask still hides them.
    """
    N, K, D = tag_tokens.shape
    flat = np.ascontiguousarray(np.where(tag_mask[..., None], tag_tokens, 0.0), dtype=np.float32).reshape(N * K, D)
    if len(flat) == 0:
        return np.zeros((N, K), dtype=np.int64), np.zeros((1, D), dtype=np.float32)
    # Exact duplicates by their bytes (a dict is ~50x faster than np.unique(axis=0) here).
    first: dict[bytes, int] = {}
    index = np.fromiter((first.setdefault(row.tobytes(), len(first)) for row in flat), dtype=np.int64, count=len(flat))
    rows = np.zeros(len(first), dtype=np.int64)
    rows[index[::-1]] = np.arange(len(flat) - 1, -1, -1)                 # first row of each entry
    return index.reshape(N, K), flat[rows]


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
            if step % eval_every and s != steps_per_epoch - 1:
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
    """Metrics of a model on some images and the comparisons among them."""
    mean, dist, unc = score_images(model, data.image_tokens[images], data.tag_tokens[images], data.tag_mask[images])
    if data.ref_dist is not None and data.ref_mask[images].any():
        has = data.ref_mask[images]
        m = evaluate_scores(mean[has], ref_dist=data.ref_dist[images][has], pred_dist=dist[has])
    else:
        m = evaluate_scores(mean)
    position = np.full(data.n_images, -1, dtype=np.int64)
    position[images] = np.arange(len(images))
    a, b = position[data.comp_a[comparisons]], position[data.comp_b[comparisons]]
    pm = evaluate_scores(mean, comparisons=(a, b, data.outcome[comparisons]))
    m["pairwise_agreement"], m["n_comparisons"] = pm["pairwise_agreement"], pm["n_comparisons"]
    m["n_images"] = len(images)
    m["mean_uncertainty"] = float(unc.mean()) if len(unc) else None
    return m


# -- checkpoints -------------------------------------------------------------------------------------
class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, corrupt or not a Tagrank ranker."""


def _json_clean(obj):
    """Config or meta as a JSON string of plain types (numpy numbers and arrays become numbers and lists)."""
    return json.dumps(plain_json(obj), sort_keys=True)


def _digest(state: dict, config_json: str, meta_json: str) -> str:
    h = hashlib.sha256(config_json.encode() + meta_json.encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path, result_or_model, meta: dict | None = None) -> None:
    """Write a ranker with its config and meta (merged with a TrainResult's metrics, counts,
    losses and history). Atomic: written to a temporary file, then renamed."""
    meta = dict(meta or {})
    if isinstance(result_or_model, TrainResult):
        r = result_or_model
        model = r.model
        meta = {"metrics": r.metrics, "counts": r.counts, "losses_used": r.losses_used,
                "history": r.history, "train_config": asdict(r.config), **meta}
    else:
        model = result_or_model
    meta.setdefault("kind", model.kind)
    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    config_json, meta_json = _json_clean(asdict(model.cfg)), _json_clean(meta)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": model.kind,
               "config": config_json, "meta": meta_json, "state_dict": state,
               "sha256": _digest(state, config_json, meta_json)}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, device: str | torch.device | None = None):
    """(model in eval mode, meta) on ``device`` (None = this worker's, TAGRANK_DEVICE).
    Raises CheckpointError on any problem with the file."""
    path = Path(path)
    device = torch.device(device) if device is not None else runtime().device
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # truncated zip, garbage bytes, pickle errors...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a Tagrank ranker checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')} is not supported")
    try:
        state = payload["state_dict"]
        cpu_state = {k: v.cpu() for k, v in state.items()}
        if _digest(cpu_state, payload["config"], payload["meta"]) != payload["sha256"]:
            raise CheckpointError(f"{path}: checksum mismatch, the file is corrupt")
        cfg = RankerConfig(**json.loads(payload["config"]))
        model = build_ranker(payload["kind"], cfg)
        model.load_state_dict(state)
        meta = json.loads(payload["meta"])
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: invalid checkpoint contents ({type(e).__name__}: {e})") from e
    return model.to(device).eval(), meta


# -- synthetic data ----------------------------------------------------------------------------------
def synthetic_data(n_images: int = 2000, n_comparisons: int = 20000, dim: int = 64, n_tokens: int = 5,
                   max_tags: int = 4, n_classes: int = 16, tag_effect: float = 2.0, seed: int = 0,
                   with_references: bool = True, votes: int = 100, return_latents: bool = False):
    """A learnable task where quality depends on whether an image's tags match its content.

    Every image shows one of ``n_classes`` contents (a prototype direction) and has a latent
    "technical" quality z visible in its tokens. Half of the tagged images carry a tag of their
    own content, the others only tags of other contents. True quality:

        q = 5.5 + z + tag_effect * (match - 0.5)      (clipped to 1..10)

    so an image-only model can recover z but not the match. Returns (RankingData, q), and with
    ``return_latents`` a third item, {"content": [N] class, "z": [N], "match": [N] bool}.
    """
    rng = np.random.default_rng(seed)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    proto = unit(rng.standard_normal((n_classes, dim)))                    # content directions
    quality_dir = unit(rng.standard_normal(dim))                           # where z shows
    tags_per_class = 3
    vocab = unit(np.repeat(proto, tags_per_class, axis=0)
                 + 0.5 * rng.standard_normal((n_classes * tags_per_class, dim)) / np.sqrt(dim))
    vocab_class = np.repeat(np.arange(n_classes), tags_per_class)

    content = rng.integers(0, n_classes, n_images)
    z = rng.standard_normal(n_images).astype(np.float32)
    base = proto[content] + 0.6 * z[:, None] * quality_dir                  # [N,D]
    noise = rng.standard_normal((n_images, n_tokens, dim)) / np.sqrt(dim)
    scale = np.array([0.3] + [0.6] * (n_tokens - 1))[None, :, None]       # regions are noisier
    image_tokens = unit(base[:, None, :] + scale * noise)                  # [N,T,D]

    n_tags = rng.integers(0, max_tags + 1, n_images)
    match = (rng.random(n_images) < 0.5) & (n_tags > 0)
    tag_index = np.zeros((n_images, max_tags), dtype=np.int64)
    for i in range(n_images):
        others = np.flatnonzero(vocab_class != content[i])
        tag_index[i] = rng.choice(others, max_tags)
        if match[i]:
            own = np.flatnonzero(vocab_class == content[i])
            tag_index[i, rng.integers(0, n_tags[i])] = rng.choice(own)
    tag_mask = np.arange(max_tags)[None, :] < n_tags[:, None]
    tag_tokens = vocab[tag_index] * tag_mask[..., None]

    q = np.clip(5.5 + z + tag_effect * (match - 0.5), 1.0, 10.0).astype(np.float32)

    ref_dist = None
    if with_references:
        p = np.exp(-0.5 * ((BINS[None, :] - q[:, None]) / 1.2) ** 2)
        p /= p.sum(axis=1, keepdims=True)
        ref_dist = np.stack([rng.multinomial(votes, row) for row in p]).astype(np.float32) / votes

    a = rng.integers(0, n_images, n_comparisons)
    b = (a + rng.integers(1, n_images, n_comparisons)) % n_images          # never a == b
    p_a = 1.0 / (1.0 + np.exp(-1.5 * (q[a] - q[b])))
    outcome = (rng.random(n_comparisons) < p_a).astype(np.float32)
    outcome[np.abs(q[a] - q[b]) < 0.05] = 0.5                              # near-equal: a tie

    data = RankingData(image_tokens, tag_tokens, tag_mask, a, b, outcome, ref_dist=ref_dist,
                       similarity=image_tag_similarity(image_tokens, tag_tokens, tag_mask))
    if return_latents:
        return data, q, {"content": content, "z": z, "match": match}
    return data, q
