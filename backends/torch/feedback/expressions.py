"""Vectorised evaluation of expression trees (:class:`rlhfdsl.spec.base.Expr`) on a batch of items.

An expression is evaluated over a :class:`Scope` of M items at once — bandit actions with their
(possibly viewed) feature rows, or texts with their scorer values — in one of two modes:

* **perceived** (the default): random primitives (`bernoulli`, `normal`, `uniform`) are drawn
  afresh from the generator for every row — what one evaluator perceives on one label;
* **gold** (``expectation=True``): the expectation over those draws. It is exact where the tree
  is affine in its random parts (sums, products of independent subtrees, `if` with a random or
  fixed condition, `and`/`or`/`not` of independent conditions), and a Monte Carlo average with a
  fixed internal seed (so still deterministic) under non-linear functions of random subtrees
  (`abs`, `min`, `max`, `clip`, `exp`, `log`, comparisons, division by a random value).

Every random primitive in a tree is its own independent draw, so two different subtrees are
independent given the item; that is what makes the exact rules above valid.

``rows`` (int64 [R] indices into the scope) evaluates the expression for R rows — one per
label-item — while computing every deterministic subtree only once per distinct item and
gathering it: a deterministic value over a million labels costs one gather.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Optional

import torch

from backends.torch.feedback.errors import FeedbackError, PluginsNotAllowed
from rlhfdsl.spec.base import Expr

RANDOM = {"bernoulli", "normal", "uniform"}
TEXT_SCORERS = {"length", "keyword", "count", "sentiment", "confidence", "regex", "similarity"}
TEXT_NAMES = {"length", "sentiment", "confidence"}
MC_SEED = 20230727  # the internal seed of Monte Carlo expectations (gold is deterministic)
MC_BUDGET = 1 << 22  # draws × items per Monte Carlo expectation

TermKey = tuple[str, tuple[Any, ...]]


class Scope:
    """M items an expression is evaluated on.

    Bandit: ``features`` float [M, F] and ``action`` int64 [M]. Text: ``texts`` (M strings) and
    ``scorer(name, texts, *args) -> [M]``; scorer values are cached per term, and ``terms`` may be
    given up front (the language-feedback gradient passes leaf tensors that require grad).
    """

    def __init__(self, domain: str, size: int, device: torch.device | str, *,
                 features: Optional[torch.Tensor] = None, action: Optional[torch.Tensor] = None,
                 texts: Optional[list[str]] = None, scorer: Optional[Callable[..., Any]] = None,
                 terms: Optional[dict[TermKey, torch.Tensor]] = None,
                 zero: frozenset[str] = frozenset(), allow_plugins: bool = False,
                 dtype: torch.dtype = torch.float32) -> None:
        self.domain = domain
        self.size = size
        self.device = torch.device(device)
        self.features = features
        self.action = action
        self.texts = texts
        self.scorer = scorer
        self.terms: dict[TermKey, torch.Tensor] = dict(terms or {})
        self.zero = zero
        self.allow_plugins = allow_plugins
        self.dtype = dtype

    @staticmethod
    def bandit(features: torch.Tensor, action: Optional[torch.Tensor] = None,
               allow_plugins: bool = False) -> Scope:
        if action is None:
            action = torch.arange(features.shape[0], device=features.device)
        return Scope("bandit", int(features.shape[0]), features.device, features=features,
                     action=action, allow_plugins=allow_plugins, dtype=features.dtype)

    @staticmethod
    def text(texts: list[str], scorer: Callable[..., Any], device: torch.device | str = "cpu",
             allow_plugins: bool = False) -> Scope:
        return Scope("text", len(texts), device, texts=texts, scorer=scorer,
                     allow_plugins=allow_plugins)

    def with_zeroed(self, names: frozenset[str]) -> Scope:
        """The same texts with these scorers reading 0 (the value without that term)."""
        return Scope(self.domain, self.size, self.device, features=self.features,
                     action=self.action, texts=self.texts, scorer=self.scorer,
                     terms={k: v for k, v in self.terms.items() if k[0] not in names},
                     zero=self.zero | names, allow_plugins=self.allow_plugins, dtype=self.dtype)

    def term(self, key: TermKey) -> torch.Tensor:
        """A text scorer's values on the M texts (cached)."""
        if key[0] in self.zero:
            return torch.zeros(self.size, device=self.device, dtype=self.dtype)
        found = self.terms.get(key)
        if found is None:
            if self.texts is None or self.scorer is None:
                raise FeedbackError(f"`{term_label(key)}` needs a text task")
            values = self.scorer(key[0], self.texts, *key[1])
            found = torch.as_tensor(values, dtype=self.dtype).to(self.device).reshape(self.size)
            self.terms[key] = found
        return found


