"""The linear Bradley–Terry head (``linear_bt.py``) as a scoring module: what a model version of kind
``linear_bt`` stores, loads (``checkpoints.py``) and scores images with (``training.score_images``),
like the rankers of ``ranker.py``.

    module = LinearScorer.from_head(head, RankerConfig(input_dim=D))
    mean, dist, uncertainty = module.predict(image_tokens, tag_tokens, tag_mask)   # [B], [B,10], [B]

Scale. The head's score ``s`` is on the Bradley–Terry scale; the stored mean is ``1 + 9 sigmoid(s / 2)``,
in 1..10 like a ranker's and in the same order as ``s``; ``dist`` a discretised normal around it (unit
spread); ``uncertainty`` the Laplace standard deviation of ``s`` (diagonal of the weights' posterior),
carried to the 1..10 scale by the slope of that map.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .linear_bt import LinearBT
from .ranker import RankerConfig

KIND = "linear_bt"


class LinearScorer(nn.Module):
    kind = KIND

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        self.cfg = cfg
        F = 3 * cfg.input_dim  # pooled: whole-image token, mean of the other tokens, mean of the tags
        self.weight = nn.Parameter(torch.zeros(F), requires_grad=False)  # a parameter: callers read its device
        self.register_buffer("center", torch.zeros(F))
        self.register_buffer("scale", torch.zeros(F))
        self.register_buffer("weight_var", torch.zeros(F))  # Laplace variance of each weight

    @classmethod
    def from_head(cls, head: LinearBT, cfg: RankerConfig) -> "LinearScorer":
        module = cls(cfg)
        with torch.no_grad():
            module.weight.copy_(torch.as_tensor(head.weight, dtype=torch.float32))
            module.center.copy_(torch.as_tensor(head.center, dtype=torch.float32))
            module.scale.copy_(torch.as_tensor(head.scale, dtype=torch.float32))
            module.weight_var.copy_(torch.as_tensor(head.extra.get("weight_var", np.zeros_like(head.weight)),
                                                    dtype=torch.float32))
        return module.eval()

    def pooled(self, image_tokens, tag_tokens=None, tag_mask=None):
        # image_tokens [B,T,D], tag_tokens [B,K,D], tag_mask [B,K] -> [B,3D], as linear_bt.pooled_features
        first = image_tokens[:, 0]
        rest = image_tokens[:, 1:].mean(dim=1) if image_tokens.shape[1] > 1 else first
        if tag_tokens is None or tag_tokens.shape[1] == 0:
            tags = torch.zeros_like(first)
        else:
            mask = tag_mask.to(first.dtype).unsqueeze(-1)  # [B,K,1]
            tags = (tag_tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.cat([first, rest, tags], dim=1)

    def forward(self, image_tokens, tag_tokens=None, tag_mask=None) -> dict:
        live = self.scale > 0
        z = torch.where(live, (self.pooled(image_tokens, tag_tokens, tag_mask) - self.center)
                        / torch.where(live, self.scale, torch.ones_like(self.scale)), torch.zeros_like(self.scale))
        score = z @ self.weight  # [B], Bradley–Terry scale
        score_std = torch.sqrt((z * z) @ self.weight_var)  # [B]
        squash = torch.sigmoid(score / 2)
        mean = 1.0 + 9.0 * squash  # [B] in 1..10
        bins = torch.arange(1, self.cfg.n_bins + 1, dtype=mean.dtype, device=mean.device)
        logits = -0.5 * (bins[None, :] - mean[:, None]) ** 2
        return {"mean": mean, "dist": torch.softmax(logits, dim=1), "score": score,
                "uncertainty": 4.5 * squash * (1 - squash) * score_std, "tag_attention": None}

    def predict(self, image_tokens, tag_tokens=None, tag_mask=None):
        """(mean [B], dist [B,n_bins], uncertainty [B])."""
        self.eval()
        with torch.no_grad():
            out = self(image_tokens, tag_tokens, tag_mask)
        return out["mean"], out["dist"], out["uncertainty"]


def build_linear_scorer(cfg: RankerConfig) -> LinearScorer:
    return LinearScorer(cfg)
