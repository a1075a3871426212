"""s in Eq. 4: where the examples x_i come from and which queries are asked.

    x_i ~ s(π_θ, H_sample, c_sample_i)

:func:`sample_queries` draws ``n`` queries of ``k`` items from a `sampler` declaration:

* sources — `policy` (a callable ``policy(m, generator)`` drawing m items from π_θ: bandit
  action indices int64 [m]; text completions, a list of m strings or (prompt, completion)
  pairs, in consecutive runs of k that share a prompt), `file("x.jsonl")` (offline rows:
  ``prompt/chosen/rejected`` — a pair per row — or ``prompt/completion/label``; bandit files hold
  action indices in the same keys), `human` (bandit: members of H_sample pick actions by their
  own values, Boltzmann with their own β; text: human-written examples read from the file) and
  `mix(...)` (each query's source drawn by weight);
* selection — `random`; `disagreement { pool = p }` draws p·n candidates and keeps the n on
  which the reward ensemble disagrees most (``ensemble(items) -> [E, m]`` scores; disagreement
  is the ensemble's standard deviation of the query's centred scores); `adversarial { pool = p }`
  keeps the n whose best item the ensemble mean scores highest.

Ensemble callables receive the flat candidate items: bandit int64 action indices; text a list of
(prompt, completion) pairs ("" when a source has no prompt). ``FromPolicy.temperature`` belongs
to the policy callable the executor passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from backends.torch.feedback.behaviour import Perception
from backends.torch.feedback.errors import FeedbackError
from backends.torch.feedback.items import BanditSpace, Queries, Space, TextSpace
from backends.torch.feedback.kinds import scaled
from backends.torch.feedback.population import DrawnPopulation
from rlhfdsl.spec.feedback import FromFile, FromHumans, FromPolicy, Mix, Sampler

PolicyDraw = Callable[[int, torch.Generator], Any]
EnsembleScores = Callable[[Any], torch.Tensor]
TextItem = tuple[str, str]  # (prompt, completion)
Drawn = Union[torch.Tensor, list[list[TextItem]]]  # [n, k] actions, or n lists of k texts


def sample_queries(sampler: Optional[Sampler], n: int, k: int, space: Space,
                   generator: torch.Generator, *, policy: Optional[PolicyDraw] = None,
                   population: Optional[DrawnPopulation] = None,
                   ensemble: Optional[EnsembleScores] = None,
                   base_dir: Union[str, Path] = ".") -> Queries:
    """``n`` queries of ``k`` items (see the module doc). ``space``: the bandit space, or for
    text a :class:`TextSpace` whose scorer, tokenizer and device the sampled texts inherit.
    ``population`` is H_sample (drawn apart from H_feedback), needed by `human` on bandits."""
    source = sampler.source if sampler is not None else FromPolicy()
    select = sampler.select.type if sampler is not None else "random"
    pool = getattr(sampler.select, "pool", 1) if sampler is not None else 1
    ctx = _Context(space, generator, policy, population, Path(base_dir))
    m = n * pool if select != "random" else n
    drawn, which, names = ctx.draw(source, m, k)
    if select != "random" and m > n:
        if ensemble is None:
            raise FeedbackError(f"`{select}` selection needs the reward ensemble's scores "
                                "(ensemble=...)")
        flat = drawn.reshape(-1) if isinstance(drawn, torch.Tensor) else [
            item for query in drawn for item in query]
        scores = torch.as_tensor(ensemble(flat), dtype=torch.float32)
        scores = scores.reshape(-1, m, k).to(which.device)   # [E, m, k]
        if select == "disagreement":
            merit = disagreement_scores(scores)
        else:
            merit = scores.mean(0).max(-1).values
        keep = torch.topk(merit, n, sorted=True).indices
        which = which[keep]
        drawn = drawn[keep.to(drawn.device)] if isinstance(drawn, torch.Tensor) else [
            drawn[int(i)] for i in keep]
    if isinstance(space, BanditSpace):
        assert isinstance(drawn, torch.Tensor)
        return Queries(drawn.to(space.device), space, which.to(space.device), tuple(names))
    return _text_queries(drawn, space, which, names)  # type: ignore[arg-type]


def _text_queries(drawn: list[list[TextItem]], template: TextSpace, which: torch.Tensor,
                  names: list[str]) -> Queries:
    index: dict[TextItem, int] = {}
    items = [[index.setdefault(item, len(index)) for item in query] for query in drawn]
    pairs = list(index)
    has_prompts = any(p for p, _ in pairs)
    space = TextSpace(texts=[c for _, c in pairs],
                      prompts=[p for p, _ in pairs] if has_prompts else None,
                      scorer=template.scorer, tokenizer=template.tokenizer,
                      device=template.device, allow_plugins=template.allow_plugins)
    tensor = torch.tensor(items, dtype=torch.long, device=template.device).reshape(
        len(drawn), -1)
    return Queries(tensor, space, which.to(template.device), tuple(names))


class _Context:
    def __init__(self, space: Space, generator: torch.Generator, policy: Optional[PolicyDraw],
                 population: Optional[DrawnPopulation], base_dir: Path) -> None:
        self.space = space
        self.generator = generator
        self.policy = policy
        self.population = population
        self.base_dir = base_dir
        self.bandit = isinstance(space, BanditSpace)
        self.device = space.device

    def draw(self, source: Any, n: int, k: int) -> tuple[Drawn, torch.Tensor, list[str]]:
        """(queries, source index per query, source names)."""
        if isinstance(source, Mix):
            return self.mix(source, n, k)
        drawn = self.one(source, n, k)
        return drawn, torch.zeros(n, dtype=torch.long), [describe(source)]

    def one(self, source: Any, n: int, k: int) -> Drawn:
        if isinstance(source, FromPolicy):
            return self.from_policy(n, k)
        if isinstance(source, FromFile):
            return self.from_rows(read_jsonl(self.base_dir / source.path), source.layout, n, k)
        if isinstance(source, FromHumans):
            if self.bandit:
                return self.from_humans(n, k)
            if source.path is None:
                raise FeedbackError("text `human` examples are read from a file: "
                                    'write `human("data/demos.jsonl")`')
            return self.from_rows(read_examples(self.base_dir / source.path), "completion", n, k)
        raise FeedbackError(f"unknown sampler source {source!r}")

    def mix(self, source: Mix, n: int, k: int) -> tuple[Drawn, torch.Tensor, list[str]]:
        S = len(source.sources)
        w = torch.tensor(source.weights if source.weights else [1.0] * S, dtype=torch.float)
        if len(w) != S or float(w.sum()) <= 0:
            raise FeedbackError("`mix` needs one positive weight per source")
        which = torch.multinomial(w / w.sum(), n, replacement=True,
                                  generator=_cpu(self.generator))
        names = [describe(s) for s in source.sources]
        parts: list[Drawn] = []
        for s, sub in enumerate(source.sources):
            count = int((which == s).sum())
            parts.append(self.draw(sub, count, k)[0] if count else (
                torch.zeros(0, k, dtype=torch.long, device=self.device) if self.bandit else []))
        if self.bandit:
            out = torch.zeros(n, k, dtype=torch.long, device=self.device)
            for s, part in enumerate(parts):
                out[(which == s).to(self.device)] = part  # type: ignore[assignment]
            return out, which, names
        iters = [iter(p) for p in parts]  # type: ignore[arg-type]
        return [next(iters[int(s)]) for s in which], which, names

    def from_policy(self, n: int, k: int) -> Drawn:
        if self.policy is None:
            raise FeedbackError("the `policy` source needs the current policy's sampler "
                                "(policy=...)")
        out = self.policy(n * k, self.generator)
        if self.bandit:
            return torch.as_tensor(out, dtype=torch.long).to(self.device).reshape(n, k)
        items = [_text_item(x) for x in out]
        if len(items) != n * k:
            raise FeedbackError(f"the policy sampler returned {len(items)} texts, not {n * k}")
        return [items[i * k:(i + 1) * k] for i in range(n)]

    def from_rows(self, rows: list[dict[str, Any]], layout: str, n: int, k: int) -> Drawn:
        if not rows:
            raise FeedbackError("the examples file is empty")
        if layout == "auto":
            layout = "preference" if "chosen" in rows[0] and "rejected" in rows[0] else "completion"
        if layout == "preference" and k == 2:
            pick = self.pick(len(rows), n)
            pairs = [[self.item(rows[i], "chosen"), self.item(rows[i], "rejected")]
                     for i in pick]
            return self.pack(pairs)
        keys = ("chosen", "rejected") if layout == "preference" else ("completion",)
        pool = [self.item(r, key) for r in rows for key in keys if key in r or (
            key == "completion" and ("action" in r or "text" in r))]
        pick = self.pick(len(pool), n * k)
        return self.pack([[pool[pick[i * k + j]] for j in range(k)] for i in range(n)])

    def item(self, row: dict[str, Any], key: str) -> Any:
        value = row.get(key, row.get("action", row.get("text")))
        if value is None:
            raise FeedbackError(f"an examples row lacks `{key}`: {sorted(row)}")
        if self.bandit:
            return int(value)
        return (str(row.get("prompt", "")), str(value))

    def pack(self, queries: list[list[Any]]) -> Drawn:
        if self.bandit:
            if not queries:
                return torch.zeros(0, 0, dtype=torch.long, device=self.device)
            out = torch.tensor(queries, dtype=torch.long, device=self.device)
            if int(out.max()) >= self.space.size or int(out.min()) < 0:
                raise FeedbackError(f"an examples file names an action outside "
                                    f"0..{self.space.size - 1}")
            return out
        return queries

    def pick(self, size: int, n: int) -> list[int]:
        gen = _cpu(self.generator)
        if n <= size:
            return torch.randperm(size, generator=gen)[:n].tolist()
        return torch.randint(0, size, (n,), generator=gen).tolist()

    def from_humans(self, n: int, k: int) -> torch.Tensor:
        """Bandit: H_sample members pick actions, P(a) ∝ exp(β_e · v_e(a))."""
        pop = self.population
        if pop is None:
            raise FeedbackError("`human` examples on a bandit task are chosen by H_sample: "
                                "give the sampler `by = POPULATION`")
        assert isinstance(self.space, BanditSpace)
        value = Perception(pop, self.space).value                    # [G, A]
        E, A = pop.size, self.space.size
        v = value[pop.member]                                        # [E, A]
        logits = scaled(pop.beta[:, None], v - v.max(dim=1, keepdim=True).values)
        wide = torch.float64 if self.device.type != "mps" else torch.float32
        probs = torch.softmax(logits.to(wide), dim=1)
        cdf = probs.cumsum(dim=1)
        cdf = cdf / cdf[:, -1:]
        # one sorted array for all evaluators: evaluator e's CDF shifted by e
        flat = (cdf + torch.arange(E, device=cdf.device, dtype=wide)[:, None]).reshape(-1)
        who = torch.randint(0, E, (n * k,), generator=self.generator, device=self.device)
        u = torch.rand(n * k, generator=self.generator, device=self.device, dtype=wide)
        pos = torch.searchsorted(flat, who.to(wide) + u * (1 - 1e-6))
        action = (pos - who * A).clamp(0, A - 1)
        return action.reshape(n, k)


def _text_item(x: Any) -> TextItem:
    if isinstance(x, str):
        return ("", x)
    prompt, completion = x
    return (str(prompt), str(completion))


def _cpu(generator: torch.Generator) -> torch.Generator:
    """A CPU generator for host-side choices, seeded from the stage's generator."""
    if generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)