# ------------------------------------------------------------------------------ inspection


def is_random(expr: Expr) -> bool:
    """Whether the tree holds a random primitive (its value differs between draws)."""
    if expr.op == "call" and expr.value in RANDOM:
        return True
    return any(is_random(a) for a in expr.args)


def term_key(expr: Expr) -> Optional[TermKey]:
    """The text scorer term a node reads (`sentiment`, `length(12)`), or None."""
    if expr.op == "name" and expr.value in TEXT_NAMES:
        return (str(expr.value), ())
    if expr.op == "call" and expr.value in TEXT_SCORERS:
        return (str(expr.value), tuple(_constant(a) for a in expr.args))
    return None


def scorer_terms(expr: Expr) -> list[TermKey]:
    """The text scorer terms of an expression, in order of first appearance."""
    found: list[TermKey] = []

    def walk(node: Expr) -> None:
        key = term_key(node)
        if key is not None:
            if key not in found:
                found.append(key)
            return
        for a in node.args:
            walk(a)

    walk(expr)
    return found


def term_label(key: TermKey) -> str:
    name, args = key
    if not args:
        return name
    shown = ", ".join(f'"{a}"' if isinstance(a, str) else _number(a) for a in args)
    return f"{name}({shown})"


def _number(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _constant(expr: Expr) -> Any:
    if expr.op in ("num", "str", "bool"):
        return expr.value
    if expr.op == "neg" and expr.args[0].op == "num":
        return -expr.args[0].value
    raise FeedbackError("scorer arguments must be literal numbers or strings")


# ------------------------------------------------------------------------------ evaluation


def evaluate(expr: Expr, scope: Scope, *, rows: Optional[torch.Tensor] = None,
             generator: Optional[torch.Generator] = None,
             expectation: bool = False) -> torch.Tensor:
    """The expression's value per row (``rows`` given: [R]) or per item of the scope ([M]).

    Perceived values draw random primitives from ``generator``; ``expectation=True`` gives the
    gold value (no generator needed). Conditions evaluate to float 0/1 (their probability in
    the gold mode).
    """
    ev = _Evaluator(scope, rows, generator, expectation)
    out = ev.mean(expr) if expectation else ev.value(expr)
    return ev.full(out)


def evaluate_condition(expr: Expr, scope: Scope, *, rows: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A condition (trigger) per row or item, as bool, with fresh draws."""
    ev = _Evaluator(scope, rows, generator, False)
    out = ev.value(expr)
    if out.dtype != torch.bool:
        out = out != 0
    return ev.full(out)


class _Evaluator:
    def __init__(self, scope: Scope, rows: Optional[torch.Tensor],
                 generator: Optional[torch.Generator], expectation: bool) -> None:
        self.scope = scope
        self.rows = rows
        self.generator = generator
        self.expectation = expectation
        self.n = int(rows.numel()) if rows is not None else scope.size
        self._random: dict[int, bool] = {}
        self._base: dict[int, torch.Tensor] = {}

    # -- helpers

    def full(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0:
            x = x.expand(self.n)
        if x.dtype != torch.bool and x.dtype != self.scope.dtype:
            x = x.to(self.scope.dtype)
        return x if x.shape[0] == self.n else x.reshape(self.n)

    def const(self, value: Any) -> torch.Tensor:
        if isinstance(value, bool):
            return torch.tensor(value, device=self.scope.device)
        return torch.tensor(float(value), dtype=self.scope.dtype, device=self.scope.device)

    def random(self, node: Expr) -> bool:
        key = id(node)
        found = self._random.get(key)
        if found is None:
            found = (node.op == "call" and node.value in RANDOM) or any(
                self.random(a) for a in node.args)
            self._random[key] = found
        return found

    # -- the three modes: base (deterministic, per item), value (fresh draws, per row),
    #    mean (expectation, per row)

    def base(self, node: Expr) -> torch.Tensor:
        key = id(node)
        found = self._base.get(key)
        if found is None:
            found = self.compute(node, self.base, self.scope.size)
            self._base[key] = found
        return found

    def value(self, node: Expr) -> torch.Tensor:
        if not self.random(node):
            b = self.base(node)
            if self.rows is None or b.dim() == 0:
                return b
            return b.index_select(0, self.rows)
        return self.compute(node, self.value, self.n)

    def mean(self, node: Expr) -> torch.Tensor:
        if not self.random(node):
            return self.value(node)
        op, args = node.op, node.args
        if op == "call" and node.value == "bernoulli":
            return self.mean(args[0]).clamp(0.0, 1.0)
        if op == "call" and node.value == "normal":
            return self.mean(args[0]) if args else self.const(0.0)
        if op == "call" and node.value == "uniform":
            low = self.mean(args[0]) if len(args) > 0 else self.const(0.0)
            high = self.mean(args[1]) if len(args) > 1 else self.const(1.0)
            return (low + high) / 2
        if op == "+":
            return self.mean(args[0]) + self.mean(args[1])
        if op == "-":
            return self.mean(args[0]) - self.mean(args[1])
        if op == "neg":
            return -self.mean(args[0])
        if op == "*":
            return self.mean(args[0]) * self.mean(args[1])
        if op == "/" and not self.random(args[1]):
            return self.mean(args[0]) / self.value(args[1])
        if op == "call" and node.value == "if":
            p = self.probability(args[0])
            return p * self.mean(args[1]) + (1 - p) * self.mean(args[2])
        if op in ("and", "or", "not", "<", "<=", ">", ">="):
            return self.probability(node)
        return self.monte_carlo(node)

    def probability(self, node: Expr) -> torch.Tensor:
        """P(condition) in the gold mode."""
        if not self.random(node):
            return self.value(node).to(self.scope.dtype)
        if node.op == "not":
            return 1 - self.probability(node.args[0])
        if node.op == "and":
            return self.probability(node.args[0]) * self.probability(node.args[1])
        if node.op == "or":
            a, b = self.probability(node.args[0]), self.probability(node.args[1])
            return a + b - a * b
        exact = self.primitive_comparison(node)
        return exact if exact is not None else self.monte_carlo(node)

    def primitive_comparison(self, node: Expr) -> Optional[torch.Tensor]:
        """P(X op c) for a random primitive X with fixed arguments and a fixed c, exactly."""
        if node.op not in ("<", "<=", ">", ">=") or len(node.args) != 2:
            return None
        left, right = node.args
        if self.random(right) and not self.random(left):
            flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[node.op]
            left, right, op = right, left, flipped
        else:
            op = node.op
        if not (left.op == "call" and left.value in RANDOM and not self.random(right)
                and not any(self.random(a) for a in left.args)):
            return None
        c = _num(self.value(right))
        args = [_num(self.value(a)) for a in left.args]
        if left.value == "bernoulli":
            p = args[0].clamp(0.0, 1.0)
            one = (1.0 > c) if op == ">" else (1.0 >= c) if op == ">=" else (
                1.0 < c) if op == "<" else (1.0 <= c)
            zero = (0.0 > c) if op == ">" else (0.0 >= c) if op == ">=" else (
                0.0 < c) if op == "<" else (0.0 <= c)
            below = p * _num(one) + (1 - p) * _num(zero)
            return below
        if left.value == "uniform":
            low = args[0] if len(args) > 0 else self.const(0.0)
            high = args[1] if len(args) > 1 else self.const(1.0)
            cdf = ((c - low) / (high - low)).clamp(0.0, 1.0)
        else:
            mean = args[0] if len(args) > 0 else self.const(0.0)
            std = args[1] if len(args) > 1 else self.const(1.0)
            cdf = 0.5 * (1 + torch.erf((c - mean) / (std * math.sqrt(2))))
        return cdf if op in ("<", "<=") else 1 - cdf

    def monte_carlo(self, node: Expr) -> torch.Tensor:
        rows = self.rows if self.rows is not None else torch.arange(
            self.scope.size, device=self.scope.device)
        draws = max(64, min(4096, MC_BUDGET // max(1, rows.numel())))
        gen = torch.Generator(device=self.scope.device).manual_seed(MC_SEED)
        sampler = _Evaluator(self.scope, rows.repeat(draws), gen, False)
        sampler._base = self._base
        out = sampler.full(sampler.value(node)).to(self.scope.dtype)
        return out.reshape(draws, rows.numel()).mean(0)

    # -- one node, given how to evaluate its children

    def compute(self, node: Expr, sub: Callable[[Expr], torch.Tensor], n: int) -> torch.Tensor:
        op, args = node.op, node.args
        if op in ("num", "bool"):
            return self.const(node.value)
        if op == "str":
            raise FeedbackError(f'a string ("{node.value}") is not a value here')
        if op == "name":
            return self.name(node, n)
        if op == "neg":
            return -sub(args[0])
        if op == "not":
            return ~_bool(sub(args[0]))
        if op in ("and", "or"):
            a, b = _bool(sub(args[0])), _bool(sub(args[1]))
            return a & b if op == "and" else a | b
        if op in ("+", "-", "*", "/"):
            a, b = _num(sub(args[0])), _num(sub(args[1]))
            return {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div}[op](a, b)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            a, b = _num(sub(args[0])), _num(sub(args[1]))
            return {"==": torch.eq, "!=": torch.ne, "<": torch.lt, "<=": torch.le,
                    ">": torch.gt, ">=": torch.ge}[op](a, b)
        if op == "call":
            return self.call(node, sub, n)
        raise FeedbackError(f"cannot evaluate `{op}` here")

    def name(self, node: Expr, n: int) -> torch.Tensor:
        name = node.value
        if name == "inf":
            return self.const(math.inf)
        if name == "action":
            if self.scope.action is None:
                raise FeedbackError("`action` needs a bandit task")
            return self.scope.action.to(self.scope.dtype)
        if name in TEXT_NAMES:
            return self.scope.term((str(name), ()))
        raise FeedbackError(f"unknown name `{name}`")

    def call(self, node: Expr, sub: Callable[[Expr], torch.Tensor], n: int) -> torch.Tensor:
        fn, args, scope = node.value, node.args, self.scope
        if fn in RANDOM:
            return self.draw(fn, [sub(a) for a in args], n)
        if fn == "if":
            cond = _bool(sub(args[0]))
            return torch.where(cond, _num(sub(args[1])), _num(sub(args[2])))
        if fn == "abs":
            return _num(sub(args[0])).abs()
        if fn in ("min", "max"):
            a, b = _num(sub(args[0])), _num(sub(args[1]))
            return torch.minimum(a, b) if fn == "min" else torch.maximum(a, b)
        if fn == "clip":
            x, low, high = (_num(sub(a)) for a in args)
            return torch.maximum(torch.minimum(x, high), low)
        if fn == "exp":
            return _num(sub(args[0])).exp()
        if fn == "log":
            return _num(sub(args[0])).log()
        if fn == "feature":
            start, stop = _range(args[0])
            features = self.features(stop)
            return features[:, start:stop + 1].sum(1)
        if fn == "weights":
            w = [float(_constant(a)) for a in args[0].args]
            features = self.features(len(w) - 1)
            weight = torch.tensor(w, dtype=features.dtype, device=features.device)
            return features[:, :len(w)] @ weight
        if fn == "table":
            values = [float(_constant(a)) for a in args[0].args]
            if scope.action is None:
                raise FeedbackError("`table` needs a bandit task")
            table = torch.tensor(values + [0.0], dtype=scope.dtype, device=scope.device)
            return table[scope.action.clamp(0, len(values))]
        if fn in TEXT_SCORERS:
            return scope.term(term_key(node))  # type: ignore[arg-type]
        if fn == "plugin":
            return self.plugin(str(_constant(args[0])))
        raise FeedbackError(f"unknown function `{fn}`")

    def features(self, last: int) -> torch.Tensor:
        features = self.scope.features
        if features is None:
            raise FeedbackError("`feature` and `weights` need a bandit task")
        if last >= features.shape[1]:
            raise FeedbackError(f"feature {last} does not exist: the task has "
                                f"{features.shape[1]} features (0..{features.shape[1] - 1})")
        return features

    def draw(self, fn: str, args: list[torch.Tensor], n: int) -> torch.Tensor:
        if self.generator is None:
            raise FeedbackError("perceived values need a generator")
        dev, dt = self.scope.device, self.scope.dtype
        if fn == "bernoulli":
            u = torch.rand(n, generator=self.generator, device=dev, dtype=dt)
            return (u < _num(args[0])).to(dt)
        if fn == "normal":
            mean = _num(args[0]) if len(args) > 0 else self.const(0.0)
            std = _num(args[1]) if len(args) > 1 else self.const(1.0)
            return mean + std * torch.randn(n, generator=self.generator, device=dev, dtype=dt)
        low = _num(args[0]) if len(args) > 0 else self.const(0.0)
        high = _num(args[1]) if len(args) > 1 else self.const(1.0)
        u = torch.rand(n, generator=self.generator, device=dev, dtype=dt)
        return low + (high - low) * u

    def plugin(self, target: str) -> torch.Tensor:
        scope = self.scope
        if not scope.allow_plugins:
            raise PluginsNotAllowed(
                f'`plugin("{target}")` runs user code; allow it with `rlhfc run --allow-plugins`')
        module_name, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module_name), attr or "score")
        out = fn(scope.texts) if scope.domain == "text" else fn(scope.features, scope.action)
        return torch.as_tensor(out, dtype=scope.dtype).to(scope.device).reshape(scope.size)


def _range(expr: Expr) -> tuple[int, int]:
    if expr.op == "range":
        return int(expr.args[0].value), int(expr.args[1].value)  # type: ignore[arg-type]
    if expr.op == "num":
        return int(expr.value), int(expr.value)  # type: ignore[arg-type]
    raise FeedbackError("`feature` takes an index or a range `i..j`")


def _num(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype == torch.bool else x


def _bool(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.bool else x != 0
