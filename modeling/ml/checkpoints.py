"""Ranker checkpoints: one file with the weights, the ranker config and a JSON meta, checksummed.

    save_checkpoint("model.pt", result, {"encoder_id": enc.encoder_id})   # a TrainResult or a bare ranker
    model, meta = load_checkpoint("model.pt")                            # or CheckpointError
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from .device import runtime
from .json_values import plain_json
from .linear_scorer import KIND as LINEAR_KIND
from .linear_scorer import build_linear_scorer
from .ranker import RankerConfig, build_ranker
from .training import TrainResult

CHECKPOINT_FORMAT = "tagrank-ranker"
CHECKPOINT_VERSION = 1


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
        model = build_linear_scorer(cfg) if payload["kind"] == LINEAR_KIND else build_ranker(payload["kind"], cfg)
        model.load_state_dict(state)
        meta = json.loads(payload["meta"])
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: invalid checkpoint contents ({type(e).__name__}: {e})") from e
    return model.to(device).eval(), meta
