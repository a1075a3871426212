"""The checker's semantic passes: type rules, consistency, arithmetic and warnings.

Each test writes a small spec inline and checks the codes, messages, spans and helps of what the
checker says about it. Specs are built from a few shared pieces so that each test shows only the
declarations its rule is about.
"""

from __future__ import annotations

import pytest

from rlhfdsl.api import check_file

EXPERIMENT = """
experiment t { seed = 1 }
"""
BANDIT = """
task arms { domain = bandit  actions = 16  features = 8 }
population crowd {
  evaluators = 20
  group a weight 0.6 { values = feature(0..3) }
  group b weight 0.4 { values = feature(4..7) }
}
"""
PREFS = """
feedback prefs { kind = pairwise  from = crowd  budget = 2000 }
"""
RM = """
reward rm { }
"""
PPO = """
policy pi { objective = ppo  reward = rm }
"""
TEXT = """
model tiny { width = 64  heads = 4  context = 96 }
task chat { domain = text  prompts = builtin  max_new_tokens = 24 }
population raters {
  group a weight 0.6 { values = sentiment }
  group b weight 0.4 { values = sentiment + 0.5 * length(12) }
}
"""
DISCLOSE = """
disclose {
  evaluator_selection = "simulated"
  quality_assurance = "agreement reported by the run"
  audits = "none"
  risks = "overoptimisation"
  monitoring = "gold reward per round"
}
"""


def run(*parts: str, path: str = "spec.rlhf"):
    return check_file(path, text="".join(parts))


def diagnostics(*parts: str) -> list:
    return run(*parts).all_diagnostics


def errors(*parts: str) -> list:
    return [d for d in diagnostics(*parts) if d.is_error]


def codes(*parts: str) -> list[str]:
    return [d.code for d in diagnostics(*parts)]


def only(found: list, code: str):
    """The one diagnostic of ``code``; fails when there is none or more than one."""
    matching = [d for d in found if d.code == code]
    assert len(matching) == 1, [(d.code, d.message) for d in found]
    return matching[0]


