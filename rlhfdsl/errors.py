"""Every diagnostic the compiler can give, in one place.

A diagnostic is a small piece of documentation: a stable code, a one-line message (lowercase, no
final period, names in backticks), the smallest span that shows the problem, a label under the
caret, and a `help:` line where a fix is known. `rlhfc explain CODE` prints the long explanation
kept here.

Nothing in the compiler raises to the user: phases return diagnostics. :class:`CompileError`
carries diagnostics out of a phase that cannot go on.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Literal

if TYPE_CHECKING:
    from rlhfdsl.ast import Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Label:
    """A secondary span with its own short label (`this `{` is never closed`)."""

    span: Span
    text: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    label: str = ""
    help: str | None = None
    notes: tuple[str, ...] = ()
    related: tuple[Label, ...] = ()
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)

    def to_json(self) -> dict:
        def span(s: Span | None) -> dict | None:
            if s is None:
                return None
            return {"file": s.file, "line": s.line, "column": s.column,
                    "end_line": s.end_line, "end_column": s.end_column}

        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "span": span(self.span),
            "label": self.label,
            "help": self.help,
            "notes": list(self.notes),
            "related": [{"span": span(r.span), "label": r.text} for r in self.related],
        }


class CompileError(Exception):
    """Raised inside the compiler when a phase cannot continue; carries the diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("; ".join(d.message for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` as a `help:` line, or None when nothing is close."""
    candidates = sorted(set(candidates))
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f"did you mean `{matches[0]}`?" if matches else None


def one_of(candidates: Iterable[str], limit: int = 12) -> str:
    """`a`, `b` or `c`: sets are sorted, sequences keep their order."""
    if isinstance(candidates, (set, frozenset)):
        items = sorted(candidates)
    else:
        items = list(dict.fromkeys(candidates))
    if not items:
        return "nothing"
    if len(items) == 1:
        return f"`{items[0]}`"
    if len(items) <= limit:
        return ", ".join(f"`{c}`" for c in items[:-1]) + f" or `{items[-1]}`"
    shown = ", ".join(f"`{c}`" for c in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass(frozen=True)
class Code:
    title: str
    explanation: str = field(default="")


# The registry of codes. A code, once released, keeps its meaning; retired codes stay listed.
CODES: dict[str, Code] = {
    # E00xx: reading the input
    "E0001": Code("cannot read the spec file", """
The file named on the command line (or by an `import`) does not exist, is a directory, or cannot
be read. Check the path; paths in `import` are relative to the importing file."""),
    "E0002": Code("the spec is not UTF-8 text", """
A `.rlhf` file is UTF-8 text. The file holds bytes that are not UTF-8, or NUL bytes, which
usually means a binary file was named by mistake."""),
    # E01xx: syntax
    "E0101": Code("unexpected token", """
The parser met a token that cannot appear at this point. The label says what could have come
instead. Common causes: a missing `=` between a key and its value, a `:` used instead of `=`, a
value missing after `=`, or a stray closing brace."""),
    "E0102": Code("unexpected character", """
The character cannot start any token of the language. Keys and names are letters, digits and `_`
(not starting with a digit); strings are in double quotes; comments start with `#`."""),
    "E0103": Code("unexpected end of file", """
The file ended inside a declaration: a `{`, `[` or `(` was opened and never closed. The
secondary label points at the bracket that is still open."""),
    "E0104": Code("unterminated string", """
A string starts with `"` and must end with `"` on the same line. For text spanning several lines,
use a long string: `\"\"\"...\"\"\"`."""),
    "E0105": Code("nesting too deep", """
Blocks, lists and parentheses may nest at most 64 deep. Deeper nesting is never needed by an
experiment and is refused before it can exhaust the compiler's stack."""),
    "E0106": Code("number out of range", """
A number literal is too large to represent (more than 300 digits, or a decimal that overflows to
infinity). Write `inf` where an unbounded value is meant."""),
    # E02xx: names
    "E0201": Code("unknown name", """
A reference names a declaration that does not exist in this spec or in its imports. Declare it,
import the file that declares it, or fix the spelling (the help line suggests the closest name)."""),
    "E0202": Code("duplicate declaration", """
Two declarations share a name. Names are global to a spec (and its imports) because `--set` and
`sweep` paths start with them. Rename one, or use `extends` to derive one from the other."""),
    "E0203": Code("reference to a declaration of the wrong kind", """
The name exists but declares something else: for example `from = rm` in a feedback block where a
population is needed."""),
    "E0204": Code("cycle between declarations", """
The declarations depend on each other in a circle (for example an AI evaluator that uses a reward
model that is trained on that evaluator's own labels, or two declarations extending each other).
The message lists the cycle. Iterated training, where round r+1 uses round r's models, is
expressed with `schedule { rounds = N }` and is not a cycle."""),
    "E0205": Code("duplicate member", """
Two groups or AI evaluators of one population share a name, or a key is given twice in one
block. The later one would silently win; remove or rename one of them."""),
    "E0206": Code("missing declaration", """
The spec lacks a declaration it needs: every experiment needs exactly one `task`, and the
declarations it uses (a population for feedback, a feedback for a reward model, ...)."""),
    "E0207": Code("singleton declared twice", """
`experiment`, `task`, `schedule`, `evaluate` and `disclose` may appear once in a spec (imports
included)."""),
    # E03xx: keys and types
    "E0301": Code("unknown key", """
The block does not accept this key. The help line suggests the closest key; `rlhfc schema`
lists every key of every block with its type, range and default."""),
    "E0302": Code("wrong type of value", """
The value has the wrong type for this key: a string where a number is needed, a list where a
single value is needed, and so on. The label says what the key takes."""),
    "E0303": Code("unknown choice", """
The key takes one of a fixed set of names (a loss, an objective, a feedback kind, ...), and this
is not one of them. The help line suggests the closest."""),
    "E0304": Code("missing key", """
The block needs this key and has no default for it."""),
    "E0305": Code("bad arguments", """
A call has the wrong number of arguments or an unknown keyword argument: `likert(5)` takes one
number, `ranking(k = 4)` names its argument `k`."""),
    "E0306": Code("unknown unit", """
The unit does not fit the key: a budget is counted in `labels` or in time (`seconds`,
`minutes`, `hours`); a truncation in `tokens`, `chars` or `words`."""),
    "E0307": Code("unknown population member", """
A population holds `group NAME weight W { ... }`, `ai NAME weight W { ... }` and
`malicious SHARE { ... }` members, besides plain entries."""),
    "E0308": Code("unknown function in an expression", """
Latent rewards, triggers and scorers are expressions over a fixed vocabulary of functions. The
help line lists the closest; the language reference in the README lists them all, with the
task domain each one belongs to."""),
    "E0309": Code("ill-typed expression", """
An expression mixes kinds of value that do not go together: a trigger must be a condition
(`feature(3) > 0.5`), a latent reward must be a number, and `and`/`or`/`not` take conditions."""),
    # E04xx: values
    "E0401": Code("value out of range", """
The value lies outside the range the key accepts (a probability outside [0, 1], a negative
count, ...). The label gives the accepted range."""),
    "E0402": Code("weights do not sum to one", """
The weights of a population's members are a distribution over evaluators and must sum to 1. When
they do not, the checker normalises them and warns; give weights that sum to 1 to silence it.
Weights that sum to 0 (every member, or every `mix` source, with weight 0) cannot be normalised:
that is an error."""),
    # E05xx: type rules
    "E0501": Code("loss does not fit the feedback kind", """
A reward loss needs a particular kind of feedback: Bradley-Terry and BPR need comparisons
(pairwise, or rankings, best-of-k, corrections and critiques, which decompose into pairs),
Plackett-Luce needs rankings, regression needs scalar ratings or critiques, ordinal needs Likert
ratings, classification needs labels."""),
    "E0502": Code("objective lacks its inputs", """
A policy objective needs particular inputs. PPO, REINFORCE, RLOO, GRPO, best-of-n and rejection
sampling need a reward (a reward model, or `gold(population)`); DPO and KTO need feedback data
(pairwise for DPO, binary labels or pairs for KTO) and a reference policy, and no reward model;
SFT needs demonstrations (corrections, or a dataset of completions)."""),
    "E0503": Code("declaration does not fit the task's domain", """
Some keys and functions belong to one domain: feature masks and `feature(i)` to bandit tasks,
text truncation, LoRA adapters and text scorers (`sentiment`, `length(n)`, ...) to text tasks."""),
    "E0504": Code("inconsistent settings", """
Two settings contradict each other (for example `equal` ties turned on for a feedback kind that
cannot express ties, or an AI evaluator with both a scorer and a model). Other examples:
`disagreement` query selection with a reward model that is not an ensemble, `mix` weights that
do not match its sources, a metric with nothing to measure."""),
    # E06xx: arithmetic
    "E0601": Code("sizes do not divide", """
A batch size must divide what it splits: PPO minibatches must divide the rollout batch, RLOO and
GRPO groups must divide the batch, and so on. The help line gives the nearest sizes that work."""),
    "E0602": Code("count does not fit", """
A count exceeds what it draws from: a ranking of k items from a bandit with fewer than k actions,
an ensemble larger than the number of labels, more evaluators per query than the population has,
or a held-out set larger than the data."""),
    "E0603": Code("budget does not cover a round", """
The feedback budget, split across the schedule's rounds, gives fewer labels per round than one
reward-model batch (or than one query, for budgets in time). Raise the budget or lower the
rounds or the batch size."""),
    "E0604": Code("index out of range", """
An index reaches past what the task has. Bandit features and actions are numbered from 0: a task
with `features = 16` has features 0 to 15, so `feature(16)`, `features(8..16)` in a view or an
expert area, or `weights([...])` with 17 values do not fit; `table([...])` takes at most one
value per action. Use smaller indices, or raise `features` (or `actions`) in the task."""),
    # E07xx: imports
    "E0701": Code("imported file not found", """
The path of an `import` is relative to the importing file's directory."""),
    "E0702": Code("import outside the spec's directory", """
Imports stay inside the directory tree of the spec named on the command line, so that a spec
cannot read arbitrary files. Pass `--allow-outside-imports` to lift this."""),
    "E0703": Code("import cycle", """
The files import each other in a circle; the message lists it."""),
    "E0704": Code("override path not found", """
An override (`import "x" { a.b = v }`, `--set a.b=v` or `sweep a.b in [...]`) names a path that
does not exist. A path starts with a declaration name (or a singleton keyword such as
`experiment`), then keys, group names and object parameters."""),
    # E08xx: sweeps and the command line
    "E0801": Code("bad sweep", """
A sweep needs a non-empty list of distinct values of the swept key's type."""),
    "E0802": Code("bad --set", """
`--set` takes `path=value`, where the value is written as in a spec (`0.1`, `ipo`,
`[1, 2]`, `"text"`)."""),
    # W: warnings
    "W0401": Code("weights normalised", """
The member weights of a population did not sum to 1 and were divided by their sum."""),
    "W0501": Code("disclosure incomplete", """
Section 5 of Casper et al. (2023) lists what a report on an RLHF run should disclose. Most items
are filled from the spec; the rest are free text in a `disclose` block. The run's report marks
missing items as not disclosed."""),
    "W0502": Code("declaration unused", """
Nothing uses this declaration; it is checked but does not appear in the stage graph."""),
}


def explain(code: str) -> str | None:
    entry = CODES.get(code.upper())
    if entry is None:
        return None
    return f"{code.upper()}: {entry.title}\n{entry.explanation.rstrip()}\n"
