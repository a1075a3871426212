"""Which stages are cached, and why the others must run — before anything runs (`rlhfc plan`).

The cache is content-addressed: a stage's artifacts live in ``<cache>/<key[:2]>/<key>/`` and
count only once the ``COMPLETE`` marker is written (last, atomically), so a crash leaves an
incomplete directory that is simply stale. The run directory keeps ``lock.json``, the key and
parameters of every stage of the last run, so the plan can say which parameter changed.

This module is the front end's view of the cache (no torch); executors use the same layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from rlhfdsl.lower import Lowered, Stage

COMPLETE = "COMPLETE"
DEFAULT_CACHE = ".rlhf-cache"
DEFAULT_RUNS = "runs"


def cache_root(explicit: str | None = None) -> str:
    return explicit or os.environ.get("RLHF_CACHE") or DEFAULT_CACHE


def stage_dir(cache: str, key: str) -> str:
    return os.path.join(cache, key[:2], key)


def is_cached(cache: str, key: str) -> bool:
    return os.path.isfile(os.path.join(stage_dir(cache, key), COMPLETE))


def cached_info(cache: str, key: str) -> dict[str, Any]:
    try:
        with open(os.path.join(stage_dir(cache, key), COMPLETE)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def run_dir(runs: str | None, experiment: str) -> str:
    return os.path.join(runs or DEFAULT_RUNS, experiment)


def previous_lock(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, "lock.json")) as handle:
            return json.load(handle).get("stages", {})
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Status:
    cached: bool
    reason: str


def plan(lowered: Lowered, cache: str, previous: dict[str, Any] | None = None) -> dict[str, Status]:
    """For every stage: cached, or why it must run."""
    previous = previous or {}
    out: dict[str, Status] = {}
    for stage in lowered.stages():
        if is_cached(cache, stage.key):
            device = cached_info(cache, stage.key).get("device")
            out[stage.id] = Status(True, "cached" + (f" (computed on {device})" if device else ""))
            continue
        upstream = [i for ids in stage.inputs.values() for i in ids if not out[i].cached]
        old = previous.get(stage.id)
        if old and old.get("key") != stage.key:
            changed = changed_params(old.get("params", {}), stage.params)
            if changed:
                out[stage.id] = Status(False, "changed: " + "; ".join(changed[:3]) +
                                       (f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""))
                continue
        if upstream:
            out[stage.id] = Status(False, f"after {upstream[0]}" +
                                   (f" (+{len(upstream) - 1} more)" if len(upstream) > 1 else ""))
        else:
            out[stage.id] = Status(False, "not cached")
    return out


def changed_params(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`policy.objective.kl: 0.05 → 0.1` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += changed_params(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    if old != new:
        return [f"{prefix}: {_show(old)} → {_show(new)}"]
    return []


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def lock_data(stages: list[Stage]) -> dict[str, Any]:
    return {s.id: {"key": s.key, "kind": s.kind, "inputs": {r: list(i) for r, i in s.inputs.items()},
                   "params": s.params} for s in stages}
