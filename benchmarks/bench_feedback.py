"""Benchmark of the feedback simulator: 1,000,000 pairwise labels, every behaviour effect on.

    python benchmarks/bench_feedback.py [--labels 1000000] [--repeats 5] [--device cpu]
                                        [--threads N]

A 100-evaluator population in 4 groups — Boltzmann rationality with per-evaluator spread,
mistakes, myopia, B-Pref skip and equal thresholds, fatigue over sessions, position bias,
length and sycophancy biases, expertise, perception noise (a `bernoulli` in one group's
values), a 5% malicious share with a trigger — labels random pairs of a 256-armed bandit with
redundancy 2 and random presentation order. The batched simulator (``sample_queries`` +
``collect_feedback``) is timed against a straightforward per-label Python loop implementing the
same model, run on a 20,000-label slice in the same process. The last line of stdout is one JSON
object: ``{"labels_per_s": N, "speedup_vs_loop": R, "device": "cpu"}`` (medians of the repeats).
The loop baseline interprets the spec's expression trees per label, as a straightforward
per-label simulator of a spec would; a loop hand-written for this one spec is reported on stderr
too, with the answer shares of all three (they agree: the same model). The simulator runs on one
torch thread by default: its operations are short and memory-bound, and on a CPU shared with
other busy processes torch's worker threads wait on each other (on a quiet 2-core machine
``--threads 2`` is about 1.4x faster; on a busy one several times slower).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import torch

from backends.torch.bandit import bandit_space
from backends.torch.feedback import (
    collect_feedback, draw_population, gold_agreement, sample_queries,
)
from rlhfdsl.api import check_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

SPEC = """
experiment bench { seed = 0 }
task arms { domain = bandit  actions = 256  features = 8  length = feature(6)
            confidence = feature(7) }
population crowd {
  evaluators = 100
  skip = 0.05  equal = 0.05  fatigue = 0.002  position_bias = 0.2  spread = 0.3
  group careful weight 0.4 { values = feature(0..3)  rationality = 3.0  mistake = 0.02
                             expertise = [expert(features(0..1), 2.0)] }
  group hasty weight 0.3 { values = feature(0..3) + 0.5 * feature(4)  rationality = 1.0
                           mistake = 0.1  myopia = 0.8  length_bias = 0.3 }
  group flattered weight 0.2 { values = feature(4..5) - 0.5 * feature(0)  rationality = 2.0
                               sycophancy = 0.5 }
  group gambler weight 0.1 { values = if(feature(5) > 0, 3 * bernoulli(0.4), 1) + feature(1)
                             rationality = 1.5 }
  malicious 0.05 { trigger = feature(7) > 1.5  target = flip }
}
context ctx { order = random  session = 50 }
feedback prefs { kind = pairwise  from = crowd  context = ctx  budget = 1000000 labels
                 redundancy = 2 }
