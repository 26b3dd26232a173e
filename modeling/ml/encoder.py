"""Frozen CLIP encoder: images -> tokens in the joint space, tag texts -> one embedding each.

    enc = load_encoder("tiny")                      # or a hub id, or a local folder
    image_tokens = enc.encode_images(pil_images)    # [B, T, D] float32, T = 1 + regions**2
    tag_emb = enc.encode_texts(["sunset", "beach"]) # [K, D] float32, L2-normalised

Image tokens: CLIP's class token, plus the patch tokens average-pooled to a regions x regions
grid (2 x 2 by default, so T = 5), each passed through the post layer norm and the visual
projection and L2-normalised. Pooling keeps the head cheap on CPU: a ViT-B/32 has 49 patches,
a ViT-L/14 256, and head training time grows with T (docs/benchmarks.md).

Preprocessing is transformers' ``CLIPImageProcessor`` (PIL backend), with a folder's own
``preprocessor_config.json`` when it has one. Device and precision come from ``TAGRANK_DEVICE``
(``modeling.ml.device``): the weights stay float32 and CUDA runs under bf16/fp16 autocast.

``tiny`` is a small CLIP built in code from a ``CLIPConfig`` with seeded weights and an offline
byte-level ``CLIPTokenizer`` (no merges: every word is split into byte symbols). It never
downloads anything; it exists for tests and the offline demo, its features carry no meaning.
Note for the tokenizer: the text config's bos/eos/pad ids must equal the tokenizer's, because
CLIP pools the text at the first eos token.

transformers is imported lazily, so importing this module (or modeling.ml) stays cheap.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .similarity import image_tag_similarity

TINY_ID = "tiny-v1"
DEFAULT_REGIONS = 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Encoder:
    """A frozen CLIPModel with its tokenizer and image preprocessing."""

    def __init__(self, model, tokenizer, encoder_id: str, device: str | None = None, mean=CLIP_MEAN, std=CLIP_STD,
                 regions: int = DEFAULT_REGIONS, batch_size: int = 32, processor=None):
        import torch

        from .device import runtime

        self.torch = torch
        self.runtime = runtime(device)                 # device None = TAGRANK_DEVICE
        self.device = self.runtime.device
        # Weights stay float32; on CUDA autocast runs the matmuls in bf16/fp16 and keeps the norms in fp32.
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        self.tokenizer = tokenizer
        self.encoder_id = encoder_id if regions == DEFAULT_REGIONS else f"{encoder_id}@regions={regions}"
        self.regions = regions
        vision = model.config.vision_config
        self.image_size = vision.image_size
        self.grid = vision.image_size // vision.patch_size
        self.dim = model.config.projection_dim
        self.n_tokens = 1 + regions * regions
        self.max_text_len = model.config.text_config.max_position_embeddings
        # ~ activations of one image through the vision tower under autocast (2 bytes, x 24 per layer)
        per_image = 2 * 24 * (self.grid * self.grid + 1) * vision.hidden_size * vision.num_hidden_layers
        self.batch_size = self.runtime.batch_size(batch_size, per_image)
        self.processor = processor or clip_processor(self.image_size, mean, std)

    # -- images ---------------------------------------------------------------------------------
    def encode_images(self, images, batch_size: int | None = None) -> np.ndarray:
        """PIL images -> tokens [B, T, D] float32 (class token, then the region tokens)."""
        torch = self.torch
        bs = batch_size or self.batch_size
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), bs):
                batch = [im.convert("RGB") for im in images[i:i + bs]]
                px = self.processor(images=batch, return_tensors="pt")["pixel_values"]  # [b,3,s,s]
                with self.runtime.autocast():
                    hidden = self.model.vision_model(pixel_values=px.to(self.device)).last_hidden_state
                    hidden = self.model.vision_model.post_layernorm(hidden)        # [b,1+g*g,H]
                    cls, patches = hidden[:, :1], hidden[:, 1:]
                    b, _, H = patches.shape
                    grid = patches.transpose(1, 2).reshape(b, H, self.grid, self.grid)
                    regions = torch.nn.functional.adaptive_avg_pool2d(grid.float(), self.regions)
                    regions = regions.flatten(2).transpose(1, 2).to(hidden.dtype)  # [b,r*r,H]
                    tokens = self.model.visual_projection(torch.cat([cls, regions], dim=1))  # [b,T,D]
                tokens = torch.nn.functional.normalize(tokens.float(), dim=-1)
                out.append(tokens.cpu().numpy())
        if not out:
            return np.zeros((0, self.n_tokens, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    # -- texts ----------------------------------------------------------------------------------
    def encode_texts(self, texts, batch_size: int | None = None) -> np.ndarray:
        """Texts -> L2-normalised embeddings [B, D] float32. Sorted by length to pad less."""
        torch = self.torch
        texts = list(texts)
        bs = batch_size or self.batch_size
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(texts), bs):
                idx = order[i:i + bs]
                tok = self.tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                     max_length=self.max_text_len, return_tensors="pt")
                with self.runtime.autocast():
                    pooled = self.model.text_model(input_ids=tok["input_ids"].to(self.device),
                                                   attention_mask=tok["attention_mask"].to(self.device)).pooler_output
                    emb = self.model.text_projection(pooled)
                emb = torch.nn.functional.normalize(emb.float(), dim=-1)
                out[idx] = emb.cpu().numpy()
        return out

    def similarity(self, image_tokens, tag_tokens, tag_mask=None) -> np.ndarray:
        """Image-tags CLIP cosine similarity [B]; see ``image_tag_similarity``."""
        return image_tag_similarity(image_tokens, tag_tokens, tag_mask)


# -- building --------------------------------------------------------------------------------------
def clip_processor(image_size: int, mean=CLIP_MEAN, std=CLIP_STD):
    """transformers' CLIPImageProcessor (PIL backend): RGB, shortest side to image_size (bicubic), centre crop, normalise."""
    from transformers import CLIPImageProcessorPil  # the PIL backend: no torchvision needed

    return CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                              image_mean=list(mean), image_std=list(std))


