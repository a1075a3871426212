"""The vocabulary of expressions: latent rewards r_H, scorers, triggers, perceived lengths.

An expression is evaluated by the backend on a batch of items at once. For a bandit task an item
is an action with its feature vector; for a text task an item is a generated text. Random
primitives (`bernoulli`, `normal`, `uniform`) are drawn afresh at every evaluation, which is how
a *perceived* value differs from the true one: the paper's 3.1.4 example, "action B is seen as
worth 10 with probability 0.4 and 0 otherwise", is

    values = if(action == 1, 10 * bernoulli(0.4), 1)

The gold (true) reward of an expression is its expectation over those draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ArgKind = Literal["number", "condition", "string", "range", "list", "any"]


@dataclass(frozen=True)
class Function:
    domain: Literal["any", "bandit", "text"]
    args: tuple[ArgKind, ...]
    optional: int  # how many trailing arguments may be left out
    result: Literal["number", "condition"]
    doc: str
    random: bool = False
    needs_plugins: bool = False


FUNCTIONS: dict[str, Function] = {
    # --- bandit items: an action index and its feature vector
    "feature": Function("bandit", ("range",), 0, "number",
                        "`feature(i)` the i-th feature of the action; `feature(i..j)` the sum of "
                        "features i to j (inclusive)"),
    "weights": Function("bandit", ("list",), 0, "number",
                        "`weights([w0, w1, ...])` the dot product of the weights with the "
                        "features (missing weights are 0)"),
    "table": Function("bandit", ("list",), 0, "number",
                      "`table([v0, v1, ...])` a value per action, by index (missing ones are 0)"),
    # --- text items: a generated completion (and its prompt)
    "length": Function("text", ("number",), 1, "number",
                       "`length` the completion's length in tokens; `length(n)` closeness to a "
                       "target length, -|len - n| / n (0 at the target)"),
    "keyword": Function("text", ("string",), 0, "number",
                        '`keyword("please")` 1 when the completion contains the word, else 0'),
    "count": Function("text", ("string",), 0, "number",
                      '`count("!")` occurrences of a substring in the completion'),
    "sentiment": Function("text", (), 0, "number",
                          "`sentiment` lexicon sentiment of the completion, in [-1, 1]"),
    "confidence": Function("text", (), 0, "number",
                           "`confidence` lexicon score of confident, flattering or agreeing "
                           "phrasing, in [0, 1]: what sycophancy rewards"),
    "regex": Function("text", ("string",), 0, "number",
                      '`regex("[0-9]+")` 1 when the pattern matches the completion, else 0'),
    "similarity": Function("text", ("string",), 0, "number",
                           '`similarity("reference")` character 3-gram cosine similarity to a '
                           "reference text, in [0, 1]"),
    "plugin": Function("any", ("string",), 0, "number",
                       '`plugin("package.module:function")` a user scorer; runs only when the user '
                       "allows plugins (`rlhfc run --allow-plugins`)", needs_plugins=True),
    # --- randomness: drawn afresh at every evaluation (perception noise)
    "bernoulli": Function("any", ("number",), 0, "number",
                          "`bernoulli(p)` 1 with probability p, else 0", random=True),
    "normal": Function("any", ("number", "number"), 2, "number",
                       "`normal(mean, std)` a Gaussian draw (defaults 0, 1)", random=True),
    "uniform": Function("any", ("number", "number"), 2, "number",
                        "`uniform(low, high)` a uniform draw (defaults 0, 1)", random=True),
    # --- arithmetic
    "if": Function("any", ("condition", "number", "number"), 0, "number",
                   "`if(condition, a, b)` a where the condition holds, else b"),
    "abs": Function("any", ("number",), 0, "number", "`abs(x)` absolute value"),
    "min": Function("any", ("number", "number"), 0, "number", "`min(a, b)`"),
    "max": Function("any", ("number", "number"), 0, "number", "`max(a, b)`"),
    "clip": Function("any", ("number", "number", "number"), 0, "number",
                     "`clip(x, low, high)`"),
    "exp": Function("any", ("number",), 0, "number", "`exp(x)`"),
    "log": Function("any", ("number",), 0, "number", "`log(x)` natural logarithm (of x > 0)"),
}

# Bare names usable as values in expressions.
NAMES: dict[str, tuple[Literal["any", "bandit", "text"], str]] = {
    "action": ("bandit", "the action's index, 0-based"),
    "length": ("text", "the completion's length in tokens"),
    "sentiment": ("text", "lexicon sentiment of the completion, in [-1, 1]"),
    "confidence": ("text", "confident or flattering phrasing, in [0, 1]"),
    "inf": ("any", "infinity"),
}

COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
LOGICAL = {"and", "or"}
ARITHMETIC = {"+", "-", "*", "/"}