def position(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, column


def at(d, text: str, needle: str, nth: int = 0) -> bool:
    return (d.span.line, d.span.column) == position(text, needle, nth)


def test_a_clean_spec_has_no_diagnostics():
    assert diagnostics(EXPERIMENT, BANDIT, PREFS, RM, PPO, DISCLOSE) == []


# ------------------------------------------------------------------ loss ↔ feedback (E0501)


def test_loss_must_fit_the_feedback_kind():
    rm = "reward rm { loss = ordinal }\n"
    text = EXPERIMENT + BANDIT + PREFS + rm + PPO + DISCLOSE
    d = only(errors(text), "E0501")
    assert d.message == "loss `ordinal` does not fit `pairwise` feedback"
    assert at(d, text, "ordinal")
    assert d.label == "takes `likert` feedback"
    assert d.help.startswith("use `loss = bradley_terry` for `pairwise` feedback")
    assert [r.text for r in d.related] == ["`prefs` is `pairwise` feedback"]
    assert at(d.related[0], text, "pairwise")


@pytest.mark.parametrize("loss, kind", [
    ("bradley_terry", "pairwise"), ("bradley_terry", "ranking(4)"), ("plackett_luce", "ranking(4)"),
    ("regression", "scalar"), ("ordinal", "likert(5)"), ("classification", "label(good, bad)"),
    ("auto", "likert(5)"), ("auto", "best_of(3)"),
])
def test_losses_that_fit(loss, kind):
    feedback = f"feedback prefs {{ kind = {kind}  from = crowd  budget = 2000 }}\n"
    assert "E0501" not in codes(BANDIT, feedback, f"reward rm {{ loss = {loss} }}\n", PPO)


@pytest.mark.parametrize("loss, kind", [
    ("plackett_luce", "scalar"), ("regression", "pairwise"), ("classification", "likert(5)"),
    ("ordinal", "label(good, bad)"), ("bpr", "scalar"),
])
def test_losses_that_do_not_fit(loss, kind):
    feedback = f"feedback prefs {{ kind = {kind}  from = crowd  budget = 2000 }}\n"
    assert "E0501" in codes(BANDIT, feedback, f"reward rm {{ loss = {loss} }}\n", PPO)


def test_every_feedback_of_a_reward_must_fit_its_loss():
    feedback = ("feedback prefs { kind = pairwise  from = crowd  budget = 2000 }\n"
                "feedback stars { kind = likert(5)  from = crowd  budget = 2000 }\n")
    rm = "reward rm { feedback = [prefs, stars]  loss = bradley_terry }\n"
    d = only(errors(BANDIT, feedback, rm, PPO), "E0501")
    assert d.message == "loss `bradley_terry` does not fit `likert` feedback"
    assert [r.text for r in d.related] == ["`stars` is `likert` feedback"]
    assert d.help.startswith("use `loss = auto`")


def test_a_loss_that_fits_several_kinds_is_suggested():
    feedback = ("feedback prefs { kind = pairwise  from = crowd  budget = 2000 }\n"
                "feedback ranks { kind = ranking(3)  from = crowd  budget = 2000 }\n")
    rm = "reward rm { feedback = [prefs, ranks]  loss = regression }\n"
    d = only(errors(BANDIT, feedback, rm, PPO), "E0501")
    assert d.message == "loss `regression` does not fit `pairwise` or `ranking` feedback"
    assert d.help == "use `loss = bradley_terry`, which fits `pairwise` or `ranking` feedback"


# --------------------------------------------------------------- objective ↔ inputs (E0502)


def test_an_rl_objective_needs_a_reward():
    policy = "policy pi { objective = ppo }\n"
    text = BANDIT + PREFS + RM + policy
    d = only(errors(text), "E0502")
    assert d.message == "`ppo` needs a reward to optimise"
    assert at(d, text, "ppo")
    assert d.help == "add `reward = rm`"


def test_an_rl_objective_without_any_reward_model_is_offered_gold():
    policy = "policy pi { objective = reinforce }\n"
    d = only(errors(BANDIT, PREFS, policy), "E0502")
    assert "`reward = gold(crowd)`" in d.help


@pytest.mark.parametrize("objective", ["ppo", "reinforce", "rloo", "grpo", "best_of_n(8)",
                                       "rejection_sampling"])
def test_every_rl_objective_needs_a_reward(objective):
    policy = f"policy pi {{ objective = {objective} }}\n"
    assert "E0502" in codes(BANDIT, PREFS, RM, policy)
    policy = f"policy pi {{ objective = {objective}  reward = gold(crowd) }}\n"
    assert "E0502" not in codes(BANDIT, PREFS, RM, policy)


DPO_ON_LIKERT = """
feedback ratings { kind = likert(5)  from = raters  budget = 600 }
reward rm { loss = ordinal }
policy chat_pi { init = tiny  objective = dpo { beta = 0.1  loss = ipo }  reference = tiny }
"""


def test_dpo_needs_pairwise_data():
    # The example of DESIGN.md: the checker refuses DPO on Likert ratings and says how to fix.
    text = EXPERIMENT + TEXT + DPO_ON_LIKERT
    d = only(errors(text), "E0502")
    assert d.message == "`dpo` needs pairwise data and `ratings` is `likert` feedback"
    assert at(d, text, "dpo {")
    assert [r.text for r in d.related] == ["`ratings` is `likert` feedback"]
    assert "a feedback declaration of kind `pairwise`" in d.help
    assert "`objective = ppo` and `reward = rm`" in d.help


def test_dpo_names_a_pairwise_feedback_when_there_is_one():
    feedback = ("feedback stars { kind = likert(5)  from = crowd  budget = 2000 }\n"
                "feedback prefs { kind = pairwise  from = crowd  budget = 2000 }\n")
    policy = "policy pi { objective = dpo  feedback = stars }\n"
    d = only(errors(BANDIT, feedback, "reward rm { feedback = prefs }\n", policy), "E0502")
    assert d.help.startswith("use `feedback = prefs`")
    assert d.related[0].text == "the data named here"


def test_dpo_takes_no_reward_model():
    policy = "policy pi { objective = dpo  reward = rm }\n"
    text = BANDIT + PREFS + RM + policy
    d = only(errors(text), "E0502")
    assert d.message == "`dpo` learns from feedback directly and takes no `reward`"
    assert at(d, text, "rm }")
    assert d.help == "remove `reward = rm`, or optimise it with an RL objective such as `ppo`"


def test_dpo_on_pairwise_data_checks():
    policy = "policy pi { objective = dpo }\n"
    assert errors(BANDIT, PREFS, policy) == []


def test_dpo_without_feedback():
    policy = "policy pi { objective = dpo }\n"
    d = only(errors(BANDIT, policy), "E0502")
    assert d.message == "`dpo` needs pairwise data"
    assert d.label == "the spec declares no feedback"


def test_dpo_with_several_feedback_declarations_must_name_one():
    feedback = ("feedback stars { kind = likert(5)  from = crowd  budget = 2000 }\n"
                "feedback prefs { kind = pairwise  from = crowd  budget = 2000 }\n")
    policy = "policy pi { objective = dpo }\n"
    d = only(errors(BANDIT, feedback, policy), "E0304")
    assert d.message == "policy `pi` needs `feedback`"
    assert d.help == "add `feedback = NAME`, one of `prefs`"


def test_kto_and_sft_need_their_data():
    ranks = "feedback ranks { kind = ranking(3)  from = crowd  budget = 2000 }\n"
    d = only(errors(BANDIT, ranks, "policy pi { objective = kto }\n"), "E0502")
    assert d.message == "`kto` needs labels, ratings or pairs and `ranks` is `ranking` feedback"
    d = only(errors(BANDIT, PREFS, "policy pi { objective = sft }\n"), "E0502")
    assert d.message.startswith("`sft` needs demonstrations")
    assert "ppo" not in d.help  # an RL objective is no fix for missing demonstrations
    corrections = "feedback fixes { kind = correction  from = crowd  budget = 2000 }\n"
    assert errors(BANDIT, corrections, "policy pi { objective = sft }\n") == []


def test_conservative_needs_a_reward_ensemble():
    policy = "policy pi { objective = ppo  reward = rm  conservative = 0.5 }\n"
    text = BANDIT + PREFS + "reward rm { ensemble = 1 }\n" + policy
    d = only(errors(text), "E0502")
    assert d.message == "`conservative` needs a reward ensemble, and `rm` has one member"
    assert at(d, text, "0.5")
    assert at(d.related[0], text, "1 }")
    assert errors(BANDIT, PREFS, "reward rm { ensemble = 4 }\n", policy) == []
    gold = "policy pi { objective = ppo  reward = gold(crowd)  conservative = 0.5 }\n"
    d = only(errors(BANDIT, PREFS, gold), "E0502")
    assert "`gold(crowd)` is exact" in d.message


# --------------------------------------------------------------------- domain fit (E0503)


def test_length_bias_on_a_bandit_needs_the_tasks_length():
    population = BANDIT.replace("values = feature(0..3) }", "values = feature(0..3)  "
                                "length_bias = 0.2 }")
    text = population + PREFS + RM + PPO
    d = only(errors(text), "E0503")
    assert d.message == "`length_bias` needs the task's `length`"
    assert at(d, text, "length_bias")
    assert "`length = feature(0)`" in d.help
    with_length = text.replace("features = 8 }", "features = 8  length = feature(7) }")
    assert errors(with_length) == []


def test_sycophancy_on_a_bandit_needs_the_tasks_confidence():
    population = BANDIT.replace("evaluators = 20", "evaluators = 20  sycophancy = 1.0")
    text = population + PREFS + RM + PPO
    d = only(errors(text), "E0503")  # set once for the population: reported once
    assert d.message == "`sycophancy` needs the task's `confidence`"
    assert at(d, text, "sycophancy")


def test_expert_areas_fit_the_domain():
    bandit = BANDIT.replace("values = feature(0..3) }",
                            "values = feature(0..3)  expertise = [expert(sentiment, 2.0)] }")
    d = only(errors(bandit, PREFS, RM, PPO), "E0503")
    assert d.message == "`sentiment` is not an area of a bandit task"
    assert d.help == "name features instead, such as `expert(features(0..3), 2.0)`"
    text = TEXT.replace("values = sentiment }",
                        "values = sentiment  expertise = [expert(features(0..3), 2.0)] }")
    d = only(errors(text, "feedback p { kind = pairwise from = raters budget = 100 }\n",
                    "policy pi { objective = dpo }\n"), "E0503")
    assert d.message == "an expert area of `features(...)` belongs to bandit tasks"
    text = TEXT.replace("values = sentiment }",
                        "values = sentiment  expertise = [expert(sentimnet, 2.0)] }")
    d = only(errors(text, "feedback p { kind = pairwise from = raters budget = 100 }\n",
                    "policy pi { objective = dpo }\n"), "E0303")
    assert d.message == "unknown scorer `sentimnet` in `expert`"
    assert d.help == "did you mean `sentiment`?"


def test_a_bandit_policy_has_no_reference_model():
    policy = "model tiny { }\npolicy pi { objective = ppo  reward = rm  reference = tiny }\n"
    d = only(errors(BANDIT, PREFS, RM, policy), "E0503")
    assert d.message.startswith("`reference` names a language model")


def test_example_sources_fit_the_domain():
    sampler = 'sampler s { source = file("prefs.jsonl") }\n'
    feedback = "feedback prefs { kind = pairwise  from = crowd  sampler = s  budget = 2000 }\n"
    d = only(errors(BANDIT, sampler, feedback, RM, PPO), "E0503")
    assert d.message == "`file(...)` sources belong to text tasks"
    text_sampler = "sampler s { source = human  by = raters }\n"
    feedback = "feedback prefs { kind = pairwise  from = raters  sampler = s  budget = 600 }\n"
    d = only(errors(TEXT, text_sampler, feedback, "policy pi { objective = dpo }\n"), "E0503")
    assert d.message == "on a text task, `human` examples are read from a file"


def test_diversity_n_is_for_text():
    d = only(errors(BANDIT, PREFS, RM, PPO, "evaluate { diversity(n = 3) }\n"), "E0503")
    assert d.message == "`diversity(n)` counts n-grams of text"
    assert errors(BANDIT, PREFS, RM, PPO, "evaluate { diversity }\n") == []


# -------------------------------------------------------------------- consistency (E0504)


def test_an_ai_evaluator_has_exactly_one_of_scorer_and_model():
    both = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                          "ai b weight 0.4 { scorer = feature(4)  model = rm }")
    text = both + PREFS + RM + PPO + "schedule { rounds = 2 }\n"
    d = only(errors(text), "E0504")
    assert d.message == "ai `b` has both a `scorer` and a `model`"
    assert at(d, text, "model = rm")
    neither = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                             "ai b weight 0.4 { rationality = 2.0 }")
    text = neither + PREFS + RM + PPO
    d = only(errors(text), "E0304")
    assert d.message == "ai `b` needs a `scorer` or a `model`"
    assert at(d, text, "b weight")


