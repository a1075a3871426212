"""Checked spec → stage graph (a ``networkx.DiGraph``).

One stage per step of the paper's loop, rounds unrolled, sweep branches expanded:

    task ─┬────────────────────────────────────────────────┐
          │          population (ΔH) ───────────┐          │
          ├→ sample (s) → render (v) → feedback (f) → fit_reward (r̂_φ) → optimize_policy (π_θ)
          │                                                                  └→ evaluate → report
    pretrain (Step 0, text) ─────────────────────────────────────────────────┘

A stage is a pure function of its parameters and its inputs. Its key is the SHA-256 of the
canonical JSON of (kind, name, parameters, input keys, :data:`STAGE_VERSION`). Parameters hold
only what the stage reads, so changing a value changes the key of exactly the stages that read
it and of everything downstream; sweep branches share every stage whose key does not depend on
the swept value (stages are merged by key).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import BaseModel

from rlhfdsl.check import Branch, Checked
from rlhfdsl.errors import Diagnostic
from rlhfdsl.spec import Spec
from rlhfdsl.spec.data import _keys
from rlhfdsl.spec.data import to_data as _to_data
from rlhfdsl.spec.feedback import cost_per_label, items_per_query

# Bump when what a stage computes, or how keys are made, changes: every cached result is then
# stale.
STAGE_VERSION = 1

SYMBOLS = {
    "task": "task", "population": "ΔH", "pretrain": "π₀", "sample": "s", "render": "v",
    "feedback": "f", "fit_reward": "r̂_φ", "optimize_policy": "π_θ", "evaluate": "eval",
    "report": "report",
}
KINDS = tuple(SYMBOLS)


@dataclass(frozen=True)
class Stage:
    """A node of the stage graph."""

    id: str
    kind: str
    name: str
    round: int | None
    params: dict[str, Any]
    inputs: dict[str, tuple[str, ...]]
    key: str
    branches: tuple[str, ...] = ()

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.kind]

    @property
    def short(self) -> str:
        return self.key[:12]


_DATA: dict[int, tuple[Any, Any]] = {}


def to_data(value: Any) -> Any:
    """Plain data of a typed-spec value (see :func:`rlhfdsl.spec.data.to_data`), memoised by
    identity for the duration of a lowering, every nested object included: a branch's spec is
    converted once, and each stage's parameters reuse the parts they need. Callers must not
    mutate what it returns."""
    hit = _DATA.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    if isinstance(value, BaseModel):
        attrs = value.__dict__
        data: Any = {key: to_data(attrs[name]) for name, key in _keys(type(value))}
    elif isinstance(value, (list, tuple)):
        data = [to_data(v) for v in value]
    elif isinstance(value, dict):
        data = {str(k): to_data(v) for k, v in sorted(value.items())}
    else:
        return _to_data(value)
    _DATA[id(value)] = (value, data)
    return data


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass
class _Draft:
    kind: str
    name: str
    round: int | None
    params: dict[str, Any]
    inputs: dict[str, tuple["_Draft", ...]]
    key: str = ""


@dataclass
class Lowered:
    graph: nx.DiGraph
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def stages(self) -> list[Stage]:
        """Stages in dependency order (lexicographic by id among ready stages)."""
        order = nx.lexicographical_topological_sort(self.graph, key=lambda n: n)
        return [self.graph.nodes[n]["stage"] for n in order]


class _Lowering:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.spec_dir = os.path.dirname(os.path.abspath(checked.loaded.path))
        self.diagnostics: list[Diagnostic] = []
        self._file_hashes: dict[str, str | None] = {}

    # ------------------------------------------------------------------ helpers

    def draft(self, kind: str, name: str, round_: int | None, params: dict[str, Any],
              **inputs: Any) -> _Draft:
        clean = {}
        for role, value in inputs.items():
            if value is None:
                continue
            items = tuple(v for v in (value if isinstance(value, (list, tuple)) else (value,)) if v is not None)
            if items:
                clean[role] = items
        d = _Draft(kind, name, round_, params, clean)
        d.key = hashlib.sha256(canonical({
            "kind": kind, "name": name, "params": params, "version": STAGE_VERSION,
            "inputs": {role: [i.key for i in items] for role, items in sorted(clean.items())},
        }).encode()).hexdigest()
        return d

    def file(self, path: str, span_path: tuple[str, ...]) -> dict[str, Any]:
        """A data file named by the spec: its path (relative to the spec) and content hash."""
        absolute = os.path.normpath(os.path.join(self.spec_dir, path))
        if absolute not in self._file_hashes:
            self._file_hashes[absolute] = _hash_path(absolute)
        digest = self._file_hashes[absolute]
        if digest is None:
            span = self.checked.spans.value(*span_path) if self.checked.spans else None
            self.diagnostics.append(Diagnostic(
                "E0001", f"cannot find `{path}`", span=span, label="no such file or directory",
                help="paths are relative to the spec's directory"))
        return {"path": os.path.relpath(absolute, self.spec_dir), "sha256": digest}

    # ------------------------------------------------------------------ per branch

    def branch(self, spec: Spec) -> tuple[list[_Draft], list[_Draft]]:
        """All drafts of one branch, and its evaluate drafts."""
        seed = spec.experiment.seed
        domain = spec.domain
        rounds = spec.schedule.rounds
        to_data(spec)  # converts the branch's spec once; stages below reuse its parts
        task = self.draft("task", spec.task.name, None,
                          {"task": self.task_data(spec), "seed": seed})
        drafts = [task]
        populations = {}
        for name, pop in spec.populations.items():
            # The task is an input: calibrating β (`agreement(p)`) needs the items.
            populations[name] = self.draft("population", name, None,
                                           {"population": to_data(pop), "seed": seed,
                                            "domain": domain}, task=task)
            drafts.append(populations[name])
        pretrained: dict[str, _Draft] = {}
        if domain == "text":
            for name, model in spec.models.items():
                params = {"model": self.model_data(spec, name), "seed": seed}
                if spec.task.pretrain is not None:
                    params["corpus"] = self.corpus_data(spec)
                    params["steps"] = spec.task.pretrain_steps
                pretrained[name] = self.draft("pretrain", name, None, params, task=task)
                drafts.append(pretrained[name])

        evaluations: list[_Draft] = []
        chains: list[tuple[str | None, str | None]] = [
            (p, _reward_name(pol)) for p, pol in spec.policies.items()]
        used_rewards = {r for _, r in chains if r}
        chains += [(None, r) for r in spec.rewards if r not in used_rewards]
        for policy_name, reward_name in chains:
            policy = spec.policies.get(policy_name) if policy_name else None
            reward = spec.rewards.get(reward_name) if reward_name else None
            feedback_names = list(reward.feedback) if reward else []
            if policy is not None and policy.feedback and policy.feedback not in feedback_names:
                feedback_names.append(policy.feedback)
            init_model = _model_of(policy.init) if policy else None
            base = pretrained.get(init_model) if init_model else None
            previous_policy: _Draft | None = None
            previous_reward: _Draft | None = None
            renders: dict[str, list[_Draft]] = {f: [] for f in feedback_names}
            labels: dict[str, list[_Draft]] = {f: [] for f in feedback_names}
            for k in range(rounds):
                for fname in feedback_names:
                    sample, render, fb = self.feedback_round(
                        spec, fname, k, task, populations, previous_policy or base,
                        policy.init if policy and previous_policy is None else None,
                        previous_reward, renders[fname])
                    drafts += [sample, render, fb]
                    renders[fname].append(render)
                    labels[fname].append(fb)
                fit = None
                if reward is not None:
                    used = [d for f in reward.feedback for d in
                            (labels[f] if spec.schedule.accumulate else labels[f][-1:])]
                    backbone = _model_of(reward.backbone)
                    fit = self.draft("fit_reward", reward.name, k,
                                     {"reward": to_data(reward), "seed": seed, "round": k,
                                      "domain": domain},
                                     feedback=used, task=task,
                                     previous=previous_reward if spec.schedule.warm_start else None,
                                     backbone=pretrained.get(backbone) if backbone else None)
                    drafts.append(fit)
                if policy is None:
                    evaluation = self.draft("evaluate", reward.name, k,
                                            {"evaluate": to_data(spec.evaluate), "seed": seed,
                                             "round": k, "domain": domain, "of": "reward"},
                                            reward=fit, task=task,
                                            populations=self.populations_of(spec, feedback_names, populations),
                                            feedback=[d for f in feedback_names for d in labels[f]])
                    drafts.append(evaluation)
                    evaluations.append(evaluation)
                    previous_reward = fit
                    continue
                gold = None
                if policy.reward is not None and policy.reward.type == "gold":
                    gold = populations.get(policy.reward.population)
                reference = pretrained.get(policy.reference) if policy.reference else base
                data_feedback = [d for d in labels.get(policy.feedback, [])] if policy.feedback else []
                optimized = self.draft("optimize_policy", policy.name, k,
                                       {"policy": to_data(policy), "seed": seed, "round": k,
                                        "domain": domain,
                                        "evaluate_every": spec.evaluate.every},
                                       reward=fit, gold=gold, feedback=data_feedback, task=task,
                                       previous=previous_policy if spec.schedule.warm_start else None,
                                       init=base, reference=reference)
                drafts.append(optimized)
                evaluation = self.draft("evaluate", policy.name, k,
                                        {"evaluate": to_data(spec.evaluate), "seed": seed,
                                         "round": k, "domain": domain, "of": "policy"},
                                        policy=optimized, reward=fit, task=task,
                                        populations=self.populations_of(spec, feedback_names, populations),
                                        feedback=[d for f in feedback_names for d in labels[f]],
                                        reference=reference)
                drafts.append(evaluation)
                evaluations.append(evaluation)
                previous_policy, previous_reward = optimized, fit
        return drafts, evaluations

    def feedback_round(self, spec: Spec, fname: str, k: int, task: _Draft,
                       populations: dict[str, _Draft], policy: _Draft | None, init: Any,
                       previous_reward: _Draft | None, earlier_renders: list[_Draft]):
        fb = spec.feedback[fname]
        seed = spec.experiment.seed
        rounds = spec.schedule.rounds
        sampler = spec.samplers.get(fb.sampler) if fb.sampler else None
        per_round = _labels_per_round(fb, rounds)
        queries = max(1, math.ceil(per_round / fb.redundancy))
        sample_params = {
            "sampler": to_data(sampler) if sampler else None,
            "queries": queries, "items_per_query": items_per_query(fb.kind),
            "round": k, "seed": seed, "domain": spec.domain,
            "policy_init": to_data(init) if init is not None else None,
        }
        if sampler is not None:
            sample_params["files"] = self.sampler_files(sampler, fb.sampler)
        active = sampler is not None and sampler.select.type != "random"
        sample = self.draft("sample", fname, k, sample_params, task=task, policy=policy,
                            humans=populations.get(sampler.by) if sampler and sampler.by else None,
                            reward=previous_reward if active else None)
        view = spec.views.get(fb.view) if fb.view else None
        render = self.draft("render", fname, k,
                            {"view": to_data(view) if view else None, "domain": spec.domain},
                            items=sample, task=task)
        context = spec.contexts.get(fb.context) if fb.context else None
        population = spec.populations[fb.from_]
        annotators = [a.model for a in population.ai if a.model]
        relabel = earlier_renders if spec.schedule.relabel == "every_round" else []
        feedback = self.draft("feedback", fname, k, {
            "feedback": {"kind": to_data(fb.kind), "labels": per_round, "queries": queries,
                         "redundancy": fb.redundancy,
                         "cost_seconds": cost_per_label(fb.kind, fb.cost)},
            "feedback_spec": to_data(fb),
            "view": to_data(view) if view else None,
            "context": to_data(context) if context else None,
            "round": k, "rounds": rounds, "seed": seed, "domain": spec.domain,
            "annotator_models": annotators,
        }, items=render, population=populations[fb.from_], relabel=relabel, task=task,
            annotators=previous_reward if annotators else None)
        return sample, render, feedback

    def populations_of(self, spec: Spec, feedback_names: list[str],
                       populations: dict[str, _Draft]) -> list[_Draft]:
        names = sorted({spec.feedback[f].from_ for f in feedback_names})
        return [populations[n] for n in names]

    # ------------------------------------------------------------------ data files

    def task_data(self, spec: Spec) -> dict[str, Any]:
        data = dict(to_data(spec.task))
        if spec.domain == "text":
            prompts = spec.task.prompts
            if not isinstance(prompts, (str, tuple)) and getattr(prompts, "type", None) == "file":
                data["prompts"] = {"type": "file", **self.file(prompts.path, ("task", "prompts"))}
        return data

    def corpus_data(self, spec: Spec) -> Any:
        corpus = spec.task.pretrain
        if getattr(corpus, "type", None) == "file":
            return {"type": "file", **self.file(corpus.path, ("task", "pretrain"))}
        return corpus

    def model_data(self, spec: Spec, name: str) -> dict[str, Any]:
        model = spec.models[name]
        data = dict(to_data(model))
        if model.path is not None:
            data["path"] = self.file(model.path, (name, "path"))
        if model.tokenizer != "bytes":
            data["tokenizer"] = self.file(model.tokenizer, (name, "tokenizer"))
        return data

    def sampler_files(self, sampler, name: str) -> list[dict[str, Any]]:
        found = []

        def visit(source) -> None:
            if source.type in ("file", "human") and getattr(source, "path", None):
                found.append(self.file(source.path, (name, "source")))
            for sub in getattr(source, "sources", ()):
                visit(sub)

        visit(sampler.source)
        return found


def _labels_per_round(fb, rounds: int) -> int:
    if fb.budget.unit == "labels":
        total = fb.budget.amount
    else:
        total = fb.budget.amount / cost_per_label(fb.kind, fb.cost)
    return max(1, int(total // rounds))


def _reward_name(policy) -> str | None:
    if policy.reward is not None and policy.reward.type == "reward":
        return policy.reward.reward
    return None


def _model_of(choice) -> str | None:
    if choice is not None and getattr(choice, "type", None) == "model":
        return choice.model
    return None


def _hash_path(path: str) -> str | None:
    """Content hash of a file; for a directory, of its files' names and contents."""
    if os.path.isfile(path):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    if os.path.isdir(path):
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode() + b"\0")
                digest.update((_hash_path(full) or "").encode())
        return digest.hexdigest()
    return None


