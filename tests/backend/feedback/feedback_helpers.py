"""Helpers of the feedback-simulator tests: specs from inline text, a stand-in text scorer."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import torch

from rlhfdsl.api import check_file

POSITIVE = {"good", "great", "nice", "love", "excellent"}
NEGATIVE = {"bad", "awful", "hate", "poor"}
CONFIDENT = {"certainly", "definitely", "surely", "absolutely"}


def fake_score(name: str, texts: list[str], *args: Any) -> torch.Tensor:
    """A tiny stand-in for ``backends.torch.text.scorers.score`` (words as tokens)."""
    out = []
    for text in texts:
        words = re.findall(r"[a-z']+", text.lower())
        if name == "length":
            n = float(len(words))
            out.append(-abs(n - args[0]) / args[0] if args else n)
        elif name == "keyword":
            out.append(float(args[0].lower() in words))
        elif name == "count":
            out.append(float(text.count(args[0])))
        elif name == "sentiment":
            s = sum((w in POSITIVE) - (w in NEGATIVE) for w in words)
            out.append(s / math.sqrt(s * s + 4))
        elif name == "confidence":
            c = sum(w in CONFIDENT for w in words)
            out.append(1 - 2.0 ** (-c))
        elif name == "regex":
            out.append(float(re.search(args[0], text) is not None))
        elif name == "similarity":
            a, b = Counter(_grams(text)), Counter(_grams(args[0]))
            dot = sum(a[g] * b[g] for g in a)
            norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
            out.append(dot / norm if norm else 0.0)
        else:
            raise KeyError(name)
    return torch.tensor(out, dtype=torch.float32)


def _grams(text: str) -> list[str]:
    t = f" {text.lower()} "
    return [t[i:i + 3] for i in range(len(t) - 2)]


class WordTokenizer:
    """Words as tokens (matches ``fake_score``'s `length`)."""

    def encode(self, text: str) -> list[str]:  # type: ignore[override]
        return text.split()

    def decode(self, ids: list[str]) -> str:
        return " ".join(ids)


def check_spec(text: str) -> Any:
    checked = check_file("t.rlhf", text=text)
    errors = [d for d in checked.all_diagnostics if d.is_error]
    assert not errors, "\n".join(f"{d.code} {d.message}" for d in errors)
    return checked.spec


def bandit(body: str, actions: int = 16, features: int = 4, distribution: str = "normal",
           task: str = "") -> Any:
    return check_spec(f"""
experiment t {{ seed = 1 }}
task arms {{ domain = bandit  actions = {actions}  features = {features}
             distribution = {distribution}  {task} }}
{body}
""")


def text(body: str) -> Any:
    return check_spec(f"""
experiment t {{ seed = 1 }}
task chat {{ domain = text  prompts = ["hi"] }}
{body}
""")


def label_run(spec: Any, feedback: str = "fb", *, queries: torch.Tensor | None = None,
              n: int = 1000, seed: int = 0, space: Any = None, rationality: Any = None,
              **kwargs: Any) -> tuple[Any, Any, Any]:
    """(label table, drawn population, space) of one feedback declaration of a bandit spec."""
    from backends.torch.bandit import bandit_space
    from backends.torch.feedback import Queries, collect_feedback, draw_population
    from rlhfdsl.spec.feedback import items_per_query

    g = torch.Generator().manual_seed(seed)
    if space is None:
        space = bandit_space(spec.task, g)
    fb = spec.feedback[feedback]
    pop = draw_population(spec.populations[fb.from_], g, rationality=rationality)
    if queries is None:
        k = items_per_query(fb.kind)
        queries = torch.rand(n, space.size, generator=g).argsort(1)[:, :k]
    table = collect_feedback(fb, pop, Queries(queries, space), g,
                             view=spec.views.get(fb.view) if fb.view else None,
                             context=spec.contexts.get(fb.context) if fb.context else None,
                             **kwargs)
    table.validate()
    return table, pop, space


def ci(p: float, n: int, z: float = 4.5) -> float:
    """Half-width of a z-sigma binomial interval."""
    return z * math.sqrt(max(p * (1 - p), 1e-4) / n)