AI_JUDGE = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                          "ai judge weight 0.4 { model = rm }")


def test_an_ai_evaluator_fitted_on_its_own_labels_is_a_cycle():
    text = AI_JUDGE + PREFS + RM + PPO
    d = only(errors(text), "E0204")
    assert d.message == "found a cycle: prefs --> rm --> crowd --> prefs"
    assert at(d, text, "rm }")
    assert "`schedule { rounds = 2 }`" in d.help


def test_a_longer_cycle_is_listed_in_full():
    populations = AI_JUDGE + """
population experts { group e weight 1 { values = feature(0) } ai critic weight 0 { model = rm2 } }
"""
    feedback = ("feedback prefs { kind = pairwise  from = experts  budget = 2000 }\n"
                "feedback more { kind = pairwise  from = crowd  budget = 2000 }\n")
    rewards = "reward rm { feedback = prefs }\nreward rm2 { feedback = more }\n"
    found = [d for d in errors(populations, feedback, rewards, PPO) if d.code == "E0204"]
    assert [d.message for d in found] == [
        "found a cycle: more --> rm2 --> experts --> prefs --> rm --> crowd --> more",
        "found a cycle: prefs --> rm --> crowd --> more --> rm2 --> experts --> prefs",
    ]


def test_rounds_break_the_cycle():
    assert errors(AI_JUDGE, PREFS, RM, PPO, "schedule { rounds = 2 }\n") == []


