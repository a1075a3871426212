"""What the stage functions share: the per-call context, typed specs from stage parameters, and
loaders for the artifacts of upstream stages (each loaded once per call).

Artifacts, by stage kind (files inside a stage's directory):

    task             task.json; bandit: actions.safetensors {features [A, F]};
                     text: prompts.json
    population       population.json {seed, rationality}; population.safetensors (audit)
    pretrain         model/ (save_pretrained), tokenizer.json
    sample           queries.safetensors {items [n, K], source [n]}, queries.json {sources[, texts]}
    render           the same queries, plus rendered.json / rendered.safetensors (what is seen)
    feedback         labels.safetensors + labels.json (the label table), agreement.json
    fit_reward       reward.safetensors (state), rewards.safetensors {rewards [E, A]} on bandits,
                     or model/ (text), fit.json
    optimize_policy  policy.safetensors + log_probs.safetensors {log_probs [A]} (bandit), or
                     policy/ (save_pretrained / peft adapter) (text), optimize.json
    evaluate         evaluation.json
    report           summary.json, disclosure.md
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from backends.base import StageCall
from backends.torch import device as devices
from backends.torch.artifacts import load_json, load_tensors
from rlhfdsl.spec import Context, Feedback, Population, Sampler, View
from rlhfdsl.spec.data import from_data
from rlhfdsl.spec.experiment import BanditTask, TextTask


class Ctx:
    """One stage call, with typed access to its parameters and inputs."""

    def __init__(self, call: StageCall) -> None:
        self.call = call
        self.stage = call.stage
        self.params = call.stage.params
        self.device = call.device
        self.out = call.out
        self.round = self.params.get("round")
        self.domain = self.params.get("domain")

    # ------------------------------------------------------------------ randomness

    def generator(self, salt: str = "") -> torch.Generator:
        return devices.generator(self.device, self.seed(salt))

    def seed(self, salt: str = "") -> int:
        return devices.stage_seed(int(self.params.get("seed", 0)), self.stage.key, salt)

    # ------------------------------------------------------------------ inputs

    def inputs(self, role: str) -> list[Path]:
        return self.call.inputs.get(role, [])

    def input(self, role: str) -> Path:
        return self.call.input(role)

    def optional(self, role: str) -> Path | None:
        return self.call.optional(role)

    def input_stage(self, role: str, index: int = 0):
        return self.call.input_stages[role][index]

    # ------------------------------------------------------------------ typed specs

    @cached_property
    def task(self):
        """The task spec, from this stage's `task` input (or its own parameters)."""
        if "task" in self.params:
            data = self.params["task"]
        else:
            data = self.input_stage("task").params["task"]
        return task_from(data)

    def population_spec(self, stage) -> Population:
        return from_data(Population, stage.params["population"])

    def progress_total(self, n: int, unit: str = "steps") -> None:
        self.call.progress.total(n, unit)

    def advance(self, n: int = 1) -> None:
        self.call.progress.advance(n)

    def record(self, **metrics: Any) -> None:
        self.call.progress.metrics(metrics)


def task_from(data: dict[str, Any]):
    data = dict(data)
    if data.get("domain") == "text":
        prompts = data.get("prompts")
        if isinstance(prompts, dict) and "sha256" in prompts:
            data["prompts"] = {"type": "file", "path": prompts["path"]}
        pretrain = data.get("pretrain")
        if isinstance(pretrain, dict) and "sha256" in pretrain:
            data["pretrain"] = {"type": "file", "path": pretrain["path"]}
        return from_data(TextTask, data)
    return from_data(BanditTask, data)


def feedback_spec(params: dict[str, Any]) -> Feedback:
    return from_data(Feedback, params["feedback_spec"])


def view_spec(params: dict[str, Any]) -> View | None:
    return from_data(View, params["view"]) if params.get("view") else None


def context_spec(params: dict[str, Any]) -> Context | None:
    return from_data(Context, params["context"]) if params.get("context") else None


def sampler_spec(params: dict[str, Any]) -> Sampler | None:
    return from_data(Sampler, params["sampler"]) if params.get("sampler") else None


def bandit_features(task_dir: Path, device: str) -> torch.Tensor:
    return load_tensors(task_dir, "actions", device)["features"]


def bandit_log_probs(policy_dir: Path | None, num_actions: int, device: str) -> torch.Tensor:
    """log π of a bandit policy stage, or uniform when there is none yet (the initial tabular
    and linear policies are both uniform)."""
    if policy_dir is None:
        return torch.full((num_actions,), -float(torch.log(torch.tensor(float(num_actions)))),
                          device=device)
    return load_tensors(policy_dir, "log_probs", device)["log_probs"]


def rewards_of(reward_dir: Path, device: str) -> torch.Tensor:
    """[E, A] rewards of every ensemble member on every action (bandit reward stages)."""
    return load_tensors(reward_dir, "rewards", device)["rewards"]


def read(directory: Path, name: str) -> Any:
    return load_json(directory, name)
