"""The devices a test runs on: the CPU always, CUDA when this host has it (the only allowed skip)."""
import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA on this host")),
]
