import math

import pytest
import torch

from backends.torch.text import (
    SCORERS, PluginError, PluginsNotAllowed, ScorerArgumentError, UnknownScorer, score,
)
from rlhfdsl.spec.expressions import FUNCTIONS, NAMES


def values(name, texts, *args, **kwargs):
    out = score(name, texts, *args, **kwargs)
    assert out.dtype == torch.float32 and out.shape == (len(texts),)
    return out.tolist()


def test_every_text_function_has_a_scorer():
    text_functions = {n for n, f in FUNCTIONS.items() if f.domain == "text" or f.needs_plugins}
    text_names = {n for n, (domain, _) in NAMES.items() if domain == "text"}
    assert text_functions | text_names <= set(SCORERS)


def test_length_counts_utf8_bytes(byte_tokenizer):
    assert values("length", ["hello", "héllo", "", "a b"]) == [5, 6, 0, 3]
    assert values("length", ["hello", "héllo"], tokenizer=byte_tokenizer) == [5, 6]
    assert values("length", ["a" * 12, "a" * 6, "", "a" * 18], 12) == [0.0, -0.5, -1.0, -0.5]
    with pytest.raises(ScorerArgumentError):
        score("length", ["x"], 0)


def test_keyword_whole_word_case_insensitive():
    texts = ["Please help", "I am pleased", "PLEASE!", "say please.", "thank you so much"]
    assert values("keyword", texts, "please") == [1, 0, 1, 1, 0]
    assert values("keyword", texts, "thank you") == [0, 0, 0, 0, 1]


def test_count_and_regex():
    assert values("count", ["wow!!", "no", "!a!b!"], "!") == [2, 0, 3]
    assert values("count", ["aaaa"], "aa") == [2]  # not overlapping
    assert values("count", ["Hi hi"], "hi") == [1]  # case-sensitive
    assert values("regex", ["call 555", "no digits", ""], "[0-9]+") == [1, 0, 0]
    with pytest.raises(ScorerArgumentError, match="not a valid regular expression"):
        score("regex", ["x"], "([")


def test_sentiment_lexicon_with_negation():
    one = 1 / math.sqrt(5)  # s = 1: 1 / √(1 + 4)
    got = values("sentiment", [
        "good", "not good", "This is great!", "I don't hate it. Bad.", "no problem",
        "The cat sat on the mat.", "not at all very good", "happy and wonderful", "",
    ])
    expected = [one, -one, 2 / math.sqrt(8), one, one, 0.0, one, 4 / math.sqrt(20), 0.0]
    assert got == pytest.approx(expected, abs=1e-6)
    assert all(-1 < v < 1 for v in values("sentiment", ["great " * 50, "awful " * 50]))


def test_confidence_lexicon():
    got = values("confidence", [
        "Great question! You're absolutely right.",  # 2 phrases
        "I definitely agree.",                       # "definitely"
        "Maybe, I think it depends.",                # hedges only
        "I think it is definitely fine",             # +1 − 1
        "The sea is blue.",
        "You’re right",                              # curly apostrophe
    ])
    assert got == pytest.approx([0.75, 0.5, 0.0, 0.0, 0.0, 0.5])


def test_similarity_trigram_cosine():
    got = values("similarity", ["hello world", "Hello   WORLD", "xyz", "", "hello"],
                 "hello world")
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(1.0)
    assert got[2] == 0.0 and got[3] == 0.0
    # " hello " has 5 trigrams, all in " hello world " (11 distinct trigrams): 5 / √(5·11)
    assert got[4] == pytest.approx(5 / math.sqrt(5 * 11))


def test_unknown_scorer_and_arity():
    with pytest.raises(UnknownScorer):
        score("vibes", ["x"])
    with pytest.raises(ScorerArgumentError, match="takes 1"):
        score("keyword", ["x"])


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "rlhfdsl_test_plugin.py").write_text(
        "def exclaim(texts):\n    return [t.count('!') * 2 for t in texts]\n"
        "def short(texts):\n    return [1.0]\n"
        "def words(texts):\n    return ['many' for t in texts]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "rlhfdsl_test_plugin"


def test_plugin_runs_only_when_allowed(plugin_module):
    target = f"{plugin_module}:exclaim"
    with pytest.raises(PluginsNotAllowed) as error:
        score("plugin", ["a!"], target)
    assert "--allow-plugins" in error.value.help
    assert values("plugin", ["a!", "b", "!!"], target, allow_plugins=True) == [2, 0, 4]


@pytest.mark.parametrize("target, message", [
    ("no_colon", "not of the form"),
    ("surely_not_a_module_xyz:f", "cannot import"),
    ("rlhfdsl_test_plugin:missing", "no attribute"),
    ("rlhfdsl_test_plugin:short", "returned 1 values for 2 texts"),
    ("rlhfdsl_test_plugin:words", "not a number"),
])
def test_plugin_errors(plugin_module, target, message):
    with pytest.raises(PluginError, match=message):
        score("plugin", ["a", "b"], target, allow_plugins=True)
