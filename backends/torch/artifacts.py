"""Reading and writing stage artifacts: tensors as safetensors, the rest as JSON.

A stage directory holds a few named files; every stage kind documents its own in its module.
Nothing here is pickled: weights and tables are safetensors, metadata is JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_tensors(directory: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
              str(directory / f"{name}.safetensors"))


def load_tensors(directory: Path, name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    where = "cpu" if device == "mps" else device
    tensors = load_file(str(directory / f"{name}.safetensors"), device=where)
    if device == "mps":
        tensors = {k: v.to("mps") for k, v in tensors.items()}
    return tensors


def save_json(directory: Path, name: str, data: Any) -> None:
    (directory / f"{name}.json").write_text(json.dumps(_plain(data), indent=1, sort_keys=True))


def load_json(directory: Path, name: str) -> Any:
    return json.loads((directory / f"{name}.json").read_text())


def _plain(value: Any) -> Any:
    """JSON-ready data: tensors become lists, non-finite floats strings."""
    if isinstance(value, torch.Tensor):
        return _plain(value.detach().cpu().tolist())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def scalar(value: Any) -> Any:
    """A metric as a plain number."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    return value
