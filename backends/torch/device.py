"""Devices, precision and per-stage randomness.

`auto` picks CUDA, then MPS, then the CPU. Every stage gets its own generator, seeded from the
experiment seed and the stage key, so the same spec on the same device gives the same numbers,
whichever stages were cached, and in whatever order a scheduler runs them.
"""

from __future__ import annotations

import contextlib
import hashlib

import torch


def resolve(requested: str) -> str:
    """`auto` → cuda, mps or cpu; an explicit device must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("the spec asks for `cuda`, but no CUDA device is available",
                                "set `device = auto` (or `cpu`) in `experiment`, or pass --device cpu")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                   and torch.backends.mps.is_available()):
        raise DeviceUnavailable("the spec asks for `mps`, but MPS is not available",
                                "set `device = auto` (or `cpu`), or pass --device cpu")
    return requested


class DeviceUnavailable(Exception):
    def __init__(self, message: str, help: str):
        super().__init__(message)
        self.help = help


def stage_seed(seed: int, key: str, salt: str = "") -> int:
    """A 63-bit seed from the experiment seed and the stage key (and an optional salt, for
    independent streams inside one stage)."""
    digest = hashlib.sha256(f"{seed}:{key}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(device: str, seed: int) -> torch.Generator:
    """A generator on the device (CPU generators for MPS, which has none of its own)."""
    where = "cpu" if device == "mps" else device
    g = torch.Generator(device=where)
    g.manual_seed(seed)
    return g


def autocast(device: str, precision: str):
    """bf16 autocast on CUDA for `auto`/`bf16`; nothing elsewhere (fp32)."""
    if device == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def deterministic() -> None:
    """Ask torch for deterministic kernels (warn, do not fail, where none exists)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
