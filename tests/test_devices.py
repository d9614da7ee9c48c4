"""Mixed precision only where the processor computes bf16 in hardware."""

from __future__ import annotations

import torch

from core.devices import autocast_context, cpu_has_bf16


def _conv_dtype() -> torch.dtype:
    conv = torch.nn.Conv2d(1, 1, 3)
    with autocast_context(torch.device("cpu"), enabled=True):
        return conv(torch.zeros(1, 1, 8, 8)).dtype


def test_cpu_autocast_follows_the_processor_and_the_override(monkeypatch):
    try:
        monkeypatch.setenv("DEBLUR_CPU_BF16", "0")
        cpu_has_bf16.cache_clear()
        assert not cpu_has_bf16() and _conv_dtype() == torch.float32   # emulated bf16: off
        monkeypatch.setenv("DEBLUR_CPU_BF16", "1")
        cpu_has_bf16.cache_clear()
        assert cpu_has_bf16() and _conv_dtype() == torch.bfloat16
    finally:
        monkeypatch.delenv("DEBLUR_CPU_BF16")
        cpu_has_bf16.cache_clear()
    assert isinstance(cpu_has_bf16(), bool)          # from the feature flags: same every call
    assert cpu_has_bf16() == cpu_has_bf16()
