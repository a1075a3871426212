"""The local executor: stages in dependency order, in this process, on one device.

    rlhfc run spec.rlhf   →   LocalExecutor(TorchBackend()).run(compiled, ...)

A rerun skips every stage whose key is cached; an interrupted run (Ctrl-C, ``kill -9``) resumes
from the first stage that was not committed, with identical results, because every stage's
randomness comes from (experiment seed, stage key). The run directory is rebuilt from the
stages' own stored metrics, so a resumed run's ``metrics.jsonl`` and ``summary.json`` equal an
uninterrupted run's byte for byte.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import (
    Backend, Progress, StageCall, commit, sweep_temporaries, temporary_dir,
    write_json_atomic,
)
from rlhfdsl.lower import Stage
from rlhfdsl.plan import COMPLETE, cached_info, is_cached, lock_data, stage_dir
from rlhfdsl.spec.data import to_data

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"


@dataclass
class RunResult:
    run_dir: Path
    device: str
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class _Display:
    """Progress on stderr: a bar per stage with its ETA (rich), or plain lines without a TTY."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.rich = enabled and self.console.is_terminal
        self.progress = None

    def __enter__(self) -> _Display:
        if self.rich:
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                TimeElapsedColumn, TimeRemainingColumn,
            )

            self.progress = RichProgress(
                TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self.console, transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def cached(self, stage: Stage) -> None:
        if self.enabled:
            self.console.print(f"  [dim]cached[/dim]  {stage.id}", highlight=False)

    def start(self, stage: Stage) -> Progress:
        if not self.enabled:
            return Progress()
        if self.progress is None:
            self.console.print(f"  run     {stage.id}", highlight=False)
            return Progress()
        task = self.progress.add_task(stage.id, total=None, unit="")

        def on_total(n: int, unit: str) -> None:
            self.progress.update(task, total=n, unit=unit)

        def on_advance(n: int) -> None:
            self.progress.advance(task, n)

        return Progress(on_total=on_total, on_advance=on_advance)

    def done(self, stage: Stage, seconds: float) -> None:
        if self.enabled and self.progress is None:
            self.console.print(f"  done    {stage.id} ({seconds:.1f} s)", highlight=False)


class LocalExecutor:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def run(self, compiled, *, cache: str, run_dir: str, device: str | None = None,
            fresh: bool = False, allow_plugins: bool = False, show_progress: bool = True,
            stop_after: str | None = None) -> RunResult:
        spec = compiled.spec
        stages = compiled.lowered.stages()
        chosen = self.backend.resolve_device(device or spec.experiment.device)
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._write_run_files(compiled, stages, out, chosen, cache)
        sweep_temporaries(cache)
        result = RunResult(run_dir=out, device=chosen)
        spec_dir = Path(os.path.dirname(os.path.abspath(compiled.checked.loaded.path)))
        by_id = {s.id: s for s in stages}
        with _Display(show_progress) as display:
            for stage in stages:
                final = Path(stage_dir(cache, stage.key))
                if not fresh and self._usable(cache, stage):
                    result.cached.append(stage.id)
                    display.cached(stage)
                else:
                    if final.exists():  # --fresh, or computed by another backend version
                        shutil.rmtree(final, ignore_errors=True)
                    self._run_stage(stage, by_id, cache, spec_dir, chosen, allow_plugins, display)
                    result.ran.append(stage.id)
                if stop_after is not None and stage.id == stop_after:
                    break
        self._assemble(stages, cache, out, result)
        return result

    def _usable(self, cache: str, stage: Stage) -> bool:
        """Cached, and computed by this backend at this version (a new backend version may
        compute differently, so its results are never mixed with an older one's)."""
        if not is_cached(cache, stage.key):
            return False
        info = cached_info(cache, stage.key)
        return (info.get("backend", self.backend.name) == self.backend.name
                and str(info.get("backend_version", self.backend.version)) == str(self.backend.version))

    def _run_stage(self, stage: Stage, by_id: dict[str, Stage], cache: str, spec_dir: Path,
                   device: str, allow_plugins: bool, display: _Display) -> None:
        tmp = temporary_dir(cache, stage.key)
        scratch = Path(stage_dir(cache, stage.key) + ".scratch")
        inputs = {role: [Path(stage_dir(cache, by_id[i].key)) for i in ids]
                  for role, ids in stage.inputs.items()}
        input_stages = {role: [by_id[i] for i in ids] for role, ids in stage.inputs.items()}
        records: list[dict[str, Any]] = []
        progress = display.start(stage)
        progress.on_metrics = lambda record: records.append(record)
        call = StageCall(stage=stage, inputs=inputs, input_stages=input_stages, out=tmp,
                         spec_dir=spec_dir, device=device, progress=progress,
                         allow_plugins=allow_plugins, scratch=scratch)
        started = time.perf_counter()
        try:
            final_metrics = self.backend.run_stage(call)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with open(tmp / METRICS_FILE, "w") as handle:
            for record in records:
                handle.write(json.dumps({"stage": stage.id, **record}, sort_keys=True) + "\n")
        (tmp / RESULT_FILE).write_text(json.dumps(final_metrics or {}, sort_keys=True, indent=1))
        elapsed = time.perf_counter() - started
        commit(tmp, Path(stage_dir(cache, stage.key)),
               {"device": device, "seconds": round(elapsed, 3), "stage": stage.id,
                "backend": self.backend.name, "backend_version": self.backend.version})
        shutil.rmtree(scratch, ignore_errors=True)
        display.done(stage, elapsed)

    def _write_run_files(self, compiled, stages: list[Stage], out: Path, device: str,
                         cache: str) -> None:
        spec = compiled.spec
        sources = out / "spec"
        if sources.exists():
            shutil.rmtree(sources)
        sources.mkdir()
        for index, (name, text) in enumerate(sorted(compiled.sources.items())):
            safe = f"{index:02d}-" + os.path.basename(name).replace("<", "").replace(">", "").replace(" ", "_")
            (sources / safe).write_text(text)
        write_json_atomic(out / "resolved.json", {
            "spec": to_data(spec),
            "branches": [{"id": b.id, "spec": to_data(b.spec)} for b in compiled.checked.branches],
        })
        write_json_atomic(out / "lock.json", {"stages": lock_data(stages)})
        write_json_atomic(out / "environment.json", {
            "device": device, "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": _versions(), "backend": {"name": self.backend.name,
                                                "version": self.backend.version,
                                                **self.backend.environment()},
            "cache": os.path.abspath(cache),
        })

    def _assemble(self, stages: list[Stage], cache: str, out: Path, result: RunResult) -> None:
        """metrics.jsonl and summary.json from the stages' stored results (cached or not)."""
        lines: list[str] = []
        artifacts = {}
        for stage in stages:
            directory = Path(stage_dir(cache, stage.key))
            if not (directory / COMPLETE).exists():
                continue
            artifacts[stage.id] = str(directory.resolve())
            metrics = directory / METRICS_FILE
            if metrics.exists():
                lines.extend(metrics.read_text().splitlines())
        (out / METRICS_FILE).write_text("".join(line + "\n" for line in lines))
        write_json_atomic(out / "artifacts.json", artifacts)
        report = [s for s in stages if s.kind == "report"]
        if report and (Path(stage_dir(cache, report[0].key)) / "summary.json").exists():
            source = Path(stage_dir(cache, report[0].key))
            shutil.copyfile(source / "summary.json", out / "summary.json")
            for extra in ("report.html", "disclosure.md"):
                if (source / extra).exists():
                    shutil.copyfile(source / extra, out / extra)
            result.summary = json.loads((out / "summary.json").read_text())


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("rlhfdsl", "torch", "transformers", "peft", "safetensors", "lark", "pydantic",
                 "networkx", "click", "rich"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
