"""Where the ranker and the encoder run, and in which precision: one setting, ``TAGRANK_DEVICE``.

    rt = runtime()                      # reads TAGRANK_DEVICE: auto | cpu | cuda | cuda:N
    model.to(rt.device)
    with rt.autocast():                 # bf16 (or fp16) autocast on CUDA; a no-op on CPU
        out = model(x)
    scaler = rt.grad_scaler()           # loss scaling only for fp16; a pass-through otherwise

auto: CUDA when present, with autocast in bf16 where the GPU supports it, else fp16; CPU in fp32.
Weights always stay float32 (autocast casts per operation), so a checkpoint is the same whichever
device trained it. Asking for CUDA on a host without it is an error, never a silent CPU run.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

SETTING = "TAGRANK_DEVICE"


class DeviceUnavailable(RuntimeError):
    """CUDA was asked for (TAGRANK_DEVICE=cuda) but this host has none."""


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype           # compute dtype under autocast; float32 = no autocast
    requested: str               # the setting it came from

    @property
    def amp(self) -> bool:
        return self.dtype != torch.float32

    def autocast(self):
        """Mixed precision for a forward pass (and its loss); does nothing in fp32."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> "torch.amp.GradScaler":
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (disabled scaler)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def batch_size(self, base: int, item_bytes: int = 0, fraction: float = 0.25) -> int:
        """``base`` on CPU; on CUDA, as many items as fit in ``fraction`` of the free memory, at
        least ``base`` and a power of two times it (at most 64x). ``item_bytes``: device memory one
        item needs (activations included); 0 = keep ``base``."""
        if self.device.type != "cuda" or item_bytes <= 0:
            return base
        free, _total = torch.cuda.mem_get_info(self.device)
        fit = int(free * fraction) // item_bytes
        size = base
        while size * 2 <= fit and size < 64 * base:
            size *= 2
        return size

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"{self.device} ({name}), {str(self.dtype).replace('torch.', '')}" + (" autocast" if self.amp else "")


def runtime(setting: str | None = None) -> Runtime:
    """The Runtime for a setting (None reads TAGRANK_DEVICE, default auto)."""
    requested = (setting or os.environ.get(SETTING) or "auto").strip().lower()
    if requested == "auto":
        requested_device = "cuda" if torch.cuda.is_available() else "cpu"
    elif requested == "cpu" or requested.startswith("cuda"):
        requested_device = requested
    else:
        raise ValueError(f"{SETTING} must be auto, cpu or cuda[:N], got {requested!r}")
    if requested_device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"{SETTING}={requested} but torch finds no CUDA device on this host "
                                    f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
        device = torch.device(requested_device)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Runtime(device, dtype, requested)
    return Runtime(torch.device("cpu"), torch.float32, requested)


def cuda_available() -> bool:
    return torch.cuda.is_available()
