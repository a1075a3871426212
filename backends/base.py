"""What every executor shares: the stage-call contract, the content-addressed cache, the run
directory. An executor decides *where and when* stages run; a backend decides *how* a stage
computes. The local executor runs stages one after another in this process; a Ray executor
would submit each :class:`StageCall` as a task with :meth:`Backend.needs` as its resources and
the same :func:`commit` at the end — nothing else changes.

A stage call is pure: it reads its parameters and its inputs' artifact directories and writes
its own artifact directory. Artifacts are committed atomically: written to a temporary sibling,
the ``COMPLETE`` marker written last, then renamed into place. A killed run leaves only
temporary directories, which are never read and are swept on the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rlhfdsl.lower import Stage
from rlhfdsl.plan import COMPLETE, stage_dir


class StageFailure(Exception):
    """A stage could not finish for a reason the user can act on (NaN loss, out of memory, a
    missing file). The message says what happened; ``help`` says what to do. Completed stages
    stay cached."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


@dataclass
class Progress:
    """How a stage reports progress and metrics. Executors supply the callbacks."""

    on_total: Callable[[int, str], None] = lambda total, unit: None
    on_advance: Callable[[int], None] = lambda n: None
    on_metrics: Callable[[dict[str, Any]], None] = lambda record: None

    def total(self, n: int, unit: str = "steps") -> None:
        self.on_total(n, unit)

    def advance(self, n: int = 1) -> None:
        self.on_advance(n)

    def metrics(self, record: dict[str, Any]) -> None:
        self.on_metrics(record)


@dataclass
class StageCall:
    """Everything a stage computation may read, and where it writes."""

    stage: Stage
    inputs: dict[str, list[Path]]  # role → artifact directories of the input stages, in order
    input_stages: dict[str, list[Stage]]
    out: Path  # write artifacts here (a temporary directory, committed afterwards)
    spec_dir: Path  # data files named by the spec are relative to this
    device: str
    progress: Progress = field(default_factory=Progress)
    allow_plugins: bool = False
    scratch: Path | None = None  # survives a crash: for checkpoints inside long stages

    def input(self, role: str) -> Path:
        paths = self.inputs.get(role, [])
        if len(paths) != 1:
            raise KeyError(f"stage {self.stage.id} expects one `{role}` input, has {len(paths)}")
        return paths[0]

    def optional(self, role: str) -> Path | None:
        paths = self.inputs.get(role, [])
        return paths[0] if paths else None


class Backend(ABC):
    """How stages compute. ``run_stage`` must be a pure function of the call."""

    name: str = "backend"
    version: str = "1"

    @abstractmethod
    def resolve_device(self, requested: str) -> str: ...

    @abstractmethod
    def run_stage(self, call: StageCall) -> dict[str, Any]:
        """Compute the stage, write artifacts into ``call.out``; return its final metrics."""

    def needs(self, stage: Stage) -> dict[str, float]:
        """Resources a distributed executor should reserve for the stage (e.g. {"num_gpus": 1})."""
        return {}

    def environment(self) -> dict[str, Any]:
        return {}


def commit(tmp: Path, final: Path, info: dict[str, Any]) -> None:
    """Atomically publish a stage's artifacts: marker last, then one rename."""
    (tmp / COMPLETE).write_text(json.dumps(info, sort_keys=True))
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process committed the same key first: its result is as good as ours.
        if (final / COMPLETE).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)


def temporary_dir(cache: str, key: str) -> Path:
    path = Path(stage_dir(cache, key) + f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    path.mkdir(parents=True, exist_ok=False)
    return path


def sweep_temporaries(cache: str, older_than_s: float = 0.0) -> int:
    """Remove temporary directories left by killed runs (never read; safe to delete)."""
    removed = 0
    root = Path(cache)
    if not root.is_dir():
        return 0
    now = time.time()
    for sub in root.iterdir():
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        for entry in sub.iterdir():
            if ".tmp-" in entry.name and now - entry.stat().st_mtime >= older_than_s:
                pid = entry.name.split(".tmp-")[1].split("-")[0]
                if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
