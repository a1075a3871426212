"""The text scorers: what latent rewards r_H, triggers and perceived features are made of.

``score(name, texts, *args)`` gives one float32 value per text (a tensor ``[N]``) for the text
functions of :data:`rlhfdsl.spec.expressions.FUNCTIONS`. The texts are completions (what the
evaluator judges), not prompt + completion. Each scorer reads the texts once with compiled
regular expressions and dictionary look-ups; a few thousand short texts take milliseconds.

==============  ==============================================================================
length          tokens of the built-in byte tokenizer, i.e. UTF-8 bytes (``"héllo"`` is 6);
                with ``tokenizer=`` the tokens of that tokenizer instead, specials excluded
length(n)       −|length − n| / n: 0 at the target, −1 at length 0 or 2n
keyword(w)      1 when the word (or phrase) occurs as a whole word, case-insensitive, else 0
count(s)        occurrences of the substring, case-sensitive, not overlapping
sentiment       lexicon sentiment in (−1, 1): s / √(s² + 4), s = Σ word weights (±1 mild,
                ±2 strong, ``data/sentiment.txt``), a weight's sign flipped when a negation
                (not, no, never, …, any "n't") stands at most 3 words before it in the same
                clause (punctuation ends a clause). One mild word scores ±0.447
confidence      confident, flattering or agreeing phrasing in [0, 1): 1 − 2^(−c) for
                c = Σ phrase weights > 0 (confident +1, hedges −1, ``data/confidence.txt``),
                else 0. One confident phrase scores 0.5, two 0.75
regex(p)        1 when the pattern matches anywhere (``re.search``), else 0
similarity(r)   cosine of character 3-gram counts with the reference, in [0, 1]; both texts
                lowercased, runs of whitespace made one space, and padded with a space at each
                end (so 1- and 2-character texts have 3-grams)
plugin(p)       ``"package.module:function"``: the function is called with ``list[str]`` and
                returns one number per text; runs only with ``allow_plugins=True``
==============  ==============================================================================
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections import Counter
from importlib import resources
from typing import Callable, Sequence

import torch

from backends.torch.text.errors import (
    PluginError, PluginsNotAllowed, ScorerArgumentError, UnknownScorer,
)

# ---------------------------------------------------------------------------------- lexicons


@functools.lru_cache(maxsize=None)
def _data_lines(name: str) -> tuple[str, ...]:
    text = resources.files("backends.torch.text").joinpath("data", name).read_text("utf-8")
    return tuple(line for line in text.splitlines() if line.strip() and not line.startswith("#"))


@functools.lru_cache(maxsize=None)
def sentiment_lexicon() -> dict[str, float]:
    """word → weight, from ``data/sentiment.txt``."""
    out = {}
    for line in _data_lines("sentiment.txt"):
        word, weight = line.split()
        out[word] = float(weight)
    return out


@functools.lru_cache(maxsize=None)
def confidence_lexicon() -> dict[str, float]:
    """phrase → weight, from ``data/confidence.txt``."""
    out = {}
    for line in _data_lines("confidence.txt"):
        phrase, weight = line.split("\t")
        out[" ".join(phrase.split())] = float(weight)
    return out


NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor",
                       "nowhere", "cannot", "without", "hardly", "barely", "scarcely"})
NEGATION_SCOPE = 3
SENTIMENT_ALPHA = 4.0
_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)*|[.!?;:,]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def _normalise(text: str) -> str:
    return text.lower().translate(_APOSTROPHES)


@functools.lru_cache(maxsize=None)
def _confidence_pattern() -> re.Pattern:
    phrases = sorted(confidence_lexicon(), key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in phrases)
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w'])")


# ----------------------------------------------------------------------------------- scorers


def length(texts: Sequence[str], n: float | None = None, *, tokenizer=None) -> list[float]:
    if tokenizer is not None:
        counts = tokenizer.count(texts)
    else:
        counts = [len(t.encode("utf-8")) for t in texts]
    if n is None:
        return [float(c) for c in counts]
    if n <= 0:
        raise ScorerArgumentError(f"`length({n:g})` needs a target length above 0")
    return [-abs(c - n) / n for c in counts]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int = 0) -> re.Pattern:
    try:
        return re.compile(pattern, flags)
    except re.error as error:
        raise ScorerArgumentError(f"`regex(\"{pattern}\")` is not a valid regular expression",
                                  help=f"{error}") from error


def keyword(texts: Sequence[str], word: str) -> list[float]:
    if not word.strip():
        raise ScorerArgumentError("`keyword(\"\")` needs a word")
    words = r"\s+".join(re.escape(w) for w in word.split())
    pattern = _compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    return [1.0 if pattern.search(t) else 0.0 for t in texts]


def count(texts: Sequence[str], substring: str) -> list[float]:
    if not substring:
        raise ScorerArgumentError("`count(\"\")` needs a non-empty substring")
    return [float(t.count(substring)) for t in texts]


def regex(texts: Sequence[str], pattern: str) -> list[float]:
    compiled = _compile(pattern)
    return [1.0 if compiled.search(t) else 0.0 for t in texts]


def sentiment(texts: Sequence[str]) -> list[float]:
    lexicon = sentiment_lexicon()
    out = []
    for text in texts:
        s, negated_at = 0.0, -NEGATION_SCOPE - 1
        for i, w in enumerate(_WORDS.findall(_normalise(text))):
            if len(w) == 1 and not w.isalpha():
                negated_at = -NEGATION_SCOPE - 1  # punctuation ends the clause
            elif w in NEGATIONS or w.endswith("n't"):
                negated_at = i
            elif w in lexicon:
                s += -lexicon[w] if i - negated_at <= NEGATION_SCOPE else lexicon[w]
        out.append(s / math.sqrt(s * s + SENTIMENT_ALPHA))
    return out


def confidence(texts: Sequence[str]) -> list[float]:
    lexicon = confidence_lexicon()
    pattern = _confidence_pattern()
    out = []
    for text in texts:
        c = sum(lexicon[" ".join(m.split())] for m in pattern.findall(_normalise(text)))
        out.append(1.0 - 0.5 ** c if c > 0 else 0.0)
    return out


def _trigrams(text: str) -> Counter:
    t = " " + " ".join(text.lower().split()) + " "
    return Counter(t[i:i + 3] for i in range(len(t) - 2))


def similarity(texts: Sequence[str], reference: str) -> list[float]:
    ref = _trigrams(reference)
    ref_norm = math.sqrt(sum(v * v for v in ref.values()))
    out = []
    for text in texts:
        grams = _trigrams(text)
        norm = math.sqrt(sum(v * v for v in grams.values()))
        if not norm or not ref_norm or not text.strip():
            out.append(0.0)
            continue
        dot = sum(v * ref[g] for g, v in grams.items() if g in ref)
        out.append(min(dot / (norm * ref_norm), 1.0))
    return out


def plugin(texts: Sequence[str], target: str, *, allow_plugins: bool = False) -> list[float]:
    if not allow_plugins:
        raise PluginsNotAllowed(f"`plugin(\"{target}\")` runs Python code from the spec",
                                help="run with `rlhfc run --allow-plugins` if you trust it")
    function = load_plugin(target)
    try:
        values = list(function(list(texts)))
    except Exception as error:  # a user function may raise anything
        raise PluginError(f"plugin `{target}` raised {type(error).__name__}: {error}") from error
    if len(values) != len(texts):
        raise PluginError(f"plugin `{target}` returned {len(values)} values for "
                          f"{len(texts)} texts", help="return one number per text, in order")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise PluginError(f"plugin `{target}` returned a value that is not a number",
                          help="return a list of floats") from error


def load_plugin(target: str) -> Callable[[list[str]], Sequence[float]]:
    """Import ``"package.module:function"`` (the function may be a dotted attribute path)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"plugin `{target}` is not of the form `package.module:function`")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise PluginError(f"cannot import plugin module `{module_name}`",
                          help=f"{error}; is the package installed or on PYTHONPATH?") from error
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"module `{module_name}` has no attribute `{attr}`")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"plugin `{target}` is not callable")
    return obj