def tiny_tokenizer():
    """An offline CLIPTokenizer: the 256 byte symbols, the same with </w>, and the two specials."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])  # unk, eos and pad are all <|endoftext|> = 1


def tiny_model(seed: int = 0):
    """A small CLIP (64x64 images, 16x16 patches, width 32, 2 layers, D = 64) with seeded weights."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    tok = tiny_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
        torch.manual_seed(seed)
        model = CLIPModel(config)
    return model, tok


def encoder_id(name: str) -> str:
    """The id ``load_encoder(name)`` reports at the default regions, without loading anything: the one map from
    an encoder name (``quality-stats``, ``tiny``, a hub id, a local folder) to the id features are stored under."""
    from .quality_stats import QUALITY_STATS, QUALITY_STATS_ID

    if name == QUALITY_STATS:
        return QUALITY_STATS_ID
    if name == "tiny":
        return TINY_ID
    if os.path.isdir(name):
        return str(Path(name).resolve())
    return name


def load_encoder(name: str | None = None, device: str | None = None, regions: int = DEFAULT_REGIONS,
                 batch_size: int = 32) -> Encoder:
    """``quality-stats`` (no weights: modeling.ml.quality_stats), ``tiny``, a hub id, or a local folder;
    ``None`` reads TAGRANK_ENCODER (default ``quality-stats``).

    device: None reads TAGRANK_DEVICE (modeling.ml.device). The encoder id is ``tiny-v1``, the hub id, or the
    folder's absolute path, with ``@regions=N`` appended when regions is not the default.
    """
    from .quality_stats import QUALITY_STATS, QualityStatsConfig, QualityStatsEncoder

    name = name or os.environ.get("TAGRANK_ENCODER", QUALITY_STATS)
    if name == QUALITY_STATS:
        return QualityStatsEncoder(QualityStatsConfig(regions=regions))

    import torch

    if name == "tiny":
        model, tok = tiny_model()
        return Encoder(model, tok, encoder_id(name), device, regions=regions, batch_size=batch_size)

    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    processor = None
    if not os.path.isdir(name) or (Path(name) / "preprocessor_config.json").exists():  # a folder's own, if it has one
        processor = CLIPImageProcessorPil.from_pretrained(name)
    model = CLIPModel.from_pretrained(name, dtype=torch.float32)
    tok = CLIPTokenizer.from_pretrained(name)
    return Encoder(model, tok, encoder_id(name), device, regions=regions, batch_size=batch_size, processor=processor)
