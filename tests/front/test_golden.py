"""Golden diagnostics: `specs/errors/NAME.rlhf` with `NAME.stderr`, exactly what

    rlhfc check specs/errors/NAME.rlhf

prints to stderr, run from the repository root without colour. `pytest --bless` rewrites the
`.stderr` files from the current output; review their diff like code. Also here: the JSON form of
the diagnostics, the exit codes, and the errors that need no spec file (E0001, E0002, E0802).
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from click.testing import CliRunner

from rlhfdsl.cli.main import main
from rlhfdsl.errors import CODES

ROOT = pathlib.Path(__file__).resolve().parents[2]
ERRORS = ROOT / "specs" / "errors"
GOLDEN = sorted(ERRORS.glob("*.rlhf"))
# Codes shown by tests below rather than by golden files: they need no spec, or CLI arguments.
TESTED_DIRECTLY = {"E0001", "E0002", "E0802"}


@pytest.fixture
def cli(monkeypatch):
    """Run `rlhfc` in-process from the repository root, without colour; (exit code, stdout,
    stderr)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def relative(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda p: p.stem)
def test_golden_diagnostics(spec: pathlib.Path, cli, bless: bool):
    code, stdout, stderr = cli("check", relative(spec))
    expected = spec.with_suffix(".stderr")
    if bless:
        expected.write_text(stderr, encoding="utf-8")
        return
    assert expected.exists(), f"no golden file for {spec.name}: run `pytest --bless` and review it"
    assert stderr == expected.read_text(encoding="utf-8")
    assert stdout == ""
    assert code == (1 if re.search(r"^error", stderr, re.M) else 0)
    assert "Traceback" not in stderr and "internal error" not in stderr


def test_every_golden_file_has_its_spec():
    orphans = [p.name for p in ERRORS.glob("*.stderr") if not p.with_suffix(".rlhf").exists()]
    assert orphans == []


def test_every_code_is_shown_somewhere():
    shown = set(TESTED_DIRECTLY)
    for path in ERRORS.glob("*.stderr"):
        shown.update(re.findall(r"^(?:error|warning)\[([EW]\d{4})\]", path.read_text(), re.M))
    assert sorted(set(CODES) - shown) == []
    assert sorted(shown - set(CODES)) == []


def test_golden_specs_cover_several_errors_at_once():
    many = (ERRORS / "many_errors.stderr").read_text()
    codes = set(re.findall(r"^error\[(E\d{4})\]", many, re.M))
    assert len(codes) >= 5


# --------------------------------------------------------------------------------- JSON


def test_json_output_shape(cli):
    code, stdout, stderr = cli("check", "--format", "json", "specs/errors/many_errors.rlhf")
    assert code == 1
    assert stderr == ""
    report = json.loads(stdout)
    assert set(report) == {"file", "ok", "errors", "warnings", "diagnostics"}
    assert report["file"] == "specs/errors/many_errors.rlhf"
    assert report["ok"] is False
    assert report["errors"] == 7 and report["warnings"] == 0
    golden = (ERRORS / "many_errors.stderr").read_text()
    assert [d["code"] for d in report["diagnostics"]] == re.findall(
        r"^error\[(E\d{4})\]", golden, re.M)
    first = report["diagnostics"][0]
    assert set(first) == {"severity", "code", "message", "span", "label", "help", "notes",
                          "related"}
    assert first["severity"] == "error"
    assert first["code"] == "E0301"
    assert first["message"] == "unknown key `rounds` in experiment `overoptimization`"
    assert first["span"] == {"file": "specs/errors/many_errors.rlhf", "line": 4, "column": 3,
                             "end_line": 4, "end_column": 9}
    assert first["help"].startswith("the keys are")
    assert isinstance(first["notes"], list) and isinstance(first["related"], list)


def test_json_related_spans(cli):
    _, stdout, _ = cli("check", "--format", "json", "specs/errors/loss_feedback.rlhf")
    (diagnostic,) = json.loads(stdout)["diagnostics"]
    assert diagnostic["code"] == "E0501"
    assert diagnostic["related"] == [{
        "span": {"file": "specs/errors/loss_feedback.rlhf", "line": 15, "column": 10,
                 "end_line": 15, "end_column": 18},
        "label": "`prefs` is `pairwise` feedback"}]


