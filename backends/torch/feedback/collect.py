"""y_i = f(v(π_θ, x_i), H_feedback, c_i): one round of feedback, as a label table with provenance.

:func:`collect_feedback` answers every query with ``redundancy`` evaluators of a drawn
population, in one batched pass:

1. who labels when — evaluators assigned in lockstep cycles, sessions (:mod:`.contexts`);
2. what each label's evaluator is shown — the query's items in the context's presentation order;
3. what it perceives — :class:`.behaviour.Perception` (view, myopia, drift, biases, expertise,
   perception noise, the malicious trigger);
4. its behaviour parameters per row — β, ε grown by fatigue, position bias, B-Pref skip and
   equal thresholds relative to the mean |perceived value| of the queried items;
5. the answer — the kind's function in :data:`.kinds.KINDS`;
6. provenance — every row records its query, items as shown, evaluator, group, malicious
   flag, trigger, round, session, cost and gold values (``backends/torch/labels.py``).

:func:`labels_for_round` splits a budget (labels, or annotator seconds at the kind's cost per
label) evenly over the schedule's rounds.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch

from backends.torch.feedback.behaviour import ModelFn, Perception
from backends.torch.feedback.contexts import (
    assign_evaluators, order_of, present, sessions,
)
from backends.torch.feedback.errors import FeedbackError
from backends.torch.feedback.items import Queries, TextSpace
from backends.torch.feedback.kinds import KINDS, RATING_KINDS, Rows
from backends.torch.feedback.population import DrawnPopulation
from backends.torch.labels import LabelTable
from rlhfdsl.spec.feedback import Context, Feedback, View, cost_per_label, items_per_query


def total_labels(feedback: Feedback) -> int:
    """The whole budget in labels (a budget in seconds buys floor(seconds / cost) labels)."""
    budget = feedback.budget
    if budget.unit == "labels":
        return int(budget.amount)
    return int(math.floor(budget.amount / cost_per_label(feedback.kind, feedback.cost) + 1e-9))


def labels_for_round(feedback: Feedback, rounds: int, round: int) -> int:
    """Labels of one round: the total divided by the rounds (earlier rounds take the rest)."""
    total = total_labels(feedback)
    return total // rounds + (1 if round < total % rounds else 0)


def queries_for_round(feedback: Feedback, rounds: int, round: int) -> int:
    """Queries of one round: its labels divided by the evaluators per query (`redundancy`)."""
    return labels_for_round(feedback, rounds, round) // feedback.redundancy


def collect_feedback(feedback: Feedback, population: DrawnPopulation, queries: Queries,
                     generator: torch.Generator, *, view: Optional[View] = None,
                     context: Optional[Context] = None, round: int = 0,
                     models: Optional[Mapping[str, ModelFn]] = None,
                     perception: Optional[Perception] = None) -> LabelTable:
    """Label every query ``feedback.redundancy`` times (see the module doc)."""
    kind = feedback.kind
    K = items_per_query(kind)
    if queries.k != K:
        raise FeedbackError(f"`{kind.type}` feedback shows {K} items per query; the queries "
                            f"hold {queries.k}")
    dev = population.device
    n, R = len(queries), feedback.redundancy
    if perception is None:
        perception = Perception(population, queries.space, view=view, context=context,
                                round=round, models=models)
    assignment = assign_evaluators(n, R, population.size, generator, dev)
    evaluator = assignment.evaluator
    member = population.member.index_select(0, evaluator)
    sampled = queries.items.to(dev)
    query = torch.arange(n, device=dev)
    if R > 1:
        query = query[:, None].expand(n, R).reshape(-1)
    items, columns = present(sampled, R, order_of(context), generator)
    perceived = perception.rows(member, items, generator, rating=kind.type in RATING_KINDS,
                                columns=columns)
    session, position = sessions(assignment, context)

    # behaviour parameters per evaluator (E values), then one index_select per row column
    params = population.param
    per_member = population.member
    eps = params("mistake")[per_member]
    skip, equal = params("skip"), params("equal")
    scale = torch.zeros_like(skip)
    if bool((skip > 0).any() or (equal > 0).any()):
        # B-Pref's thresholds are relative to the mean |perceived value| of the queried items
        counts = torch.bincount(sampled.reshape(-1), minlength=perception.size).to(
            perception.value.dtype)
        scale = (perception.value.abs() @ counts) / counts.sum().clamp(min=1)    # [G]
    skip_threshold = torch.where(skip > 0, skip * scale, torch.full_like(skip, -float("inf")))
    equal_threshold = equal * scale

    def row(values: torch.Tensor) -> torch.Tensor:
        return values.index_select(0, evaluator)

    mistake = row(eps)
    if bool((params("fatigue") > 0).any()):
        cap = row(eps.clamp(min=0.5))
        mistake = torch.minimum(mistake + row(params("fatigue")[per_member])
                                * position.to(mistake.dtype), cap)
    trigger = perceived.trigger
    triggered = None
    if trigger is not None:
        triggered = trigger[:, 0] | trigger[:, 1] if K == 2 else trigger.any(dim=1)
    malicious = population.malicious.index_select(0, evaluator)
    target = population.spec.malicious.target if population.spec.malicious else "flip"
    rows = Rows(items=items, evaluator=evaluator, member=member, perceived=perceived,
                beta=row(population.beta), mistake=mistake,
                position_bias=row(params("position_bias")[per_member]),
                skip_threshold=row(skip_threshold[per_member]),
                equal_threshold=row(equal_threshold[per_member]),
                attack=(malicious & triggered) if triggered is not None else None,
                target=target, perception=perception, population=population)
    answers, answer_meta = KINDS[kind.type](kind, rows, generator)

    N = items.shape[0]
    table_columns = {
        "query": query,
        "items": items,
        "evaluator": evaluator,
        "group": member,
        "malicious": malicious,
        "triggered": triggered if triggered is not None else torch.zeros(
            N, dtype=torch.bool, device=dev),
        "round": torch.full((N,), round, dtype=torch.long, device=dev),
        "session": session,
        "cost": torch.full((N,), cost_per_label(kind, feedback.cost), device=dev),
        "gold": perceived.gold,
        # extensions (labels.py EXTRA_COLUMNS)
        "position": position,
        "source": queries.source.to(dev).index_select(0, query),  # type: ignore[union-attr]
        "gold_population": perceived.gold_population,
        **answers,
    }
    meta = {
        "feedback": feedback.name,
        "k": K,
        "groups": population.names,
        "members": [m.kind for m in population.members],
        "population": population.spec.name,
        "evaluators": population.size,
        "view": view.name if view is not None else None,
        "context": context.name if context is not None else None,
        "order": order_of(context),
        "redundancy": R,
        "sources": list(queries.sources),
        **answer_meta,
    }
    if isinstance(queries.space, TextSpace):
        meta["texts"] = list(queries.space.texts)
        meta["shown_texts"] = list(perception.shown_texts)
        if queries.space.prompts is not None:
            meta["prompts"] = list(queries.space.prompts)
    table = LabelTable(kind.type, {k: v.contiguous() for k, v in table_columns.items()}, meta)
    return table
