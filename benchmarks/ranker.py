"""Benchmark: the CLIP encoder, head training on cached features, rescoring, uncertainty.

    .venv/bin/python benchmarks/ranker.py            # full run, writes the Ranker section of docs/benchmarks.md
    .venv/bin/python benchmarks/ranker.py --quick    # smaller run, prints only

Every measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own. Phases:

* encoder: images/s (PIL -> tokens, preprocessing included, batch 32) and tag texts/s (short tag
  texts, batch 32) for ``tiny`` and for a ViT-B/32-sized CLIP (CLIPConfig defaults: 224 px, patch
  32, width 768, 12 + 12 layers, random weights, no download). float32.
* train: the default TrainConfig on synthetic cached features (``synthetic_data``: 10k images,
  D = 512 like ViT-B/32, 5 image tokens, up to 4 tags) with 10k and 100k comparisons; wall time to
  the end of early stopping, validation pairwise agreement, held-out SRCC against the true quality.
* sizes: the same 100k-comparison run at other head sizes, and the image-only baseline.
* tokens: training throughput with 5, 10 and 50 image tokens (2x2 or 3x3 regions, or every patch
  of a ViT-B/32).
* rescore: ``score_images`` over 10k cached images.
* uncertainty: ensemble of 4 heads against MC dropout (16 passes), on held-out comparisons.

The machine is shared with other developers' jobs: the load average at the start and end of each
phase is recorded next to its figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from bench_setup import REPO  # and the repository on sys.path

from bench_docs import replace_docs_section


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- phases (each runs in its own process) --------------------------------------------------------------
def phase_encoder(name: str, n_images: int, n_texts: int, threads: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from modeling.ml.encoder import Encoder, load_encoder, tiny_tokenizer

    torch.set_num_threads(threads)
    if name == "tiny":
        enc = load_encoder("tiny", device="cpu")
    else:
        from transformers import CLIPConfig, CLIPModel

        tok = tiny_tokenizer()  # offline; a real BPE vocab would only change the ids, not the cost
        ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        config = CLIPConfig(text_config=ids, vision_config={})  # defaults: ViT-B/32, 512-d joint space
        torch.manual_seed(0)
        enc = Encoder(CLIPModel(config), tok, "vit-b32-random", "cpu")
    rss_loaded = peak_rss_mib()
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((240, 320, 3)) * 255).astype("uint8")) for _ in range(n_images)]
    words = ["landscape", "portrait", "black and white", "macro", "sunset", "street", "long exposure",
             "still life", "architecture", "animals", "night", "abstract", "a cat on a sofa"]
    texts = [f"{words[i % len(words)]} {i}" for i in range(n_texts)]
    enc.encode_images(images[:8])
    enc.encode_texts(texts[:8])
    t = time.perf_counter()
    tokens = enc.encode_images(images, batch_size=32)
    images_s = n_images / (time.perf_counter() - t)
    t = time.perf_counter()
    enc.encode_texts(texts, batch_size=32)
    texts_s = n_texts / (time.perf_counter() - t)
    return {"encoder": name, "threads": threads, "images_per_s": images_s, "texts_per_s": texts_s, "tokens": list(tokens.shape[1:]),
            "n_images": n_images, "n_texts": n_texts, "rss_after_load_mib": rss_loaded}


def phase_train(n_comparisons: int, width: int, layers: int, kind: str, threads: int, similarity: bool = True,
                n_images: int = 10000) -> dict:
    from modeling.ml.metrics import evaluate_scores
    from modeling.ml.ranker import RankerConfig
    from modeling.ml.synthetic import synthetic_data
    from modeling.ml.training import TrainConfig, score_images, train_ranker

    data, truth = synthetic_data(n_images, n_comparisons, dim=512, seed=0, with_references=False)
    cfg = TrainConfig(ranker=RankerConfig(width=width, layers=layers, tag_similarity=similarity), threads=threads)
    t = time.perf_counter()
    r = train_ranker(data, cfg, model_kind=kind)
    seconds = time.perf_counter() - t
    v = r.split.val_images
    mean, _, _ = score_images(r.model, data.image_tokens[v], data.tag_tokens[v], data.tag_mask[v])
    return {"comparisons": n_comparisons, "images": n_images, "width": width, "layers": layers, "kind": kind,
            "similarity": similarity,
            "threads": threads, "seconds": seconds, "steps": r.metrics["steps"],
            "epochs": r.history[-1]["epoch"], "best_epoch": r.metrics["best_epoch"],
            "train_comparisons": r.counts["train_comparisons"], "val_comparisons": r.counts["val_comparisons"],
            "val_pairwise": r.metrics["pairwise_agreement"],
            "heldout_srcc_truth": evaluate_scores(mean, ref_mean=truth[v])["srcc"],
            "parameters": sum(p.numel() for p in r.model.parameters())}


def phase_tokens(n_tokens: int, threads: int, steps: int = 15) -> dict:
    import numpy as np
    import torch

    from modeling.ml.losses import pairwise_loss
    from modeling.ml.ranker import RankerConfig, TagRanker
    from modeling.ml.synthetic import synthetic_data
    from modeling.ml.training_data import tag_vocabulary

    torch.set_num_threads(threads)
    data, _ = synthetic_data(10000, 100000, dim=512, n_tokens=n_tokens, seed=0, with_references=False)
    torch.manual_seed(0)
    model = TagRanker(RankerConfig(input_dim=512))
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    X, M = torch.from_numpy(data.image_tokens), torch.from_numpy(data.tag_mask)
    ti, voc = tag_vocabulary(data.tag_tokens, data.tag_mask)
    TI, V = torch.from_numpy(ti), torch.from_numpy(voc)
    A, B, Y = (torch.from_numpy(x) for x in (data.comp_a, data.comp_b, data.outcome))
    rng = np.random.default_rng(0)
    times = []
    for step in range(steps + 3):
        p = torch.from_numpy(rng.choice(data.n_comparisons, 1024, replace=False))
        t = time.perf_counter()
        images, inv = torch.unique(torch.cat([A[p], B[p]]), return_inverse=True)
        hm = model(X[images], TI[images], M[images], tag_vocab=V)["head_means"]
        loss = pairwise_loss(hm[inv[:1024]], hm[inv[1024:]], Y[p][:, None].expand(-1, hm.shape[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - t)
    per_step = float(np.median(times))
    return {"tokens": n_tokens, "threads": threads, "ms_per_step": 1000 * per_step, "pairs_per_s": 1024 / per_step}


def phase_rescore(threads: int, n_images: int = 10000) -> dict:
    import torch

    from modeling.ml.ranker import RankerConfig, TagRanker
    from modeling.ml.synthetic import synthetic_data
    from modeling.ml.training import score_images

    torch.set_num_threads(threads)
    data, _ = synthetic_data(n_images, 10, dim=512, seed=0, with_references=False)
    model = TagRanker(RankerConfig(input_dim=512)).eval()
    score_images(model, data.image_tokens[:2048], data.tag_tokens[:2048], data.tag_mask[:2048])
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        score_images(model, data.image_tokens, data.tag_tokens, data.tag_mask)
        best = max(best, n_images / (time.perf_counter() - t))
    return {"images": n_images, "threads": threads, "images_per_s": best}


def _auroc(score, label) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    import numpy as np
    from scipy.stats import rankdata

    score, label = np.asarray(score, float), np.asarray(label, bool)
    n_pos, n_neg = label.sum(), (~label).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def phase_calibration(threads: int, seeds: int = 3) -> dict:
    """Ensemble vs MC dropout, where there is something to be uncertain about.

    Synthetic set of 16 contents; 4 of them are rare in training (10% of their images train, the
    rest are held out with 20% of the other images). A useful uncertainty is higher on the rare
    contents, and higher where the prediction is wrong: on held-out comparisons (AUROC of the pair's
    uncertainty for a mispredicted winner) and per image (Spearman with the rank error).
    """
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from modeling.ml.ranker import RankerConfig
    from modeling.ml.synthetic import synthetic_data
    from modeling.ml.training import TrainConfig, score_images, train_ranker
    from modeling.ml.training_data import Split

    torch.set_num_threads(threads)
    out = {}
    for name, method, bootstrap, dropout in CALIBRATION_VARIANTS:
        rows = []
        for seed in range(seeds):
            data, truth, latent = synthetic_data(2000, 16000, dim=64, seed=100 + seed, return_latents=True)
            rng = np.random.default_rng(seed)
            rare = latent["content"] < 4
            train = np.where(rare, rng.random(data.n_images) < 0.1, rng.random(data.n_images) < 0.8)
            in_val = ~train
            tc = np.flatnonzero(train[data.comp_a] & train[data.comp_b])
            vc = np.flatnonzero(in_val[data.comp_a] & in_val[data.comp_b])
            split = Split(np.flatnonzero(train), np.flatnonzero(in_val), tc, vc, data.n_comparisons - len(tc) - len(vc))
            cfg = TrainConfig(ranker=RankerConfig(uncertainty=method, dropout=dropout), bootstrap=bootstrap,
                              threads=threads, seed=seed)
            r = train_ranker(data, cfg, split=split)
            v = split.val_images
            t = time.perf_counter()
            mean, _, unc = score_images(r.model, data.image_tokens[v], data.tag_tokens[v], data.tag_mask[v])
            predict_s = time.perf_counter() - t
            pos = np.full(data.n_images, -1)
            pos[v] = np.arange(len(v))
            a, b, y = pos[data.comp_a[vc]], pos[data.comp_b[vc]], data.outcome[vc]
            keep = y != 0.5
            a, b, y = a[keep], b[keep], y[keep]
            wrong = (mean[a] > mean[b]) != (y > 0.5)
            pair_unc = np.sqrt(unc[a] ** 2 + unc[b] ** 2)
            margin = np.abs(mean[a] - mean[b])
            rank_err = np.abs(np.argsort(np.argsort(mean)) - np.argsort(np.argsort(truth[v]))) / len(v)
            rows.append({
                "auroc_rare_content": _auroc(unc, rare[v]),
                "image_spearman_unc_vs_rank_error": float(spearmanr(unc, rank_err)[0]),
                "auroc_pair_uncertainty": _auroc(pair_unc, wrong),
                "auroc_margin_over_uncertainty": _auroc(-margin / np.maximum(pair_unc, 1e-9), wrong),
                "auroc_margin_only": _auroc(-margin, wrong),
                "rank_error_rare": float(rank_err[rare[v]].mean()),
                "rank_error_common": float(rank_err[~rare[v]].mean()),
                "val_pairwise": r.metrics["pairwise_agreement"],
                "mean_uncertainty": float(unc.mean()),
                "predict_ms_per_1k_images": 1000 * predict_s / len(v) * 1000,
            })
        out[name] = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
        for k in ("auroc_rare_content", "image_spearman_unc_vs_rank_error", "auroc_pair_uncertainty"):
            out[name]["sd_" + k] = float(np.std([row[k] for row in rows]))
    out["seeds"] = seeds
    return out


def phase_layout(threads: int, seeds: int = 3) -> dict:
    """Tags as one token per tag (the default) vs all of an image's tags pooled into one token.

    The pooled token (normalised mean of the tag embeddings) stands in for encoding the tags as one
    text; the synthetic task has no text encoder, so this is a proxy for the real comparison.
    """
    import numpy as np
    import torch

    from modeling.ml.metrics import evaluate_scores
    from modeling.ml.synthetic import synthetic_data
    from modeling.ml.training import TrainConfig, score_images, train_ranker
    from modeling.ml.training_data import RankingData

    torch.set_num_threads(threads)
    from modeling.ml.ranker import RankerConfig

    out = {"per_tag": [], "one_token": [], "per_tag_no_similarity": []}
    for seed in range(seeds):
        data, truth = synthetic_data(2000, 20000, dim=64, seed=200 + seed)
        pooled = (data.tag_tokens * data.tag_mask[..., None]).sum(1, keepdims=True)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        one = RankingData(data.image_tokens, pooled, data.tag_mask.any(1, keepdims=True), data.comp_a, data.comp_b,
                          data.outcome, ref_dist=data.ref_dist, similarity=data.similarity)
        for name, d in (("per_tag", data), ("one_token", one), ("per_tag_no_similarity", data)):
            ranker = RankerConfig(tag_similarity=name != "per_tag_no_similarity")
            r = train_ranker(d, TrainConfig(ranker=ranker, threads=threads, seed=seed))
            v = r.split.val_images
            mean, _, _ = score_images(r.model, d.image_tokens[v], d.tag_tokens[v], d.tag_mask[v])
            out[name].append((r.metrics["pairwise_agreement"], evaluate_scores(mean, ref_mean=truth[v])["srcc"]))
    return {k: {"val_pairwise": float(np.mean([x[0] for x in v])), "heldout_srcc_truth": float(np.mean([x[1] for x in v])),
                "sd_srcc": float(np.std([x[1] for x in v]))} for k, v in out.items()} | {"seeds": seeds}


# name, uncertainty method, bootstrap, dropout
CALIBRATION_VARIANTS = [
    ("ensemble of 4, bootstrap (default)", "ensemble", True, 0.1),
    ("ensemble of 4, no bootstrap", "ensemble", False, 0.1),
    ("MC dropout p=0.1", "mc_dropout", False, 0.1),
    ("MC dropout p=0.3", "mc_dropout", False, 0.3),
]

PHASES = {
    "encoder": lambda a: phase_encoder(a.name, a.n_images, a.n_texts, a.threads),
    "train": lambda a: phase_train(a.comparisons, a.width, a.layers, a.kind, a.threads, a.similarity),
    "tokens": lambda a: phase_tokens(a.tokens, a.threads),
    "rescore": lambda a: phase_rescore(a.threads),
    "calibration": lambda a: phase_calibration(a.threads, a.seeds),
    "layout": lambda a: phase_layout(a.threads, a.seeds),
}


def run_phase(*args) -> dict:
    """Run one phase in a fresh interpreter; its JSON result plus peak RSS and load averages."""
    load0 = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--phase", *map(str, args)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError(f"phase {args} failed:\n{r.stderr[-3000:]}")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result.update(load_start=load0, load_end=os.getloadavg()[0], wall_s=time.perf_counter() - t)
    print(json.dumps(result), flush=True)
    return result


# -- report -------------------------------------------------------------------------------------------------
def machine() -> str:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0) / 2**20
    return (f"{os.cpu_count()} cores ({model}, {platform.machine()}), {mem:.0f} GiB RAM, no GPU, "
            f"Python {platform.python_version()}, torch {torch.__version__}, float32")


def fmt_load(r) -> str:
    return f"{r['load_start']:.1f}–{r['load_end']:.1f}"


def build_section(res: dict, command: str) -> str:
    L = [f"Command: `{command}` (about {res['total_minutes']:.0f} minutes). Machine: {machine()}.",
         "The machine was shared with other developers' test runs while this ran: the load average (1 min) at "
         "the start and end of each measurement is given, on 2 cores. Each measurement runs in a fresh process; "
         "peak memory is that process's maximum resident set size (torch itself accounts for ~300 MiB).", ""]

    L += ["### Encoder (frozen CLIP, PIL images to tokens, batch 32)", "",
          "| encoder | threads | images/s | tag texts/s | tokens per image | peak RSS | load |", "|---|---|---|---|---|---|---|"]
    for r in res["encoder"]:
        L.append(f"| {r['encoder']} | {r['threads']} | {r['images_per_s']:.1f} | {r['texts_per_s']:.1f} | "
                 f"{r['tokens'][0]} x {r['tokens'][1]} | {r['peak_rss_mib']:.0f} MiB | {fmt_load(r)} |")
    L += ["", "Images/s include preprocessing (resize, crop, normalise) of 320x240 pictures; the ViT-B/32 figures "
          "are over a short run (see n in the JSON output). On CPU the encoder is the bottleneck, which is why "
          "features are computed once per (image, encoder) and cached.", ""]

    L += ["### Head training on cached features (10k images, D = 512, default TrainConfig)", "",
          "Synthetic features where quality depends on the image and on whether its tags match it "
          "(`modeling.ml.synthetic.synthetic_data`). The validation split keeps each image's comparisons on one side, "
          "so 64% of the comparisons train, 4% validate and the rest (across the split) are dropped. Time is to the "
          "end of early stopping (validation every 30 steps; stop after 3 validations and 60 steps without a gain of "
          "0.002), validation included.", "",
          "| comparisons | head | threads | time | steps (epochs) | val pairwise | held-out SRCC vs truth | peak RSS | load |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in res["train"]:
        head = "image-only" if r["kind"] == "image_only" else f"tags W{r['width']} L{r['layers']}"
        if r["kind"] == "tags" and not r["similarity"]:
            head += ", no similarity input"
        L.append(f"| {r['comparisons']:,} | {head} ({r['parameters']:,} params) | {r['threads']} | {r['seconds']:.1f} s | "
                 f"{r['steps']} ({r['epochs']:.1f}) | {r['val_pairwise']:.3f} | {r['heldout_srcc_truth']:.3f} | "
                 f"{r['peak_rss_mib']:.0f} MiB | {fmt_load(r)} |")
    L.append("")

    L += ["### Image tokens per image: training throughput (W64 L1, batch 1,024 comparisons)", "",
          "| image tokens | threads | ms/step | comparisons/s | load |", "|---|---|---|---|---|"]
    for r in res["tokens"]:
        L.append(f"| {r['tokens']} | {r['threads']} | {r['ms_per_step']:.0f} | {r['pairs_per_s']:,.0f} | {fmt_load(r)} |")
    L += ["", "5 = class token + 2x2 regions (the default), 10 = class + 3x3 regions, 50 = every patch of a ViT-B/32. "
          "A naive per-pair head managed ~85 comparisons/s (issue 3).", ""]

    L += ["### Rescoring from cached features", "", "| images | threads | images/s | peak RSS | load |", "|---|---|---|---|---|"]
    for r in res["rescore"]:
        L.append(f"| {r['images']:,} | {r['threads']} | {r['images_per_s']:,.0f} | {r['peak_rss_mib']:.0f} MiB | {fmt_load(r)} |")
    L.append("")

    c = res["calibration"]
    L += [f"### Uncertainty: ensemble of 4 heads vs MC dropout (16 passes) ({c['seeds']} seeds, 2,000 images, "
          "16,000 comparisons, D = 64)", "",
          "4 of the 16 synthetic contents are rare in training (10% of their images train; the rest are held out "
          "with 20% of the other images). Columns: AUROC of an image's uncertainty for being of a rare content; "
          "Spearman between an image's uncertainty and its rank error; AUROC of a held-out comparison's uncertainty "
          "sqrt(u_a² + u_b²) for a mispredicted winner (0.5 = no information), the same for margin/uncertainty "
          "(lower = more likely wrong) and for the margin alone; mean rank error (share of the ranking) of rare and "
          "common images; prediction time.", "",
          "| method | AUROC rare content | unc. vs rank error | AUROC pair unc. | AUROC margin/unc. | AUROC margin | "
          "rank error rare / common | val pairwise | ms per 1k images |",
          "|---|---|---|---|---|---|---|---|---|"]
    for m, *_ in CALIBRATION_VARIANTS:
        r = c[m]
        L.append(f"| {m} | {r['auroc_rare_content']:.3f} ± {r['sd_auroc_rare_content']:.3f} | "
                 f"{r['image_spearman_unc_vs_rank_error']:.3f} ± {r['sd_image_spearman_unc_vs_rank_error']:.3f} | "
                 f"{r['auroc_pair_uncertainty']:.3f} ± {r['sd_auroc_pair_uncertainty']:.3f} | "
                 f"{r['auroc_margin_over_uncertainty']:.3f} | {r['auroc_margin_only']:.3f} | "
                 f"{r['rank_error_rare']:.3f} / {r['rank_error_common']:.3f} | {r['val_pairwise']:.3f} | "
                 f"{r['predict_ms_per_1k_images']:.1f} |")
    L.append("")

    t = res["layout"]
    L += [f"### Tags: one token per tag vs one pooled token, and the similarity input ({t['seeds']} seeds, "
          "2,000 images, 20,000 comparisons, D = 64)", "",
          "The pooled token (normalised mean of an image's tag embeddings) stands in for encoding all tags as one "
          "text; the synthetic task has no text encoder, so this is a proxy.", "",
          "| tag layout | val pairwise | held-out SRCC vs truth |", "|---|---|---|"]
    for k, label in (("per_tag", "one token per tag (default)"), ("one_token", "one pooled token"),
                     ("per_tag_no_similarity", "one token per tag, without the similarity input")):
        L.append(f"| {label} | {t[k]['val_pairwise']:.3f} | {t[k]['heldout_srcc_truth']:.3f} ± {t[k]['sd_srcc']:.3f} |")
    L.append("")
    return "\n".join(L)


def measure(res: dict, quick: bool, groups: list[str]) -> None:
    """Run the phases of the named groups into ``res`` (replacing what it held for them)."""
    for g in groups:
        if g in ("encoder", "train", "tokens", "rescore"):
            res[g] = []
    if "encoder" in groups:
        for threads in (1, 2):
            res["encoder"].append(run_phase("encoder", "tiny", 128 if quick else 512, 128 if quick else 512, threads))
            res["encoder"].append(run_phase("encoder", "vit-b32", 16 if quick else 64, 16 if quick else 64, threads))
    if "rescore" in groups:
        for threads in (1, 2):
            res["rescore"].append(run_phase("rescore", threads))
    if "tokens" in groups:
        for tokens in (5, 10, 50):
            res["tokens"].append(run_phase("tokens", tokens, 1))
        res["tokens"].append(run_phase("tokens", 5, 2))
    if "train" in groups:
        runs = [(10000, 64, 1, "tags", 1, 1), (100000, 64, 1, "tags", 1, 1), (100000, 64, 1, "tags", 2, 1)]
        if not quick:
            runs += [(10000, 64, 1, "tags", 2, 1), (100000, 32, 1, "tags", 1, 1), (100000, 128, 1, "tags", 1, 1),
                     (100000, 64, 2, "tags", 1, 1), (100000, 64, 1, "tags", 1, 0), (10000, 64, 1, "tags", 1, 0),
                     (100000, 64, 1, "image_only", 1, 1), (10000, 64, 1, "image_only", 1, 1)]
        for run in runs:
            res["train"].append(run_phase("train", *run))
    if "calibration" in groups:
        res["calibration"] = run_phase("calibration", 1, 1 if quick else 3)
    if "layout" in groups:
        res["layout"] = run_phase("layout", 1, 1 if quick else 3)


GROUPS = ["encoder", "rescore", "tokens", "train", "calibration", "layout"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--phase", nargs="+", help="(internal) run one measurement and print it as JSON")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--redo", help=f"comma-separated groups out of {','.join(GROUPS)} to measure again; "
                                  "the others are read from var/benchmark-ranker.json")
    args = p.parse_args()
    if args.phase:
        name, rest = args.phase[0], args.phase[1:]
        a = argparse.Namespace(name=None, n_images=0, n_texts=0, comparisons=0, width=64, layers=1,
                               kind="tags", threads=1, tokens=5, seeds=3, similarity=True)
        if name == "encoder":
            a.name, a.n_images, a.n_texts, a.threads = rest[0], int(rest[1]), int(rest[2]), int(rest[3])
        elif name == "train":
            a.comparisons, a.width, a.layers, a.kind, a.threads = int(rest[0]), int(rest[1]), int(rest[2]), rest[3], int(rest[4])
            a.similarity = len(rest) < 6 or rest[5] == "1"
        elif name == "tokens":
            a.tokens, a.threads = int(rest[0]), int(rest[1])
        elif name in ("rescore", "calibration", "layout"):
            a.threads = int(rest[0])
            if len(rest) > 1:
                a.seeds = int(rest[1])
        result = PHASES[name](a)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    t0 = time.perf_counter()
    saved = REPO / "var" / "benchmark-ranker.json"
    if args.redo:
        res = json.loads(saved.read_text())
        groups = args.redo.split(",")
        measure(res, args.quick, groups)
        res["total_minutes"] += (time.perf_counter() - t0) / 60
        res.setdefault("redone", []).append({"groups": groups, "at": time.strftime("%Y-%m-%d %H:%M")})
    else:
        res = {}
        measure(res, args.quick, GROUPS)
        res["total_minutes"] = (time.perf_counter() - t0) / 60
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps(res, indent=2))
    command = "python benchmarks/ranker.py" + (" --quick" if args.quick else "")
    for redo in res.get("redone", []):
        command += f"`, then `python benchmarks/ranker.py --redo {','.join(redo['groups'])}"
    section = build_section(res, command)
    print(section)
    if not args.quick:
        replace_docs_section(REPO / "docs" / "benchmarks.md", "## Ranker: encoder, head training, rescoring", section)
        print(f"wrote {REPO / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
