"""Device choice (auto / cpu / cuda / mps) and the mixed-precision policy.

bf16 autocast on CPU is much faster than float32 on processors with bf16 instructions
(AVX512-BF16, AMX, Arm BF16); whether it is on by default is decided per model from its
measured cost in PSNR (docs/BENCHMARKS.md, "Design measurements"), so the switch lives in one
place. On a processor WITHOUT them (e.g. an AVX2-only workstation) PyTorch emulates bf16 and
COMI ran 70x slower than in float32 (0.087 s against 6.2 s per 320 px tile, measured): there
autocast is skipped on the CPU (`cpu_has_bf16`), whatever the model asks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from typing import Iterator

import torch

__all__ = ["DeviceError", "pick_device", "autocast_context", "device_label", "available_devices",
           "configure_threads", "cpu_has_bf16"]


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def available_devices() -> list[str]:
    """Devices usable here, in the order the GUI offers them."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then CPU; an unavailable explicit choice is an error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available on this computer")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("Apple MPS was requested but is not available on this computer")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or mps)")


def device_label(device: torch.device) -> str:
    """Plain name for the GUI indicator, e.g. 'GPU: NVIDIA A100' or 'CPU (8 threads)'."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this processor computes bf16 in hardware (from its feature flags, so the answer,
    and with it the output of a restoration, is the same on every run on one machine).
    ``DEBLUR_CPU_BF16=1`` or ``=0`` overrides it."""
    forced = os.environ.get("DEBLUR_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        if platform.system() == "Linux":
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith(("flags", "Features")):
                        words = set(line.split(":", 1)[-1].split())
                        return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})
        elif platform.system() == "Darwin" and platform.machine() == "arm64":
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=5)
            return out.stdout.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        pass
    return False


@contextlib.contextmanager
def autocast_context(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CPU (where the processor has bf16 instructions, `cpu_has_bf16`), fp16
    on CUDA/MPS; a no-op when disabled."""
    if not enabled or (device.type == "cpu" and not cpu_has_bf16()):
        yield
        return
    if device.type == "cpu":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    elif device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            yield
    else:
        with torch.autocast(device.type, dtype=torch.float16):
            yield


def configure_threads() -> None:
    """Use every core for intra-op work unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def tile_batch_size(device: torch.device, tile_px: int, channels: int = 1) -> int:
    """Tiles per batch: 1 on CPU (measured fastest here), more on a GPU with free memory.

    The estimate allows ~400 float32 feature maps of the tile per batch item, a generous bound
    for the shipped U-Net/ResNet sizes, and keeps half the free memory in reserve.
    """
    if device.type != "cuda":
        return 1
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except RuntimeError:
        return 1
    per_item = 400 * 4 * tile_px * tile_px * max(1, channels)
    return int(max(1, min(16, (free // 2) // per_item)))
