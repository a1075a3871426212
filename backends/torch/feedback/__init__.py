"""The human-feedback model of Appendix A (Eq. 4), vectorised on the run's device.

    H_sample, H_feedback ~ ΔH
    x_i ~ s(π_θ, H_sample, c_sample_i)
    y_i = f(v(π_θ, x_i), H_feedback, c_feedback_i)

Plain functions over typed-spec objects, tensors, a ``torch.Generator`` and a device; no global
state, no file I/O except reading an offline examples file a sampler names. A feedback stage
calls, in order:

1. the item space — bandit: ``backends.torch.bandit.bandit_space(task, generator, device)``
   (features drawn from the task spec); text: ``TextSpace(texts=[], scorer=..., tokenizer=...,
   device=...)`` as a template that sampled completions inherit;
2. calibration, only when a member says `rationality = agreement(p)` / `accuracy(p)`:
   ``betas = calibrate_population(population_spec, space, pairs)`` on a fixed [n, 2] sample of
   pairwise queries (e.g. from ``sample_queries`` with its own generator) → {member: β};
3. ΔH, drawn once per run and separately for H_feedback and H_sample:
   ``H = draw_population(population_spec, generator, device, rationality=betas)``;
4. the round's budget: ``n = queries_for_round(feedback, schedule.rounds, round)``;
5. s: ``queries = sample_queries(sampler_spec_or_None, n, items_per_query(feedback.kind),
   space, generator, policy=draw_fn, population=H_sample, ensemble=scores_fn,
   base_dir=spec_dir)``;
6. v, c, f: ``table = collect_feedback(feedback, H, queries, generator, view=view_spec,
   context=context_spec, round=round, models={"rm": score_fn})`` → a
   :class:`backends.torch.labels.LabelTable` with provenance;
7. audits: ``agreement(table)``, ``gold_agreement(table)``, ``agreement_report(table)``;
   gold rewards for evaluation: ``gold_values(H, space, context=..., round=...)``.

Modules, in the order of the flow: ``items`` (spaces, queries), ``expressions`` (Expr trees:
gold = expectation over random primitives, perceived = fresh draws), ``population`` (ΔH),
``views`` (v), ``contexts`` (c: order, sessions, drift), ``behaviour`` (what each member
perceives: values, biases, expertise, triggers), ``samplers`` (s), ``kinds`` (f: the eight
kinds, listed once, documented there; implemented in ``comparisons``, ``ratings`` and ``rich``
over the per-label ``rows``), ``collect`` (one round → label table with provenance; budgets),
``calibration`` (agreement, β). The benchmark is ``benchmarks/bench_feedback.py``.

Everything is batched: the only Python loops run over members (groups), rounds of drift, or
queries' sources — never over labels or evaluators.
"""

from backends.torch.feedback.behaviour import Perception, gold_values
from backends.torch.feedback.calibration import (
    agreement, agreement_report, calibrate_population, gold_agreement, solve_beta,
)
from backends.torch.feedback.collect import (
    collect_feedback, labels_for_round, queries_for_round, total_labels,
)
from backends.torch.feedback.errors import FeedbackError, PluginsNotAllowed
from backends.torch.feedback.expressions import Scope, evaluate, evaluate_condition
from backends.torch.feedback.items import BanditSpace, ByteTokenizer, Queries, TextSpace
from backends.torch.feedback.kinds import KINDS
from backends.torch.feedback.population import DrawnPopulation, draw_population
from backends.torch.feedback.samplers import sample_queries
from rlhfdsl.spec.feedback import items_per_query

__all__ = [
    "BanditSpace", "ByteTokenizer", "DrawnPopulation", "FeedbackError", "KINDS", "Perception",
    "PluginsNotAllowed", "Queries", "Scope", "TextSpace", "agreement", "agreement_report",
    "calibrate_population", "collect_feedback", "draw_population", "evaluate",
    "evaluate_condition", "gold_agreement", "gold_values", "items_per_query", "labels_for_round",
    "queries_for_round", "sample_queries", "solve_beta", "total_labels",
]
