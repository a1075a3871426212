"""The Section 5 / Figure 4 disclosure card of Casper et al. (2023), as Markdown.

Items the spec determines are filled from it (feedback types and budgets, the loss and how
disagreement is modelled, example selection, pre-training) and from the run's measurements
(agreement, reward-model accuracy, policy evaluation); items only a researcher can write come
from the `disclose` block, or are marked *not disclosed*.
"""

from __future__ import annotations

from typing import Any

NOT_DISCLOSED = "*not disclosed* (add it to the spec's `disclose` block)"


def _kind(kind: dict[str, Any]) -> str:
    t = kind["type"]
    if "k" in kind:
        return f"{t}({kind['k']})"
    if t == "label":
        return f"label({', '.join(kind['choices'])})"
    return t


def _budget(fb: dict[str, Any]) -> str:
    budget = fb["budget"]
    if budget["unit"] == "labels":
        return f"{budget['amount']:g} labels"
    return f"{budget['amount'] / 60:g} annotator-minutes"


def _measured(summary: dict[str, Any], key: str) -> list[str]:
    lines = []
    for row in summary.get("results", []):
        value = row["metrics"].get(key)
        if value is not None:
            lines.append(f"{row['of']} [{row['branch']}]: {value:.4g}")
    return lines


def disclosure(params: dict[str, Any], summary: dict[str, Any]) -> str:
    spec = params["spec"]
    given = params["disclose"]
    task = spec.get("task") or {}
    out = [f"# Disclosure card: `{params['experiment']['name']}`", "",
           "The items of Casper et al. (2023), Section 5 and Figure 4. *(auto)* items are "
           "filled from the spec and the run.", ""]

    def item(title: str, key: str, auto: str | None, context: str | None = None) -> None:
        """The researcher's text, else the spec's own account (auto), else not disclosed (with
        what the spec shows, when it shows something)."""
        text = given.get(key)
        if text:
            body = text
        elif auto:
            body = auto + " *(auto)*"
        else:
            body = NOT_DISCLOSED + (f"\n\n{context}" if context else "")
        out.extend([f"## {title}", "", body, ""])

    out.append("# Human feedback")
    out.append("")
    pretrain = task.get("pretrain")
    item("Pre-training", "pretraining",
         ("bandit task: no pre-training" if task.get("domain") == "bandit" else
          f"Step 0 on `{pretrain if isinstance(pretrain, str) else pretrain.get('path')}` for "
          f"{task.get('pretrain_steps')} steps" if pretrain else "none"))
    populations = []
    for name, pop in spec.get("populations", {}).items():
        members = ", ".join(f"{g['name']} ({g['weight']:g})" for g in pop["groups"] + pop["ai"])
        extra = f"; {pop['malicious']['share']:.0%} malicious" if pop.get("malicious") else ""
        populations.append(f"`{name}`: {pop['evaluators']} evaluators — {members}{extra}")
    item("Evaluator selection and training", "evaluator_selection", None,
         ("Simulated populations: " + "; ".join(populations)) if populations else None)
    samplers = []
    for name, fb in spec.get("feedback", {}).items():
        sampler = spec.get("samplers", {}).get(fb.get("sampler") or "")
        if sampler:
            samplers.append(f"`{name}`: source `{sampler['source']['type']}`, selection "
                            f"`{sampler['select']['type']}`")
        else:
            samplers.append(f"`{name}`: the current policy, random queries")
    item("Example selection", "example_selection", "; ".join(samplers) or None)
    kinds = [f"`{name}`: {_kind(fb['kind'])} from `{fb['from']}`, {_budget(fb)}"
             + (f", view `{fb['view']}`" if fb.get("view") else "")
             for name, fb in spec.get("feedback", {}).items()]
    item("Feedback types", "feedback_types", "; ".join(kinds) or None)
    agreement = _measured(summary, "agreement")
    item("Quality assurance and inter-rater consistency", "quality_assurance",
         ("measured inter-annotator agreement: " + "; ".join(agreement)) if agreement else None)
    out.append("# Reward model")
    out.append("")
    losses = []
    for name, rm in spec.get("rewards", {}).items():
        head = rm["head"]["type"]
        how = ("as different values (a mixture over evaluators)" if head == "mixture" else
               "as noise (one reward for everyone)")
        losses.append(f"`{name}`: loss `{rm['loss']['type']}`, head `{head}`, ensemble of "
                      f"{rm['ensemble']}; disagreement modelled {how}")
    item("Loss function and disagreement", "reward_loss", "; ".join(losses) or None)
    accuracy = _measured(summary, "accuracy")
    item("Reward model evaluation", "reward_evaluation",
         ("held-out gold accuracy: " + "; ".join(accuracy)) if accuracy else None)
    out.append("# Policy")
    out.append("")
    gold = _measured(summary, "gold_reward")
    item("Policy evaluation", "policy_evaluation",
         ("gold reward: " + "; ".join(gold)) if gold else None)
    out.append("# Systemic safety")
    out.append("")
    item("Audits and red teaming", "audits", None)
    item("Expected risks and failure modes", "risks", None)
    item("Monitoring and correcting failures", "monitoring", None)
    return "\n".join(out).rstrip() + "\n"
