"""TAGRANK_DEVICE -> device and precision, on any host (CUDA's presence is simulated where needed)."""
import pytest
import torch

from modeling.ml import device as dev


def test_cpu_is_fp32_without_autocast_or_loss_scaling():
    rt = dev.runtime("cpu")
    assert rt.device == torch.device("cpu") and rt.dtype == torch.float32 and not rt.amp
    with rt.autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert not rt.grad_scaler().is_enabled()
    assert rt.batch_size(64, item_bytes=10**6) == 64


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TAGRANK_DEVICE", "cpu")
    assert dev.runtime().requested == "cpu"
    monkeypatch.setenv("TAGRANK_DEVICE", "tpu")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        dev.runtime()


def test_cuda_requested_but_missing_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(dev.DeviceUnavailable, match="no CUDA"):
        dev.runtime("cuda")
    assert dev.runtime("auto").device.type == "cpu"      # auto falls back to the CPU, in fp32
    assert dev.runtime("auto").dtype == torch.float32


@pytest.mark.parametrize("bf16, dtype, scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_auto_on_cuda_picks_bf16_where_supported_else_fp16_with_loss_scaling(monkeypatch, bf16, dtype, scaled):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    rt = dev.runtime("auto")
    assert rt.device.type == "cuda" and rt.dtype == dtype and rt.amp
    assert (rt.dtype == torch.float16) is scaled         # GradScaler is enabled for fp16 only


def test_batch_size_grows_with_free_memory(monkeypatch):
    rt = dev.Runtime(torch.device("cuda"), torch.bfloat16, "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *_: (8 * 2**30, 80 * 2**30))
    big = rt.batch_size(32, item_bytes=2**20)             # 2 GiB usable / 1 MiB an item -> 2048
    assert big == 2048
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *_: (64 * 2**20, 80 * 2**30))
    assert rt.batch_size(32, item_bytes=2**20) == 32      # never below the base
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *_: (10**15, 10**15))
    assert rt.batch_size(32, item_bytes=1) == 32 * 64     # capped