def test_json_for_several_files_is_a_list(cli):
    code, stdout, _ = cli("check", "--format", "json", "specs/errors/unused.rlhf",
                          "specs/errors/minibatch.rlhf")
    assert code == 1
    reports = json.loads(stdout)
    assert [r["ok"] for r in reports] == [True, False]
    assert reports[0]["warnings"] == 2


# --------------------------------------------------------------------------- exit codes


def test_exit_code_clean_is_0(cli):
    code, _, stderr = cli("check", "specs/errors/weights_normalised.rlhf")
    assert code == 0
    assert "checks with 1 warning" in stderr


def test_exit_code_errors_is_1(cli):
    code, _, stderr = cli("check", "specs/errors/minibatch.rlhf")
    assert code == 1
    assert stderr.rstrip().endswith("has 1 error")


def test_deny_warnings_turns_warnings_into_failure(cli):
    code, _, _ = cli("check", "--deny-warnings", "specs/errors/unused.rlhf")
    assert code == 1


@pytest.mark.parametrize("args", [
    ("check",),                                                  # no file
    ("check", "--format", "xml", "specs/errors/unused.rlhf"),    # no such format
    ("check", "--no-such-flag", "specs/errors/unused.rlhf"),     # no such option
])
def test_exit_code_usage_is_2(cli, args):
    code, _, stderr = cli(*args)
    assert code == 2
    assert "Usage:" in stderr


def test_one_bad_file_fails_the_whole_check(cli):
    code, _, stderr = cli("check", "specs/errors/unused.rlhf", "specs/errors/minibatch.rlhf")
    assert code == 1
    assert "checks with 2 warnings" in stderr and "has 1 error" in stderr


# --------------------------------------------------------------- errors without a spec


def test_missing_file_is_E0001(cli):
    code, _, stderr = cli("check", "specs/errors/no_such_spec.rlhf")
    assert code == 1
    assert stderr.startswith("error[E0001]: cannot find `specs/errors/no_such_spec.rlhf`\n")
    assert "= help: check the path" in stderr


def test_a_directory_is_E0001(cli):
    code, _, stderr = cli("check", "specs/errors")
    assert code == 1
    assert stderr.startswith("error[E0001]: `specs/errors` is a directory, not a spec file")


def test_binary_file_is_E0002(cli, tmp_path):
    binary = tmp_path / "weights.rlhf"
    binary.write_bytes(b"task arms {\x00\x01\x02}")
    code, _, stderr = cli("check", str(binary))
    assert code == 1
    assert stderr.startswith(f"error[E0002]: `{binary}` is a binary file, not a spec")


def test_latin1_file_is_E0002(cli, tmp_path):
    latin = tmp_path / "latin.rlhf"
    latin.write_bytes('experiment e {\n  description = "caf\u00e9"\n}\n'.encode("latin-1"))
    code, _, stderr = cli("check", str(latin))
    assert code == 1
    assert stderr.startswith(f"error[E0002]: `{latin}` is not UTF-8 text (a bad byte on line 2)")


def test_bad_set_is_E0802(cli):
    code, _, stderr = cli("check", "specs/errors/minibatch.rlhf", "--set", "pi.objective.kl")
    assert code == 1
    assert "error[E0802]: `--set pi.objective.kl` is not `path=value`" in stderr
    code, _, stderr = cli("check", "specs/errors/minibatch.rlhf", "--set", "pi.steps=(")
    assert code == 1
    assert "error[E0802]: cannot read the value of `--set pi.steps`" in stderr


def test_set_can_fix_a_golden_error(cli):
    code, _, stderr = cli("check", "specs/errors/minibatch.rlhf",
                          "--set", "pi.objective.minibatch=16")
    assert code == 0, stderr
    assert "error[" not in stderr


def test_no_colour_without_a_terminal(cli):
    _, _, stderr = cli("check", "specs/errors/minibatch.rlhf")
    assert "\x1b[" not in stderr


def test_golden_files_are_plain_text():
    for path in ERRORS.glob("*.stderr"):
        text = path.read_text(encoding="utf-8")
        assert "\x1b[" not in text, path.name
        assert text.endswith("\n"), path.name
        assert f"`specs/errors/{path.stem}.rlhf`" in text, path.name  # run from the root