def describe(source: Any) -> str:
    if isinstance(source, FromFile):
        return f"file:{source.path}"
    if isinstance(source, FromHumans):
        return f"human:{source.path}" if source.path else "human"
    if isinstance(source, Mix):
        return "mix(" + ", ".join(describe(s) for s in source.sources) + ")"
    return "policy"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FeedbackError(f"cannot read examples file {path}: {err.strerror}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise FeedbackError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise FeedbackError(f"{path}:{number}: a row must be a JSON object")
            rows.append(row)
    return rows


def read_examples(path: Path) -> list[dict[str, Any]]:
    """Human-written examples: JSONL rows (prompt/completion or text), or one text per line."""
    if path.suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FeedbackError(f"cannot read examples file {path}: {err.strerror}") from None
    return [{"completion": line} for line in lines if line.strip()]


def disagreement_scores(scores: torch.Tensor) -> torch.Tensor:
    """[m]: query disagreement from ensemble scores [E, m, k] (exposed for the report)."""
    k = scores.shape[-1]
    centred = scores - scores.mean(-1, keepdim=True) if k > 1 else scores
    return centred.std(0, unbiased=False).mean(-1)


__all__: Sequence[str] = ("sample_queries", "read_jsonl", "read_examples", "describe",
                          "disagreement_scores")