def test_an_ai_evaluator_using_another_populations_reward_is_no_cycle():
    other = """
population experts { group e weight 1 { values = feature(0..7) } }
feedback gold_prefs { kind = pairwise  from = experts  budget = 2000 }
reward rm { feedback = gold_prefs }
feedback prefs { kind = pairwise  from = crowd  budget = 2000 }
reward rm2 { feedback = prefs }
policy pi { objective = ppo  reward = rm2 }
"""
    assert errors(AI_JUDGE, other) == []


def test_malicious_groups_exist():
    poisoned = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                              "group b weight 0.4 { values = feature(4..7) }\n"
                              "  ai judge weight 0 { scorer = feature(1) }\n"
                              "  malicious 0.1 { trigger = feature(7) > 1  "
                              "groups = [a, bb, judge] }")
    text = poisoned + PREFS + RM + PPO
    found = errors(text)
    d = only(found, "E0201")
    assert d.message == "unknown group `bb` in population `crowd`"
    assert d.help == "did you mean `b`?"
    assert at(d, text, "[a, bb")
    d = only(found, "E0203")
    assert d.message == "`judge` is an AI evaluator, not a group"


def test_label_choices():
    dup = "feedback tags { kind = label(good, bad, good)  from = crowd  budget = 2000 }\n"
    d = only(errors(BANDIT, dup, RM, PPO), "E0504")
    assert d.message == "label choice `good` is offered twice"
    one = "feedback tags { kind = label(good)  from = crowd  budget = 2000 }\n"
    d = only(errors(BANDIT, one, RM, PPO), "E0305")
    assert d.message == "`label` needs at least two choices"


@pytest.mark.parametrize("weights, code, message", [
    ("[0.5]", "E0504", "`mix` has 2 sources and 1 weight"),
    ("[0.5, -0.5]", "E0401", "`mix` weights cannot be negative"),
    ("[0, 0]", "E0402", "the `mix` weights sum to 0"),
])
def test_mix_weights(weights, code, message):
    sampler = f"sampler s {{ source = mix(policy, human, weights = {weights})  by = crowd }}\n"
    feedback = "feedback prefs { kind = pairwise  from = crowd  sampler = s  budget = 2000 }\n"
    d = only(errors(BANDIT, sampler, feedback, RM, PPO), code)
    assert d.message == message


def test_mix_weights_that_fit():
    sampler = "sampler s { source = mix(policy, human, weights = [0.8, 0.2])  by = crowd }\n"
    feedback = "feedback prefs { kind = pairwise  from = crowd  sampler = s  budget = 2000 }\n"
    assert errors(BANDIT, sampler, feedback, RM, PPO) == []


def test_by_needs_a_human_source():
    sampler = "sampler s { source = policy  by = crowd }\n"
    feedback = "feedback prefs { kind = pairwise  from = crowd  sampler = s  budget = 2000 }\n"
    text = BANDIT + sampler + feedback + RM + PPO
    d = only(errors(text), "E0504")
    assert d.message == "`by` names who writes human examples, and this sampler has none"
    assert at(d, text, "crowd }")


def test_multi_objective_weights_match_k():
    rm = "reward rm { head = multi_objective(2, weights = [0.5, 0.3, 0.2]) }\n"
    d = only(errors(BANDIT, PREFS, rm, PPO), "E0504")
    assert d.message == "`multi_objective(2)` has 3 weights"


ACTIVE = """
sampler active { source = policy  select = disagreement { pool = 4 } }
feedback prefs { kind = pairwise  from = crowd  sampler = active  budget = 2000 }
"""


def test_disagreement_selection_needs_a_reward_ensemble():
    text = BANDIT + ACTIVE + RM + PPO
    d = only(errors(text), "E0504")
    assert d.message == "`disagreement` selection needs a reward ensemble, and `rm` has one member"
    assert at(d, text, "disagreement {")
    assert d.help == "set `ensemble = 4` (or more) in reward `rm`"
    assert errors(BANDIT, ACTIVE, "reward rm { ensemble = 4 }\n", PPO) == []


