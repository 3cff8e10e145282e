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


def describe_device(device: torch.device) -> str:
    """``device`` as a benchmark reports it: the GPU's name, or the number of CPU threads torch uses."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device}, {torch.get_num_threads()} threads"
