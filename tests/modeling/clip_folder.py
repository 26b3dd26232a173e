"""A folder in the layout of the hub's openai/clip-vit-base-patch32, with random weights and CLIP's
real tokenizer files, for tests of the real-CLIP path without a download.

The tokenizer files are built from CLIP's BPE merges list as shipped in open_clip_torch's wheel
(``open_clip/bpe_simple_vocab_16e6.txt.gz``, a test-only file installed with ``--no-deps``): the
vocabulary is the 256 byte symbols, the same with ``</w>``, one entry per merge, then the two
specials, which is how CLIP numbers its 49,408 tokens. The model keeps the hub config's layout and
token ids, with smaller hidden sizes and 2 layers so that it runs in seconds on a CPU.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file

# openai/clip-vit-base-patch32's preprocessor_config.json, as on the hub.
PREPROCESSOR = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "size": 224,
}


def bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")  # located, not imported: open_clip's own deps are not installed
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open_clip_torch is not installed: `pip install --no-deps open_clip_torch==3.3.0` "
                           "(the Makefile's venv target does)")
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def byte_symbols() -> list[str]:
    """GPT-2 / CLIP's printable stand-in for each byte, in byte order: printable Latin-1 bytes stand for
    themselves, the others are mapped to code points from 256 up, in the order they appear."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbol, extra = {}, 0
    for b in range(256):
        if b in keep:
            symbol[b] = chr(b)
        else:
            symbol[b] = chr(256 + extra)
            extra += 1
    return [symbol[b] for b in keep] + [symbol[b] for b in range(256) if b not in keep]


def write_tokenizer_files(folder: Path) -> tuple[dict, list]:
    """vocab.json and merges.txt as on the hub; returns (vocab, merges)."""
    lines = gzip.open(bpe_file()).read().decode("utf-8").split("\n")[1:N_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return vocab, merges


def build_clip_folder(folder: Path, seed: int = 0) -> Path:
    """Write config.json, model.safetensors, preprocessor_config.json, vocab.json, merges.txt and the
    tokenizer's own files, as ``CLIPModel/CLIPTokenizer.save_pretrained`` lay out a hub checkpoint."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = write_tokenizer_files(folder)
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)  # tokenizer.json, tokenizer_config.json
    # The hub config of openai/clip-vit-base-patch32 (ids, vocabulary, 77 positions, 224 px, patch 32,
    # projection 512), with hidden sizes 768/512 -> 64 and 12 layers -> 2.
    text = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=2, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                hidden_act="quick_gelu")
    vision = dict(image_size=224, patch_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=2, hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=512, logit_scale_init_value=2.6592)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
    return folder