def test_query_selection_needs_a_reward_model():
    policy = "policy pi { objective = ppo  reward = gold(crowd) }\n"
    d = only(errors(BANDIT, ACTIVE, policy), "E0504")
    assert d.message == ("`disagreement` selection needs a reward model, and none is fitted on "
                         "`prefs`")
    adversarial = ACTIVE.replace("disagreement", "adversarial")
    assert "E0504" in codes(BANDIT, adversarial, policy)
    assert errors(BANDIT, adversarial, RM, PPO) == []  # one model is enough to attack


def test_a_named_selection_reward_is_checked():
    sampler = ("sampler active { source = policy  select = disagreement { reward = big } }\n"
               "reward big { ensemble = 1 }\n")
    d = only(errors(BANDIT, sampler, PREFS, RM, PPO), "E0504")
    assert "`big` has one member" in d.message


def test_ties_need_a_kind_that_allows_them():
    population = BANDIT.replace("group a weight 0.6 { values = feature(0..3) }",
                                "group a weight 0.6 { values = feature(0..3)  equal = 0.1 }")
    feedback = ("feedback prefs { kind = pairwise { ties = false }  from = crowd  "
                "budget = 2000 }\n")
    text = population + feedback + RM + PPO
    d = only(errors(text), "E0504")
    assert d.message == "group `a` answers ties, but `prefs` does not allow ties"
    assert at(d, text, "0.1")
    assert d.label == "`equal = 0.1`"
    assert at(d.related[0], text, "false")
    assert errors(population, PREFS, RM, PPO) == []


def test_skips_through_a_preset():
    population = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                                "group b weight 0.4 { values = feature(4..7)  preset = skip }")
    feedback = "feedback prefs { kind = pairwise { skips = false }  from = crowd  budget = 2000 }\n"
    text = population + feedback + RM + PPO
    d = only(errors(text), "E0504")
    assert d.message == "group `b` skips queries, but `prefs` does not allow skips"
    assert d.label == "preset `skip` sets `skip = 0.1`"
    assert at(d, text, "skip }")


def test_scalar_bounds():
    feedback = ("feedback stars { kind = scalar { low = 5  high = 1 }  from = crowd  "
                "budget = 2000 }\n")
    d = only(errors(BANDIT, feedback, RM, PPO), "E0504")
    assert d.message == "`low` must be below `high`"


def test_rl_objectives_do_not_read_feedback():
    policy = "policy pi { objective = ppo  reward = rm  feedback = prefs }\n"
    d = only(errors(BANDIT, PREFS, RM, policy), "E0504")
    assert d.message == "`ppo` does not read `feedback`"


def test_dpo_label_smoothing_needs_a_robust_loss():
    policy = "policy pi { objective = dpo { label_smoothing = 0.1 } }\n"
    d = only(errors(BANDIT, PREFS, policy), "E0504")
    assert d.message == "`label_smoothing` is not used by the `sigmoid` loss"
    robust = "policy pi { objective = dpo { label_smoothing = 0.1  loss = robust } }\n"
    assert errors(BANDIT, PREFS, robust) == []


def test_model_settings():
    text_spec = TEXT.replace("model tiny { width = 64  heads = 4  context = 96 }",
                             "model tiny { width = 64  heads = 4  kv_heads = 2  context = 96 }")
    rest = ("feedback p { kind = pairwise from = raters budget = 100 }\n"
            "policy pi { objective = dpo }\n")
    d = only(errors(text_spec, rest), "E0504")
    assert d.message == "`kv_heads` is a `llama` setting, and `tiny` is a `gpt2`"
    text_spec = TEXT.replace("model tiny { width = 64  heads = 4  context = 96 }",
                             'model tiny { path = "models/tiny"  width = 64 }')
    d = only(errors(text_spec, rest), "E0504")
    assert d.message == "model `tiny` is loaded from `path`, which fixes its `width`"


def test_reference_and_policy_share_a_tokenizer():
    models = TEXT + 'model other { tokenizer = "tokenizers/words" }\n'
    rest = ("feedback p { kind = pairwise from = raters budget = 100 }\n"
            "policy pi { init = tiny  reference = other  objective = dpo }\n"
            "reward unused_rm { backbone = tiny }\n")
    d = only(errors(models, rest), "E0504")
    assert d.message == "reference `other` and initial policy `tiny` use different tokenizers"


def test_populations_need_members_with_weight():
    empty = "population crowd { evaluators = 20 }\n"
    d = only(errors("task arms { domain = bandit actions = 4 features = 2 }\n", empty, PREFS,
                    RM, PPO), "E0304")
    assert d.message == "population `crowd` has no evaluators"
    zero = BANDIT.replace("weight 0.6", "weight 0").replace("weight 0.4", "weight 0")
    d = only(errors(zero, PREFS, RM, PPO), "E0402")
    assert d.message == "the member weights of `crowd` sum to 0"
    assert len(d.related) == 2


@pytest.mark.parametrize("metric, needs", [
    ("accuracy", "a reward model"), ("backdoor", "a poisoning attack"),
    ("disagreement", "a reward model"),
])
def test_metrics_need_something_to_measure(metric, needs):
    policy = "policy pi { objective = dpo }\n"
    d = only(errors(BANDIT, PREFS, policy, f"evaluate {{ {metric} }}\n"), "E0504")
    assert needs in d.message


