"""s: sources (policy, offline files, human-written, mixes), query selection, budgets."""

from __future__ import annotations

import json

import pytest
import torch
from feedback_helpers import bandit, fake_score, text

from backends.torch.bandit import bandit_space
from backends.torch.feedback import (
    FeedbackError, TextSpace, draw_population, labels_for_round, queries_for_round,
    sample_queries, total_labels,
)
from rlhfdsl.spec.data import from_data
from rlhfdsl.spec.feedback import Sampler

BASE = """
population crowd { evaluators = 30 group g weight 1 { values = feature(0)  rationality = 5.0 } }
"""


def sampler(**data):
    return from_data(Sampler, {"name": "s", **data})


def uniform_policy(actions):
    return lambda n, g: torch.randint(0, actions, (n,), generator=g)


def test_policy_source_and_random_selection(gen):
    spec = bandit(BASE, actions=20, features=1)
    space = bandit_space(spec.task, gen(0))
    q = sample_queries(None, 50, 2, space, gen(1), policy=uniform_policy(20))
    assert q.items.shape == (50, 2) and q.sources == ("policy",)
    with pytest.raises(FeedbackError, match="policy"):
        sample_queries(None, 5, 2, space, gen(1))


def test_offline_preference_and_completion_files(tmp_path, gen):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("\n".join(json.dumps({"prompt": "p", "chosen": f"yes {i}",
                                           "rejected": f"no {i}"}) for i in range(10)))
    done = tmp_path / "done.jsonl"
    done.write_text("\n".join(json.dumps({"prompt": f"q{i}", "completion": f"c {i}",
                                          "label": 1}) for i in range(6)))
    template = TextSpace([], scorer=fake_score)
    q = sample_queries(sampler(source={"type": "file", "path": "prefs.jsonl"}), 8, 2, template,
                       gen(0), base_dir=tmp_path)
    texts = q.space.texts
    for a, b in q.items.tolist():
        assert texts[a].startswith("yes") and texts[b].startswith("no")
        assert texts[a][4:] == texts[b][3:]
    assert q.space.prompts is not None and set(q.space.prompts) == {"p"}
    q = sample_queries(sampler(source={"type": "file", "path": "done.jsonl"}), 4, 1, template,
                       gen(0), base_dir=tmp_path)
    assert all(q.space.texts[i].startswith("c ") for i in q.items[:, 0].tolist())
    spec = bandit(BASE, actions=20, features=1)
    arms = tmp_path / "arms.jsonl"
    arms.write_text("\n".join(json.dumps({"chosen": i, "rejected": i + 1}) for i in range(5)))
    q = sample_queries(sampler(source={"type": "file", "path": "arms.jsonl"}), 5, 2,
                       bandit_space(spec.task, gen(0)), gen(0), base_dir=tmp_path)
    assert bool((q.items[:, 1] - q.items[:, 0] == 1).all())
    with pytest.raises(FeedbackError, match="cannot read"):
        sample_queries(sampler(source={"type": "file", "path": "nope.jsonl"}), 1, 2,
                       bandit_space(spec.task, gen(0)), gen(0), base_dir=tmp_path)


def test_human_examples_bandit_choose_by_their_values(gen):
    spec = bandit(BASE, actions=40, features=1)
    space = bandit_space(spec.task, gen(0))
    h_sample = draw_population(spec.populations["crowd"], gen(7))
    q = sample_queries(sampler(source={"type": "human"}), 2000, 1, space, gen(2),
                       population=h_sample)
    chosen = space.features[q.items[:, 0], 0]
    assert chosen.mean() > space.features[:, 0].quantile(0.8)
    with pytest.raises(FeedbackError, match="by = POPULATION"):
        sample_queries(sampler(source={"type": "human"}), 3, 1, space, gen(2))


def test_human_examples_text_from_a_file(tmp_path, gen):
    (tmp_path / "demos.txt").write_text("a fine answer\nanother one\n\n")
    q = sample_queries(sampler(source={"type": "human", "path": "demos.txt"}), 6, 1,
                       TextSpace([], scorer=fake_score), gen(0), base_dir=tmp_path)
    assert set(q.space.texts) <= {"a fine answer", "another one"}


def test_mix_draws_sources_by_weight(gen):
    spec = bandit(BASE, actions=20, features=1)
    space = bandit_space(spec.task, gen(0))
    pop = draw_population(spec.populations["crowd"], gen(7))
    s = sampler(source={"type": "mix", "sources": [{"type": "policy"}, {"type": "human"}],
                        "weights": [0.8, 0.2]})
    q = sample_queries(s, 4000, 2, space, gen(1), policy=uniform_policy(20), population=pop)
    assert q.sources == ("policy", "human")
    assert (q.source == 1).float().mean().item() == pytest.approx(0.2, abs=0.025)


def test_disagreement_and_adversarial_selection(gen):
    spec = bandit(BASE, actions=20, features=1)
    space = bandit_space(spec.task, gen(0))
    spread = torch.linspace(0, 1, 20)

    def ensemble(items):          # member e scores action a as e · spread[a]
        return torch.stack([e * spread[items] for e in range(3)])

    s = sampler(select={"type": "disagreement", "pool": 8})
    q = sample_queries(s, 100, 2, space, gen(1), policy=uniform_policy(20), ensemble=ensemble)
    gap = (q.items[:, 0] - q.items[:, 1]).abs().float().mean()
    base = sample_queries(None, 100, 2, space, gen(1), policy=uniform_policy(20))
    assert gap > 1.5 * (base.items[:, 0] - base.items[:, 1]).abs().float().mean()
    s = sampler(select={"type": "adversarial", "pool": 8})
    q = sample_queries(s, 100, 1, space, gen(1), policy=uniform_policy(20), ensemble=ensemble)
    assert q.items.float().mean() > 15
    with pytest.raises(FeedbackError, match="ensemble"):
        sample_queries(s, 10, 1, space, gen(1), policy=uniform_policy(20))


def test_budgets_split_over_rounds():
    spec = bandit(BASE + """
feedback a { kind = pairwise  from = crowd  budget = 1001 labels  redundancy = 2 }
feedback b { kind = ranking(4)  from = crowd  budget = 10 minutes }
feedback c { kind = correction  from = crowd  budget = 1 hours  cost = 60 seconds }""")
    a, b, c = (spec.feedback[n] for n in "abc")
    assert [labels_for_round(a, 3, r) for r in range(3)] == [334, 334, 333]
    assert queries_for_round(a, 3, 0) == 167
    assert total_labels(b) == 50                     # 600 s / (3 s × 4 items)
    assert total_labels(c) == 60
    assert sum(labels_for_round(c, 7, r) for r in range(7)) == 60


def test_text_policy_queries_share_prompts(gen):
    spec = text(BASE.replace("feature(0)", "sentiment"))
    outputs = [("p1", "good"), ("p1", "bad"), ("p2", "nice"), ("p2", "awful")]
    q = sample_queries(None, 2, 2, TextSpace([], scorer=fake_score), gen(0),
                       policy=lambda n, g: outputs[:n])
    assert q.space.prompts == ["p1", "p1", "p2", "p2"]
    assert q.items.tolist() == [[0, 1], [2, 3]]
    assert spec.populations["crowd"].groups[0].values.value == "sentiment"
