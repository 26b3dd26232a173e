"""The rankers: a tag-aware cross-attention head and the image-only NIMA baseline.

Both read frozen CLIP features and predict a softmax over the scores 1..10.

    TagRanker:       image tokens [B,T,D] --proj--> [B,T,W]
                     tag tokens   [B,K,D] --proj--> [B,K,W]  + cos(image, tag) * a learned vector
                                                   (+ a learned null tag, used when K = 0)
                     L x (image tokens attend to tag tokens, residual; then an MLP, residual)
                     mean-pool over T -> E score heads (MLP) -> [B,E,10] softmax

    ImageOnlyRanker: [class token, mean of region tokens] -> dropout, linear, ReLU -> E score heads

Each tag token carries its CLIP cosine similarity to the image (``tag_similarity``): the poster's
observation that image-tag similarity matters, given to the fusion as an input. Without it the
plain cross-attention needs far more data to find the tag signal on the synthetic task (measured in
docs/benchmarks.md); ``tag_similarity=False`` turns it off.

Uncertainty: an ensemble of small score heads on a shared trunk (``uncertainty="ensemble"``, the
default; training gives each head a Poisson(1) bootstrap of the data) or MC dropout
(``uncertainty="mc_dropout"``, dropout kept on in the score head for ``mc_samples`` passes). An
image's uncertainty is the standard deviation of its mean score across heads (or passes). Measured
on held-out images and comparisons of a synthetic set with rare contents (benchmarks/ranker.py,
docs/benchmarks.md), neither is well calibrated: rare-content images get higher uncertainty only a
little above chance, the correlation with rank error is about 0 for the ensemble and negative for
MC dropout, and neither predicts a
mispredicted comparison better than the score margin alone. The ensemble is the better of the two
on those measures and needs one forward pass instead of 16, so it is the default. Treat the
uncertainty as a weak signal.

Explanations: ``forward`` returns ``tag_attention`` [B,K], the cross-attention weight each tag
received, averaged over layers, heads and image tokens. For an image with tags the weights sum to
1; an image without tags attends only to the null tag and gets all zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RankerConfig:
    input_dim: int = 512       # D, the CLIP joint embedding size of the cached features
    width: int = 128           # W, the head's internal width
    layers: int = 1            # cross-attention blocks
    heads: int = 4             # attention heads per block
    dropout: float = 0.1
    n_bins: int = 10           # scores 1..n_bins
    mlp_ratio: int = 2
    ensemble: int = 4          # E score heads; their spread is the uncertainty
    uncertainty: str = "ensemble"   # "ensemble" | "mc_dropout"
    mc_samples: int = 16       # forward passes for MC dropout
    tag_similarity: bool = True     # give each tag token its CLIP cosine similarity to the image


class CrossAttention(nn.Module):
    """Image tokens (queries) attend to tag tokens (keys/values)."""

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        assert cfg.width % cfg.heads == 0, "width must be divisible by heads"
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.width, cfg.width)
        self.kv = nn.Linear(cfg.width, 2 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def forward(self, x, tags, mask):
        # x [B,T,W], tags [B,K,W], mask [B,K] bool (True = a real token)
        B, T, W = x.shape
        K, H = tags.shape[1], self.heads
        q = self.q(x).view(B, T, H, W // H).transpose(1, 2)                 # [B,H,T,W/H]
        k, v = self.kv(tags).view(B, K, 2, H, W // H).permute(2, 0, 3, 1, 4)  # 2 x [B,H,K,W/H]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(W // H)                  # [B,H,T,K]
        att = att.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(dim=-1)
        y = att @ v                                                          # [B,H,T,W/H]
        y = y.transpose(1, 2).reshape(B, T, W)
        return self.out(y), att


class Block(nn.Module):
    """Pre-norm residual block: cross-attention to the tags, then an MLP."""

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        self.ln_x = nn.LayerNorm(cfg.width)
        self.ln_tags = nn.LayerNorm(cfg.width)
        self.attn = CrossAttention(cfg)
        self.ln_mlp = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width), nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width),
        )

    def forward(self, x, tags, mask):
        # No dropout at token level: it cost ~10% of a CPU training step; the score heads have it.
        a, att = self.attn(self.ln_x(x), self.ln_tags(tags), mask)
        x = x + a
        x = x + self.mlp(self.ln_mlp(x))
        return x, att


class ScoreHeads(nn.Module):
    """E independent small MLPs from a pooled vector [B,W] to logits [B,E,n_bins]."""

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        n = cfg.ensemble if cfg.uncertainty == "ensemble" else 1
        self.n = n
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, cfg.width), nn.GELU(),
                          nn.Dropout(cfg.dropout), nn.Linear(cfg.width, cfg.n_bins))
            for _ in range(n)
        )

    def forward(self, pooled):
        return torch.stack([h(pooled) for h in self.heads], dim=1)  # [B,E,n_bins]


class _Ranker(nn.Module):
    """What both rankers share: logits -> distribution and mean score, and ``predict``."""

    kind = ""

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        if cfg.uncertainty not in ("ensemble", "mc_dropout"):
            raise ValueError(f"unknown uncertainty method {cfg.uncertainty!r}")
        self.cfg = cfg
        self.score_heads = ScoreHeads(cfg)
        self.register_buffer("bins", torch.arange(1, cfg.n_bins + 1, dtype=torch.float32), persistent=False)

    def _outputs(self, logits, tag_attention):
        # logits [B,E,n_bins]. In fp32 even under autocast: a bf16 expected score is off by ~0.03 points.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            head_dist = logits.float().softmax(dim=-1)   # [B,E,n_bins]
            head_means = head_dist @ self.bins           # [B,E]  each head's expected score, in 1..10
        return {
            "logits": logits,
            "head_dist": head_dist,
            "head_means": head_means,
            "dist": head_dist.mean(dim=1),           # [B,n_bins]  the ensemble's distribution
            "mean": head_means.mean(dim=1),          # [B]
            "tag_attention": tag_attention,          # [B,K] or None
        }

    @torch.no_grad()
    def predict(self, image_tokens, tag_tokens=None, tag_mask=None):
        """(mean [B], dist [B,n_bins], uncertainty [B]); leaves the module in eval mode."""
        self.eval()
        if self.cfg.uncertainty == "ensemble":
            out = self(image_tokens, tag_tokens, tag_mask)
            unc = out["head_means"].std(dim=1, unbiased=False)
            return out["mean"], out["dist"], unc
        # MC dropout: dropout stays on, S stochastic passes.
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train()
        try:
            outs = [self(image_tokens, tag_tokens, tag_mask) for _ in range(self.cfg.mc_samples)]
        finally:
            self.eval()
        means = torch.stack([o["mean"] for o in outs], dim=1)   # [B,S]
        dist = torch.stack([o["dist"] for o in outs], dim=1).mean(dim=1)
        return means.mean(dim=1), dist, means.std(dim=1, unbiased=False)


class TagRanker(_Ranker):
    kind = "tags"

    def __init__(self, cfg: RankerConfig):
        super().__init__(cfg)
        W = cfg.width
        self.image_proj = nn.Linear(cfg.input_dim, W)
        self.tag_proj = nn.Linear(cfg.input_dim, W)
        self.null_tag = nn.Parameter(torch.randn(1, 1, W) * 0.02)  # what a tagless image attends to
        # Each tag token also carries its CLIP cosine similarity to the image, times a learned vector.
        self.similarity_embed = nn.Parameter(torch.randn(W) * 0.02) if cfg.tag_similarity else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_out = nn.LayerNorm(W)

    def forward(self, image_tokens, tag_tokens=None, tag_mask=None, tag_vocab=None):
        # image_tokens [B,T,D]; tag_tokens [B,K,D], or [B,K] indices into tag_vocab [V,D]; tag_mask [B,K] bool
        B = image_tokens.shape[0]
        if tag_tokens is None or tag_tokens.shape[1] == 0:
            tag_tokens = image_tokens.new_zeros(B, 0, self.cfg.input_dim)
            tag_mask = torch.zeros(B, 0, dtype=torch.bool, device=image_tokens.device)
            tag_vocab = None
        image_cls = F.normalize(image_tokens[:, 0], dim=-1)                      # [B,D]
        if tag_vocab is not None:
            # Training shortcut: images share tags, so project each distinct tag of the batch once.
            used, index = torch.unique(tag_tokens, return_inverse=True)          # index [B,K] into used
            distinct = tag_vocab[used]                                           # [U,D]
            projected = self.tag_proj(distinct)[index]                           # [B,K,W]
            if self.similarity_embed is not None:
                sim_all = image_cls @ F.normalize(distinct, dim=-1).T            # [B,U]
                similarity = sim_all.gather(1, index)                            # [B,K]
        else:
            projected = self.tag_proj(tag_tokens)                                # [B,K,W]
            if self.similarity_embed is not None:
                similarity = torch.einsum("bd,bkd->bk", image_cls, F.normalize(tag_tokens, dim=-1))
        if self.similarity_embed is not None:
            projected = projected + similarity[..., None] * self.similarity_embed
        x = self.image_proj(image_tokens)                                        # [B,T,W]
        tags = torch.cat([self.null_tag.expand(B, 1, -1), projected], dim=1)     # [B,1+K,W]
        # The null tag is visible only to images without tags, so real tags' weights sum to 1.
        has_tags = tag_mask.any(dim=1, keepdim=True)                             # [B,1]
        mask = torch.cat([~has_tags, tag_mask], dim=1)                           # [B,1+K]
        att_sum = 0.0
        for block in self.blocks:
            x, att = block(x, tags, mask)                                        # att [B,H,T,1+K]
            att_sum = att_sum + att.mean(dim=(1, 2))
        pooled = self.ln_out(x).mean(dim=1)                                      # [B,W]
        tag_attention = (att_sum / len(self.blocks))[:, 1:]                      # [B,K]
        return self._outputs(self.score_heads(pooled), tag_attention)


class ImageOnlyRanker(_Ranker):
    """NIMA-style baseline on the same frozen image features: dropout, linear, 10-bin softmax."""

    kind = "image_only"

    def __init__(self, cfg: RankerConfig):
        super().__init__(cfg)
        self.trunk = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.input_dim, cfg.width), nn.ReLU(),
        )

    def forward(self, image_tokens, tag_tokens=None, tag_mask=None, tag_vocab=None):
        # image_tokens [B,T,D]; token 0 is CLIP's class token, the rest are region tokens. Tags unused.
        cls = image_tokens[:, 0]                                                  # [B,D]
        regions = image_tokens[:, 1:].mean(dim=1) if image_tokens.shape[1] > 1 else cls
        pooled = self.trunk(torch.cat([cls, regions], dim=-1))                    # [B,W]
        return self._outputs(self.score_heads(pooled), None)


RANKERS = {"tags": TagRanker, "image_only": ImageOnlyRanker}


def build_ranker(kind: str, cfg: RankerConfig) -> _Ranker:
    if kind not in RANKERS:
        raise ValueError(f"model kind must be one of {sorted(RANKERS)}, got {kind!r}")
    return RANKERS[kind](cfg)