def test_type_rule_errors_are_all_collected():
    text = (BANDIT.replace("values = feature(0..3) }", "values = feature(0..3)  length_bias = 1 }")
            + "feedback prefs { kind = label(a, a)  from = crowd  budget = 2000 }\n"
            + "reward rm { loss = bradley_terry }\n"
            + "policy pi { objective = dpo  reward = rm  feedback = prefs }\n")
    assert sorted(set(codes(text))) == ["E0501", "E0502", "E0503", "E0504"]


# -------------------------------------------------------------------- arithmetic (E06xx)


def test_ppo_minibatch_divides_the_batch():
    policy = "policy pi { objective = ppo { minibatch = 24 }  reward = rm }\n"
    text = BANDIT + PREFS + RM + policy
    d = only(errors(text), "E0601")
    assert d.message == "`minibatch` of `ppo` must divide the policy's `batch_size`"
    assert at(d, text, "24")
    assert d.label == "24 does not divide the batch of 64"
    assert d.help == "use a minibatch of 16 or 32, which divide 64, or a `batch_size` of 48 or 72"
    ok = "policy pi { objective = ppo { minibatch = 16 }  reward = rm }\n"
    assert errors(BANDIT, PREFS, RM, ok) == []


def test_a_minibatch_larger_than_the_batch():
    policy = "policy pi { objective = ppo { minibatch = 128 }  reward = rm  batch_size = 48 }\n"
    text = BANDIT + PREFS + RM + policy
    d = only(errors(text), "E0601")
    assert d.label == "larger than the batch of 48"
    assert at(d.related[0], text, "48")


@pytest.mark.parametrize("objective, message", [
    ("rloo { k = 3 }", "`k` of `rloo` must divide the policy's `batch_size`"),
    ("grpo { group = 5 }", "`group` of `grpo` must divide the policy's `batch_size`"),
])
def test_groups_divide_the_batch(objective, message):
    policy = f"policy pi {{ objective = {objective}  reward = rm }}\n"
    d = only(errors(BANDIT, PREFS, RM, policy), "E0601")
    assert d.message == message


def test_heads_divide_the_width():
    text = TEXT.replace("heads = 4", "heads = 3") + (
        "feedback p { kind = pairwise from = raters budget = 100 }\n"
        "policy pi { objective = dpo }\n")
    d = only(errors(text), "E0601")
    assert d.message == "`heads` must divide `width` in model `tiny`"
    assert d.help == "use 2 or 4 heads, or a `width` of 63 or 66"
    llama = TEXT.replace("width = 64  heads = 4", "family = llama  width = 64  heads = 4  "
                         "kv_heads = 3") + (
        "feedback p { kind = pairwise from = raters budget = 100 }\n"
        "policy pi { objective = dpo }\n")
    d = only(errors(llama), "E0601")
    assert d.message == "`kv_heads` must divide `heads` in model `tiny`"


def test_items_per_query_fit_the_actions():
    ranks = "feedback ranks { kind = ranking(20)  from = crowd  budget = 2000 }\n"
    d = only(errors(BANDIT, ranks, RM, PPO), "E0602")
    assert d.message == "`ranking(20)` shows more items than the task has actions"
    assert d.help == "use at most `ranking(16)`"


def test_redundancy_fits_the_population():
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 2000  redundancy = 30 }\n"
    text = BANDIT + feedback + RM + PPO
    d = only(errors(text), "E0602")
    assert d.message == "`redundancy` asks 30 evaluators per query, and `crowd` has 20"
    assert at(d, text, "30")
    assert [r.text for r in d.related] == ["20 evaluators"]


def test_every_weighted_member_needs_an_evaluator():
    d = only(errors(BANDIT.replace("evaluators = 20", "evaluators = 1"), PREFS, RM, PPO), "E0602")
    assert d.message == "population `crowd` has 2 members with weight but only 1 evaluator"


def test_rejection_sampling_keeps_at_most_what_it_draws():
    policy = "policy pi { objective = rejection_sampling { n = 4  top = 8 }  reward = rm }\n"
    d = only(errors(BANDIT, PREFS, RM, policy), "E0602")
    assert d.message == "`top` keeps 8 of 4 samples"


def test_accuracy_pairs_fit_the_actions():
    evaluate = "evaluate { accuracy(pairs = 500) }\n"
    d = only(errors(BANDIT, PREFS, RM, PPO, evaluate), "E0602")
    assert d.message == "`accuracy` asks for 500 held-out pairs, and 16 actions make 120"
    assert errors(BANDIT, PREFS, RM, PPO, "evaluate { accuracy }\n") == []


def test_text_models_hold_a_prompt_and_its_completion():
    text = TEXT.replace("context = 96", "context = 48") + (
        "feedback p { kind = pairwise from = raters budget = 100 }\n"
        "policy pi { objective = dpo }\n")
    d = only(errors(text), "E0602")
    assert d.message == ("model `tiny` holds 48 tokens, fewer than a prompt and its completion "
                         "(32 + 24)")
    assert d.help.startswith("raise `context` to 56")