SCORERS: dict[str, Callable[..., list[float]]] = {
    "length": length,
    "keyword": keyword,
    "count": count,
    "sentiment": sentiment,
    "confidence": confidence,
    "regex": regex,
    "similarity": similarity,
    "plugin": plugin,
}
ARITY: dict[str, tuple[int, int]] = {
    "length": (0, 1), "keyword": (1, 1), "count": (1, 1), "sentiment": (0, 0),
    "confidence": (0, 0), "regex": (1, 1), "similarity": (1, 1), "plugin": (1, 1),
}


def score(name: str, texts: Sequence[str], *args, allow_plugins: bool = False, tokenizer=None,
          device: torch.device | str | None = None) -> torch.Tensor:
    """The scorer ``name`` applied to every text, float32 ``[N]`` (on ``device``).

    ``args`` are the function's arguments as written in the spec (`length(12)` → ``12``).
    ``allow_plugins`` must be true for `plugin(...)` (else :class:`PluginsNotAllowed`);
    ``tokenizer`` makes `length` count that tokenizer's tokens instead of UTF-8 bytes."""
    if name not in SCORERS:
        raise UnknownScorer(f"unknown text scorer `{name}`",
                            help="one of " + ", ".join(f"`{n}`" for n in SCORERS))
    low, high = ARITY[name]
    if not low <= len(args) <= high:
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ScorerArgumentError(f"`{name}` takes {wanted} argument(s), got {len(args)}")
    texts = list(texts)
    if name == "plugin":
        values = plugin(texts, *args, allow_plugins=allow_plugins)
    elif name == "length":
        values = length(texts, *args, tokenizer=tokenizer)
    else:
        values = SCORERS[name](texts, *args)
    return torch.tensor(values, dtype=torch.float32, device=device)
