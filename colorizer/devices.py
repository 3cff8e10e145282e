"""Choosing the torch device, and refusing one this machine does not have before any work is done."""

from __future__ import annotations

import torch


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``spec`` as a usable device; None: CUDA when available, else the CPU.

    An unknown name or a device this machine lacks (``cuda`` without a GPU) raises ValueError
    with one line that says so, instead of a backend error at the first tensor.
    """
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {spec!r}; use cpu, cuda, cuda:1, mps, ...") from None
    try:
        torch.empty(0, device=device)  # the cheapest way to ask the backend itself
    except Exception as err:  # AssertionError, RuntimeError or NotImplementedError, depending on the backend
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"device {str(spec)!r} is not available on this machine ({reason}); try cpu") from None
    return device


def feature_dtype(device: torch.device) -> torch.dtype:
    """The precision the VGG runs in on ``device``: the fastest one whose features are exact enough.

    Half precision on a GPU; bfloat16 on a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX),
    where oneDNN runs VGG about 2.5x faster than in float32 while the unit feature vectors stay
    within a cosine of 0.9999 of float32's (``benchmarks.nct_speed`` and ``nct_quality`` measure
    both); float32 elsewhere, where bfloat16 would only be emulated.
    """
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return torch.float32


def describe_device(device: torch.device) -> str:
    """``device`` as a benchmark reports it: the GPU's name, or the number of CPU threads torch uses."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device}, {torch.get_num_threads()} threads"