def test_lora_rank_within_the_width():
    text = TEXT + ("feedback p { kind = pairwise from = raters budget = 100 }\n"
                   "policy pi { objective = dpo  adapter = lora { r = 128 } }\n")
    d = only(errors(text), "E0602")
    assert d.message == "LoRA rank 128 exceeds the width 64 of model `tiny`"


def test_budget_covers_a_reward_batch_per_round():
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 100 }\n"
    rm = "reward rm { batch_size = 64 }\n"
    schedule = "schedule { rounds = 2 }\n"
    text = BANDIT + feedback + rm + PPO + schedule
    d = only(errors(text), "E0603")
    assert d.message == "50 labels per round is less than one batch of reward `rm` (64)"
    assert at(d, text, "100")
    assert d.label == "100 labels over 2 rounds"
    assert [r.text for r in d.related] == ["a batch of 64 labels", "2 rounds"]
    assert d.help == ("raise `budget` to at least 128 labels, lower `batch_size` of `rm` to 50, "
                      "or lower `rounds`")


def test_budget_in_time_is_divided_by_the_cost_per_label():
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 5 minutes }\n"
    d = only(errors(BANDIT, feedback, RM, PPO), "E0603")
    assert d.label == "300 seconds at 5 seconds per label buy 60 labels, all in one round"
    assert d.help.startswith("raise `budget` to at least 320 seconds")
    enough = ("feedback prefs { kind = pairwise  from = crowd  budget = 1 hours  "
              "cost = 2 seconds }\n")
    assert errors(BANDIT, enough, RM, PPO) == []


def test_budget_covers_one_query_per_round():
    feedback = ("feedback prefs { kind = correction  from = crowd  budget = 60 seconds  "
                "redundancy = 2 }\n")
    d = only(errors(BANDIT, feedback, RM, PPO), "E0603")
    assert d.message == "`budget` of `prefs` does not cover one query per round"
    assert d.label == "60 seconds at 45 seconds per label buy 1 label, all in one round"


def test_a_reward_on_several_feedback_sums_their_labels():
    feedback = ("feedback one { kind = pairwise  from = crowd  budget = 40 }\n"
                "feedback two { kind = pairwise  from = crowd  budget = 40 }\n")
    rm = "reward rm { feedback = [one, two]  batch_size = 64  holdout = 0 }\n"
    assert errors(BANDIT, feedback, rm, PPO) == []
    rm = "reward rm { feedback = [one, two]  batch_size = 100  holdout = 0 }\n"
    d = only(errors(BANDIT, feedback, rm, PPO), "E0603")
    assert d.message == "80 labels per round is less than one batch of reward `rm` (100)"


def test_ensemble_fits_the_labels():
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 3 }\n"
    rm = "reward rm { batch_size = 1  ensemble = 4  holdout = 0 }\n"
    d = only(errors(BANDIT, feedback, rm, PPO), "E0602")
    assert d.message == ("an ensemble of 4 needs at least 4 labels per round, and `rm` gets 3")


def test_holdout_leaves_a_batch():
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 64 }\n"
    text = BANDIT + feedback + RM + PPO
    d = only(errors(text), "E0602")
    assert d.message == ("`holdout` of reward `rm` leaves 57 labels per round to fit on, less "
                         "than one batch (64)")
    assert d.label == "holds out 10% of 64 labels (the default)"
    assert d.help.startswith("set `holdout = 0`")
    rm = "reward rm { holdout = 0.5 }\n"
    feedback = "feedback prefs { kind = pairwise  from = crowd  budget = 100 }\n"
    text = BANDIT + feedback + rm + PPO
    d = only(errors(text), "E0602")
    assert at(d, text, "0.5")
    assert d.help.startswith("lower `holdout` to 0.36")


def test_feature_indices_fit_the_task():
    population = BANDIT.replace("feature(4..7)", "feature(4..9)")
    text = population + PREFS + RM + PPO
    d = only(errors(text), "E0604")
    assert d.message == "`feature(4..9)` reaches past the last feature"
    assert d.label == "task `arms` has 8 features, numbered 0 to 7"
    assert at(d, text, "feature(4..9)")


@pytest.mark.parametrize("values, message", [
    ("feature(8)", "`feature(8)` reaches past the last feature"),
    ("weights([1, 1, 1, 1, 1, 1, 1, 1, 1])", "`weights` has 9 values for 8 features"),
    ("table([" + ", ".join(["1"] * 17) + "])", "`table` has 17 values for 16 actions"),
    ("if(feature(9) > 0, 1, 0)", "`feature(9)` reaches past the last feature"),
])
def test_indices_in_expressions(values, message):
    population = BANDIT.replace("feature(4..7)", values)
    d = only(errors(population, PREFS, RM, PPO), "E0604")
    assert d.message == message


