"""The language reference in docs/ is generated from the typed spec and kept up to date."""

from pathlib import Path

from rlhfdsl.reference import language_reference
from rlhfdsl.spec.expressions import FUNCTIONS


def test_docs_language_reference_is_current():
    committed = Path("docs/language.md").read_text()
    assert committed == language_reference(), (
        "docs/language.md is stale: run `rlhfc schema --format markdown > docs/language.md`")


def test_reference_names_every_block_and_function():
    text = language_reference()
    for heading in ("## population", "## feedback", "## reward", "## policy", "## view",
                    "## context", "## sampler", "## evaluate", "## disclose", "## presets"):
        assert heading in text
    for name in FUNCTIONS:
        assert f"| `{name}` |" in text
    for kind in ("pairwise", "ranking", "best_of", "scalar", "likert", "label", "correction",
                 "language"):
        assert f"`kind = {kind}`" in text
