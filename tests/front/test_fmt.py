"""`rlhfc fmt`: canonical, idempotent, faithful to the tree and to the comments.

Golden pairs live in `fmt_cases/`: `NAME.input.rlhf` formats to `NAME.expected.rlhf`. After a
deliberate change of style, rewrite the expected files with `RLHFDSL_BLESS=1 pytest
tests/front/test_fmt.py` and review them as a diff.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from rlhfdsl.errors import CompileError
from rlhfdsl.fmt import UNITS, WIDTH, diff, format_file, format_source, strip_spans
from rlhfdsl.parser import grammar_text, parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "specs").glob("**/*.rlhf")
               if "errors" not in p.relative_to(ROOT / "specs").parts)
CASES = pathlib.Path(__file__).resolve().parent / "fmt_cases"
GOLDEN = sorted(p.name[: -len(".input.rlhf")] for p in CASES.glob("*.input.rlhf"))


def comment_texts(text: str) -> list[str]:
    return [c.text for c in parse(text).comments]


def assert_faithful(original: str, formatted: str) -> None:
    """Same tree modulo spans, same comments, a fixed point, one final newline."""
    original = original.removeprefix("\ufeff")  # fmt drops a byte-order mark
    assert strip_spans(parse(formatted)) == strip_spans(parse(original))
    assert sorted(comment_texts(formatted)) == sorted(comment_texts(original))
    assert format_source(formatted) == formatted
    if formatted:
        assert formatted.endswith("\n") and not formatted.endswith("\n\n")


def spec_id(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT / "specs"))


# ------------------------------------------------------------------------------ shipped specs


def test_there_are_specs_to_format():
    assert SPECS, "no shipped specs found under specs/"


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_shipped_spec_is_faithful_and_idempotent(path):
    text = path.read_text(encoding="utf-8")
    formatted = format_source(text, str(path))
    assert_faithful(text, formatted)
    # Shipped specs keep their comments in order, not merely as a multiset.
    assert comment_texts(formatted) == comment_texts(text)


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_shipped_spec_checks_the_same_after_formatting(path):
    from rlhfdsl.api import check_file

    text = path.read_text(encoding="utf-8")
    before = check_file(str(path), text=text)
    after = check_file(str(path), text=format_source(text, str(path)))
    assert [d.code for d in after.all_diagnostics] == [d.code for d in before.all_diagnostics]
    assert after.ok == before.ok


# ------------------------------------------------------------------------------ golden pairs


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name):
    source = (CASES / f"{name}.input.rlhf").read_text(encoding="utf-8")
    expected_path = CASES / f"{name}.expected.rlhf"
    formatted = format_source(source, f"{name}.input.rlhf")
    if os.environ.get("RLHFDSL_BLESS"):
        expected_path.write_text(formatted, encoding="utf-8")
    assert formatted == expected_path.read_text(encoding="utf-8")
    assert_faithful(source, formatted)


def test_golden_cases_exist():
    assert len(GOLDEN) >= 8
    for name in GOLDEN:
        assert (CASES / f"{name}.expected.rlhf").exists(), name


# ----------------------------------------------------------------------------- style details


def fmt(text: str) -> str:
    formatted = format_source(text)
    assert_faithful(text, formatted)
    return formatted


def test_empty_and_blank_input_stay_empty():
    assert fmt("") == ""
    assert fmt("\n\n   \n\t\n") == ""


def test_comment_only_file():
    assert fmt("# one\n\n\n# two   \n") == "# one\n\n# two\n"


def test_exactly_one_final_newline():
    assert fmt("task t { a = 1 }") == "task t {\n  a = 1\n}\n"
    assert fmt("task t { a = 1 }\n\n\n\n") == "task t {\n  a = 1\n}\n"


def test_crlf_and_bom():
    assert fmt("\ufefftask t {\r\n  a = 1  # x\r\n}\r\n") == "task t {\n  a = 1  # x\n}\n"


def test_empty_bodies_keep_their_kind():
    out = fmt("policy pi { objective = ppo {}  reference = ppo  r {} }")
    assert "objective = ppo {}\n" in out
    assert "reference = ppo\n" in out
    assert "  r {}\n" in out


def test_keyword_arguments_are_spelled_with_spaces():
    assert "likert(5, k = 2)" in fmt("feedback f { kind = likert(5, k=2) }")


def test_numbers_are_written_as_in_the_source():
    out = fmt("task t { a = 1E+10  b = 007  c = -0  d = 1e-400  e = 0.50  f = -  3 }")
    for written in ("1E+10", "007", "-0", "1e-400", "0.50", "-3"):
        assert f"= {written}\n" in out


def test_list_breaks_past_the_width():
    items = ", ".join(str(i) for i in range(40))
    out = fmt(f"sweep a.b in [{items}]")
    assert out.splitlines()[0] == "sweep a.b in ["
    assert out.splitlines()[-1] == "]"
    assert all(line.endswith(",") for line in out.splitlines()[1:-1])
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_list_that_fits_exactly_stays_on_one_line():
    head = "sweep a.b in "
    items = ["1"] * 20
    text = head + "[" + ", ".join(items) + "]"
    while len(text) < WIDTH:
        items[0] += "1"
        text = head + "[" + ", ".join(items) + "]"
    assert len(text) == WIDTH
    assert fmt(text) == text + "\n"
    items[0] += "1"
    assert fmt(head + "[" + ", ".join(items) + "]").count("\n") > 2


def test_comment_in_a_short_list_breaks_it():
    assert fmt("sweep a in [1, # one\n 2]") == "sweep a in [\n  1,  # one\n  2,\n]\n"


def test_two_comments_meeting_on_one_line():
    out = fmt("task t {\n  a = 1 +  # first\n  2  # second\n}\n")
    assert out == "task t {\n  # first\n  a = 1 + 2  # second\n}\n"


def test_full_line_comment_inside_an_expression_moves_above_its_line():
    out = fmt("task t {\n  a = 1 +\n  # why\n  2\n}\n")
    assert out == "task t {\n  # why\n  a = 1 + 2\n}\n"


def test_comment_inside_empty_import_braces_is_kept():
    out = fmt('import "x.rlhf" {\n  # nothing yet\n}\n')
    assert out == 'import "x.rlhf" {\n  # nothing yet\n}\n'


def test_header_comment_stays_at_the_top_with_its_blank_line():
    out = fmt("# header\n\n\n\ntask t {}\n# about u\ntask u {}\n")
    assert out == "# header\n\ntask t {}\n\n# about u\ntask u {}\n"


def test_parentheses_before_a_unit_word():
    # `5` followed by `tokens` would lex as the quantity `5 tokens`.
    out = fmt("view v { a = (5) tokens = 1 }")
    assert out == "view v {\n  a = (5)\n  tokens = 1\n}\n"
    assert fmt("view v { a = (5) other = 1 }") == "view v {\n  a = 5\n  other = 1\n}\n"


def test_parentheses_before_a_unit_word_stay_on_the_number():
    out = fmt("view v { a = 2 * (5) seconds = 1  b = 1 - (-5) words = 2  c = -(5) hours = 3 }")
    assert "  a = 2 * (5)\n" in out
    assert "  b = 1 - (-5)\n" in out
    assert "  c = -(5)\n" in out
    # Only the number is wrapped, so the value nests no deeper than it was written.
    deep = "f(" * 62 + "1" + ")" * 62
    fmt(f"view v {{ a = {deep} * (5) tokens = 1 }}")


def test_output_never_nests_deeper_than_the_input():
    chain = " < ".join(["1"] * 100)
    assert fmt(f"task t {{ x = {chain} }}") == f"task t {{\n  x = {chain}\n}}\n"
    right = "1 - (" * 60 + "1 - 1" + ")" * 60
    assert fmt(f"task t {{ x = {right} }}") == f"task t {{\n  x = {right}\n}}\n"


def test_units_match_the_grammar():
    match = re.search(r"^UNIT(?:\.\d+)?:\s*/\(([^)]*)\)", grammar_text(), re.M)
    assert match is not None
    assert set(match.group(1).split("|")) == set(UNITS)


def test_precedence_round_trips():
    cases = {
        "(a + b) * c": "(a + b) * c",
        "a + (b * c)": "a + b * c",
        "a - (b - c)": "a - (b - c)",
        "(a - b) - c": "a - b - c",
        "(a < b) == c": "a < b == c",
        "a < (b == c)": "a < (b == c)",
        "(not a) == b": "(not a) == b",
        "a == (not b)": "a == (not b)",
        "-(3)": "-(3)",
        "-(-3)": "--3",
        "- 3": "-3",
        "-(3 tokens)": "-3 tokens",
        "-(a)": "-a",
        "-(-(a))": "--a",
        "-(a * b)": "-(a * b)",
        "not (a or b)": "not (a or b)",
        "(not a) or b": "not a or b",
        "not (a > b)": "not a > b",
        "-(not a)": "-(not a)",
    }
    for written, canonical in cases.items():
        assert fmt(f"task t {{ x = {written} }}") == f"task t {{\n  x = {canonical}\n}}\n"


def test_long_operator_chains_do_not_exhaust_the_stack():
    chain = " + ".join(["a"] * 100)
    assert fmt(f"task t {{ x = {chain} }}") == f"task t {{\n  x = {chain}\n}}\n"
    for absurd in (" + ".join(["a"] * 3000), "-" * 3000 + "a", "not " * 3000 + "a"):
        with pytest.raises(CompileError) as caught:
            fmt(f"task t {{ x = {absurd} }}")
        assert [d.code for d in caught.value.diagnostics] == ["E0105"]


def test_deep_but_allowed_nesting():
    fmt("task t { x = " + "[" * 60 + "]" * 60 + " }")
    fmt("task t { x = " + "(not -(a * (b - " * 15 + "b" + ")))" * 15 + " }")
    fmt("task t { x = " + "[ppo { a = " * 20 + "1" + " }]" * 20 + " }")


# --------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("text", [
    "task {", "task t { a = }", "task t { a: 1 }", 'task t { a = "open }', "}}}",
    "task t { x = " + "[" * 100 + "]" * 100 + " }", "task t { x = 1e999999 }", "\x00",
])
def test_unparseable_input_is_refused(text):
    with pytest.raises(CompileError) as info:
        format_source(text)
    assert info.value.diagnostics
    assert all(d.code.startswith("E01") for d in info.value.diagnostics)


# ------------------------------------------------------------------------ format_file, diff


def test_format_file(tmp_path):
    path = tmp_path / "spec.rlhf"
    path.write_text("task t { a = 1 }", encoding="utf-8")
    original, formatted = format_file(str(path))
    assert original == "task t { a = 1 }"
    assert formatted == "task t {\n  a = 1\n}\n"


def test_format_file_refuses_what_it_cannot_read(tmp_path):
    binary = tmp_path / "blob.rlhf"
    binary.write_bytes(b"task\x00\xff")
    with pytest.raises(CompileError) as info:
        format_file(str(binary))
    assert info.value.diagnostics[0].code == "E0002"
    with pytest.raises(CompileError) as info:
        format_file(str(tmp_path / "missing.rlhf"))
    assert info.value.diagnostics[0].code == "E0001"


def test_diff():
    assert diff("same\n", "same\n", "x.rlhf") == ""
    out = diff("task t { a = 1 }", "task t {\n  a = 1\n}\n", "x.rlhf")
    lines = out.splitlines()
    assert lines[0] == "--- a/x.rlhf"
    assert lines[1] == "+++ b/x.rlhf"
    assert "-task t { a = 1 }" in lines
    assert "\\ No newline at end of file" in lines
    assert "+  a = 1" in lines
    assert out.endswith("\n")
    assert diff("a", "b\n", "/abs/x.rlhf").splitlines()[:2] == ["--- /abs/x.rlhf", "+++ /abs/x.rlhf"]


def test_diff_applies_with_patch(tmp_path):
    import shutil
    import subprocess

    if shutil.which("patch") is None:
        pytest.skip("no `patch` program")
    original = "task t { a = 1 }\npolicy pi { x = [1,2] }"
    formatted = format_source(original)
    (tmp_path / "x.rlhf").write_text(original, encoding="utf-8")
    patch = diff(original, formatted, "x.rlhf")
    subprocess.run(["patch", "-p1", "-s"], input=patch, text=True, cwd=tmp_path, check=True)
    assert (tmp_path / "x.rlhf").read_text(encoding="utf-8") == formatted