def test_indices_in_views_expert_areas_and_triggers():
    view = "view glance { show = features(0..11) }\n"
    feedback = "feedback prefs { kind = pairwise  from = crowd  view = glance  budget = 2000 }\n"
    d = only(errors(BANDIT, view, feedback, RM, PPO), "E0604")
    assert d.message == "feature 11 in `show` is past the last feature"
    expert = BANDIT.replace("evaluators = 20", "evaluators = 20  expertise = "
                            "[expert(features(6..8), 2.0)]")
    d = only(errors(expert, PREFS, RM, PPO), "E0604")  # set once for the population
    assert d.message == "feature 8 in an expert area is past the last feature"
    trigger = BANDIT.replace("group b weight 0.4 { values = feature(4..7) }",
                             "group b weight 0.4 { values = feature(4..7) }\n"
                             "  malicious 0.1 { trigger = feature(12) > 1 }")
    assert "E0604" in codes(trigger, PREFS, RM, PPO)


def test_arithmetic_is_checked_in_every_sweep_branch():
    policy = "policy pi { objective = ppo { minibatch = 16 }  reward = rm }\n"
    sweep = "sweep pi.objective.minibatch in [16, 24]\n"
    d = only(errors(BANDIT, PREFS, RM, policy, sweep), "E0601")
    assert d.notes == ("in the sweep branch where pi.objective.minibatch = 24",)


# ------------------------------------------------------------------------ warnings (W0xxx)


def test_weights_are_normalised_with_a_warning():
    population = BANDIT.replace("weight 0.6", "weight 3").replace("weight 0.4", "weight 1")
    text = EXPERIMENT + population + PREFS + RM + PPO + DISCLOSE
    checked = run(text)
    assert checked.ok
    d = only(checked.all_diagnostics, "W0401")
    assert d.severity == "warning"
    assert d.message == "the member weights of `crowd` sum to 4, not 1"
    assert [r.text for r in d.related] == ["now 0.75", "now 0.25"]
    assert [g.weight for g in checked.spec.populations["crowd"].groups] == [0.75, 0.25]


def test_weights_that_sum_to_one_are_left_alone():
    checked = run(EXPERIMENT, BANDIT, PREFS, RM, PPO, DISCLOSE)
    assert [g.weight for g in checked.spec.populations["crowd"].groups] == [0.6, 0.4]


def test_missing_disclosure_items_are_listed_once():
    disclose = 'disclose { audits = "none"  risks = "overoptimisation" }\n'
    text = EXPERIMENT + BANDIT + PREFS + RM + PPO + disclose
    d = only(diagnostics(text), "W0501")
    assert d.severity == "warning"
    assert d.message == ("the disclosure lacks `evaluator_selection`, `quality_assurance` and "
                         "`monitoring`")
    assert at(d, text, "disclose")


def test_without_a_disclose_block_the_warning_points_at_the_experiment():
    text = EXPERIMENT + BANDIT + PREFS + RM + PPO
    d = only(diagnostics(text), "W0501")
    assert at(d, text, "t {")
    assert d.label == "this spec has no `disclose` block"
    assert run(text).ok


def test_unused_declarations_are_warned_about():
    extra = ("view glance { show = features(0..3) }\n"
             "context lab { order = fixed }\n"
             "model tiny { }\n"
             "sampler s { }\n"
             "population spare { group g weight 1 { values = feature(0) } }\n"
             "feedback orphan { kind = pairwise  from = crowd  budget = 100 }\n"
             "reward spare_rm { feedback = prefs }\n"
             "evaluate { gold_reward  kl }\n")
    text = EXPERIMENT + BANDIT + PREFS + "reward rm { feedback = prefs }\n" + PPO + extra \
        + DISCLOSE
    found = [d for d in diagnostics(text) if d.code == "W0502"]
    assert [d.message for d in found] == [
        "view `glance` is never used", "context `lab` is never used", "model `tiny` is never used",
        "sampler `s` is never used", "population `spare` is never used",
        "feedback `orphan` is never used", "reward `spare_rm` is never used"]
    assert at(found[0], text, "glance")
    assert all(d.severity == "warning" for d in found)


def test_rewards_are_used_when_accuracy_measures_them():
    text = EXPERIMENT + BANDIT + PREFS + RM + PPO + "reward rm2 { }\n" + DISCLOSE
    assert "W0502" not in codes(text)  # default metrics include `accuracy`


def test_a_base_of_extends_is_used():
    base = BANDIT.replace("population crowd", "population base") + \
        "population crowd extends base { evaluators = 30 }\n"
    assert "W0502" not in codes(EXPERIMENT, base, PREFS, RM, PPO, DISCLOSE)


def test_declarations_of_imported_files_are_not_warned_about(tmp_path):
    (tmp_path / "common.rlhf").write_text(
        "population spare { group g weight 1 { values = feature(0) } }\n"
        "view unused_view { show = features(0..3) }\n")
    main = tmp_path / "main.rlhf"
    main.write_text('import "common.rlhf"\n' + EXPERIMENT + BANDIT + PREFS + RM + PPO
                    + "view mine { show = features(0..3) }\n" + DISCLOSE)
    found = [d.message for d in check_file(str(main)).all_diagnostics]
    assert found == ["view `mine` is never used"]


def test_warnings_do_not_fail_a_check():
    checked = run(EXPERIMENT, BANDIT, PREFS, RM, PPO, "view glance { }\n")
    assert checked.ok
    assert sorted(codes(EXPERIMENT, BANDIT, PREFS, RM, PPO, "view glance { }\n")) == [
        "W0501", "W0502"]