def lower(checked: Checked) -> Lowered:
    """The stage graph of a checked spec: every branch of every sweep, stages merged by key."""
    if not checked.ok:
        raise ValueError("lower() needs a spec that checked clean")
    _DATA.clear()
    lowering = _Lowering(checked)
    per_branch: list[tuple[Branch, list[_Draft], list[_Draft]]] = []
    for branch in checked.branches:
        drafts, evaluations = lowering.branch(branch.spec)
        per_branch.append((branch, drafts, evaluations))
    all_evaluations = [e for _, _, evals in per_branch for e in evals]
    base = checked.spec
    report = lowering.draft("report", base.experiment.name, None, {
        "experiment": to_data(base.experiment), "disclose": to_data(base.disclose),
        "spec": to_data(base),
        "branches": [[list(map(str, pair)) for pair in _label_data(b)] for b, _, _ in per_branch],
    }, evaluate=all_evaluations)
    graph = _assemble(per_branch, report)
    _DATA.clear()
    return Lowered(graph=graph, diagnostics=lowering.diagnostics)


def _label_data(branch: Branch) -> list[tuple[str, str]]:
    return [(path, canonical(to_data(value))) for path, value in branch.label]


def _assemble(per_branch, report: _Draft) -> nx.DiGraph:
    """Merge drafts by key and give each stage a stable, readable id."""
    by_key: dict[str, _Draft] = {}
    branches_of: dict[str, list[str]] = {}
    templates: dict[tuple, set[str]] = {}
    for branch, drafts, _ in per_branch:
        for d in drafts:
            by_key.setdefault(d.key, d)
            branches_of.setdefault(d.key, [])
            if branch.id not in branches_of[d.key]:
                branches_of[d.key].append(branch.id)
            templates.setdefault((d.kind, d.name, d.round), set()).add(d.key)
    by_key[report.key] = report
    branches_of[report.key] = [b.id for b, _, _ in per_branch]
    labels = {b.id: dict(_label_data(b)) for b, _, _ in per_branch}

    ids: dict[str, str] = {}
    for (kind, name, round_), keys in templates.items():
        base = f"{kind}.{name}" + (f".r{round_}" if round_ is not None else "")
        if len(keys) == 1:
            ids[next(iter(keys))] = base
            continue
        for key in keys:
            ids[key] = f"{base}[{_suffix(key, keys, branches_of, labels)}]"
    ids[report.key] = f"report.{report.name}"

    graph = nx.DiGraph()
    for key, d in by_key.items():
        stage = Stage(id=ids[key], kind=d.kind, name=d.name, round=d.round, params=d.params,
                      inputs={role: tuple(ids[i.key] for i in items) for role, items in d.inputs.items()},
                      key=key, branches=tuple(branches_of[key]))
        graph.add_node(stage.id, stage=stage)
    for key, d in by_key.items():
        for role, items in d.inputs.items():
            for i in items:
                graph.add_edge(ids[i.key], ids[key], role=role)
    return graph


def _suffix(key: str, keys: set[str], branches_of: dict[str, list[str]],
            labels: dict[str, dict[str, str]]) -> str:
    """The swept values that single out this variant of a stage among its siblings."""
    mine = [labels[b] for b in branches_of[key]]
    others = [labels[b] for k in keys if k != key for b in branches_of[k]]
    parts = []
    for path in mine[0]:
        values = {m[path] for m in mine}
        if len(values) == 1 and any(o.get(path) not in values for o in others):
            value = next(iter(values))
            parts.append(f"{path.split('.')[-1]}={_compact(value)}")
    return ",".join(parts) or key[:8]


def _compact(value: str) -> str:
    data = json.loads(value)
    if isinstance(data, dict):
        return str(data.get("type", value))
    return str(data)