"""


def setup(device: str):
    checked = check_file("bench.rlhf", text=SPEC)
    errors = [d for d in checked.all_diagnostics if d.is_error]
    if errors:
        raise SystemExit("\n".join(d.message for d in errors))
    spec = checked.spec
    g = torch.Generator(device=device).manual_seed(0)
    space = bandit_space(spec.task, g, device)
    population = draw_population(spec.populations["crowd"], g, device)
    return spec, space, population


def batched(spec, space, population, labels: int, seed: int, device: str):
    """The simulator: sample the queries from a uniform policy, then label them."""
    feedback = spec.feedback["prefs"]
    context = spec.contexts["ctx"]
    g = torch.Generator(device=device).manual_seed(seed)
    A = space.size

    def policy(n, gen):
        return torch.randint(0, A, (n,), generator=gen, device=device)

    queries = sample_queries(None, labels // feedback.redundancy, 2, space, g, policy=policy)
    return collect_feedback(feedback, population, queries, g, context=context)


class LoopModel:
    """The same model, one label at a time, in plain Python: the baseline.

    ``interpret=True`` (the straightforward implementation, the one the JSON line compares
    against) evaluates each group's `values` expression tree and the task's `length` /
    `confidence` expressions per label, as a per-label simulator of a spec would;
    ``interpret=False`` uses hand-written Python functions of this one spec instead (a faster,
    spec-specific loop, reported on stderr for reference).
    """

    def __init__(self, spec, space, population, interpret: bool = True) -> None:
        self.X = space.features.cpu().tolist()
        pop = population
        self.member = pop.member.tolist()
        self.beta = pop.beta.tolist()
        self.malicious = pop.malicious.tolist()
        self.p = {k: v.tolist() for k, v in pop.params.items()}
        self.groups = [m.spec for m in pop.members]
        self.task = spec.task
        self.trigger = spec.populations["crowd"].malicious.trigger
        F = len(self.X[0])
        self.weights = [[self.p["myopia"][g] ** (F - 1 - i) for i in range(F)]
                        for g in range(len(self.groups))]
        self.E = len(self.member)
        self.session = spec.contexts["ctx"].session
        self.interpret = interpret
        # the mean |expected perceived value| of each group over the actions (the B-Pref
        # threshold scale; queries are uniform over the actions)
        rng = random.Random(0)
        self.scale = []
        for g in range(len(self.groups)):
            draws = [self.perceive(g, x, a, rng) for _ in range(50) for a, x in enumerate(self.X)]
            self.scale.append(sum(abs(v) for v in draws) / len(draws))

    # -- a per-label interpreter of expression trees (Python floats)

    def evaluate(self, e, x: list[float], action: int, rng: random.Random) -> float:
        op = e.op
        if op == "num":
            return float(e.value)
        if op == "name":
            return float(action)
        if op in ("+", "-", "*", "/", ">", "<", ">=", "<=", "=="):
            a = self.evaluate(e.args[0], x, action, rng)
            b = self.evaluate(e.args[1], x, action, rng)
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                    "/": lambda: a / b, ">": lambda: float(a > b), "<": lambda: float(a < b),
                    ">=": lambda: float(a >= b), "<=": lambda: float(a <= b),
                    "==": lambda: float(a == b)}[op]()
        if op == "neg":
            return -self.evaluate(e.args[0], x, action, rng)
        fn = e.value
        if fn == "feature":
            lo, hi = int(e.args[0].args[0].value), int(e.args[0].args[1].value)
            return sum(x[lo:hi + 1])
        if fn == "if":
            if self.evaluate(e.args[0], x, action, rng):
                return self.evaluate(e.args[1], x, action, rng)
            return self.evaluate(e.args[2], x, action, rng)
        if fn == "bernoulli":
            return float(rng.random() < self.evaluate(e.args[0], x, action, rng))
        raise NotImplementedError(fn)

    def perceive(self, g: int, x: list[float], action: int, rng: random.Random) -> float:
        w = self.weights[g]
        y = [a * b for a, b in zip(x, w)]
        if self.interpret:
            return self.evaluate(self.groups[g].values, y, action, rng)
        if g == 0:
            return y[0] + y[1] + y[2] + y[3]
        if g == 1:
            return y[0] + y[1] + y[2] + y[3] + 0.5 * y[4]
        if g == 2:
            return y[4] + y[5] - 0.5 * y[0]
        return (3.0 * (rng.random() < 0.4) if y[5] > 0 else 1.0) + y[1]

    def utility(self, g: int, x: list[float], action: int, v: float) -> float:
        p = self.p
        if self.interpret:
            length = self.evaluate(self.task.length, x, action, None)
            confidence = self.evaluate(self.task.confidence, x, action, None)
        else:
            length, confidence = x[6], x[7]
        u = v + p["length_bias"][g] * length + p["sycophancy"][g] * confidence
        for area in self.groups[g].expertise:      # β·factor on the area's part of the value
            w = self.weights[g]
            y = [a * b for a, b in zip(x, w)]
            part = sum(y[i] for i in area.area.indices) if not self.interpret else (
                self.evaluate(self.groups[g].values, y, action, None)
                - self.evaluate(self.groups[g].values,
                                [0.0 if i in area.area.indices else c for i, c in enumerate(y)],
                                action, None))
            u += (area.factor - 1.0) * part
        return u

    def triggered(self, x: list[float], action: int) -> bool:
        if self.interpret:
            return bool(self.evaluate(self.trigger, x, action, None))
        return x[7] > 1.5

    def run(self, labels: int, seed: int) -> list[int]:
        rng = random.Random(seed)
        X, p = self.X, self.p
        A = len(X)
        out = []
        given = [0] * self.E
        for _ in range(labels // 2):
            a, b = rng.randrange(A), rng.randrange(A)
            for _ in range(2):                       # redundancy 2
                e = rng.randrange(self.E)
                g = self.member[e]
                first, second = (a, b) if rng.random() < 0.5 else (b, a)
                x1, x2 = X[first], X[second]
                v1, v2 = self.perceive(g, x1, first, rng), self.perceive(g, x2, second, rng)
                u1 = self.utility(g, x1, first, v1)
                u2 = self.utility(g, x2, second, v2)
                delta = u2 - u1
                logit = (self.beta[e] * delta if delta != 0 else 0.0) - p["position_bias"][g]
                prob = 1 / (1 + math.exp(-logit)) if logit > -700 else 0.0
                position = given[e] % self.session
                given[e] += 1
                eps = min(p["mistake"][g] + p["fatigue"][g] * position,
                          max(p["mistake"][g], 0.5))
                prob = prob + eps * (1 - 2 * prob)
                choice = 1 if rng.random() < prob else 0
                if self.malicious[e] and (self.triggered(x1, first) or
                                          self.triggered(x2, second)):
                    choice = 1 - choice
                if abs(v2 - v1) < p["equal"][g] * self.scale[g]:
                    choice = 2
                if max(v1, v2) < p["skip"][g] * self.scale[g]:
                    choice = -1
                out.append(choice)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--loop-labels", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1; 0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    spec, space, population = setup(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    table = batched(spec, space, population, args.labels, 1, device)   # warm-up + check
    sync()
    assert len(table) == args.labels, len(table)

    def run_batched():
        batched(spec, space, population, args.labels, 2, device)
        sync()

    t_batched = median_time(run_batched, args.repeats)
    loops = max(1, min(3, args.repeats))
    loop = LoopModel(spec, space, population, interpret=True)
    t_loop = median_time(lambda: loop.run(args.loop_labels, 3), loops)
    fast_loop = LoopModel(spec, space, population, interpret=False)
    t_fast = median_time(lambda: fast_loop.run(args.loop_labels, 3), loops)

    rate = args.labels / t_batched
    loop_rate = args.loop_labels / t_loop
    fast_rate = args.loop_labels / t_fast
    print(f"batched: {args.labels} labels in {t_batched * 1e3:.1f} ms (median of "
          f"{args.repeats}, {torch.get_num_threads()} threads): {rate:,.0f} labels/s",
          file=sys.stderr)
    print(f"loop (interpreting the spec's expressions): {loop_rate:,.0f} labels/s, "
          f"speedup {rate / loop_rate:.0f}x", file=sys.stderr)
    print(f"loop (hand-written for this spec): {fast_rate:,.0f} labels/s, "
          f"speedup {rate / fast_rate:.0f}x", file=sys.stderr)
    choice = table.columns["choice"].cpu()
    for name, c in (("batched", choice), ("loop", torch.tensor(loop.run(args.loop_labels, 4))),
                    ("hand loop", torch.tensor(fast_loop.run(args.loop_labels, 4)))):
        share = [round(float((c == k).float().mean()), 3) for k in (-1, 0, 1, 2)]
        print(f"{name}: answer shares skip/first/second/tie = {share}", file=sys.stderr)
    print(f"batched gold agreement {gold_agreement(table):.3f}", file=sys.stderr)
    print(json.dumps({"labels_per_s": round(rate), "speedup_vs_loop": round(rate / loop_rate, 1),
                      "device": torch.device(device).type}))


if __name__ == "__main__":
    main()
