"""Every shipped spec runs end to end (with budgets, epochs and steps cut down for speed)."""

import glob
import json

import pytest
from click.testing import CliRunner

from rlhfdsl.api import compile_file
from rlhfdsl.cli.main import main

BANDIT = sorted(p for p in glob.glob("specs/*.rlhf"))
TEXT = sorted(glob.glob("specs/text/*.rlhf"))


def smaller(path: str) -> list[str]:
    """`--set` overrides that keep a spec's structure but make it quick."""
    spec = compile_file(path).spec
    sets = []
    for name, fb in spec.feedback.items():
        if fb.budget.unit == "labels":
            sets.append(f"{name}.budget={min(int(fb.budget.amount), 240)}")
        else:
            sets.append(f"{name}.budget={min(fb.budget.amount, 600):g} seconds")
    for name, rm in spec.rewards.items():
        sets.append(f"{name}.epochs={min(rm.epochs, 3)}")
        sets.append(f"{name}.batch_size={min(rm.batch_size, 16)}")
    for name, pi in spec.policies.items():
        sets.append(f"{name}.steps={min(pi.steps, 15 if spec.domain == 'bandit' else 3)}")
        if spec.domain == "text":
            sets.append(f"{name}.batch_size={min(pi.batch_size, 8)}")
    if spec.domain == "text":
        sets += ["task.pretrain_steps=10", "evaluate.samples=8"]
    return [x for s in sets for x in ("--set", s)]


def run(path: str, tmp_path, extra=()):
    if compile_file(path).spec.task is None:
        pytest.skip("a library of declarations")
    result = CliRunner().invoke(main, ["run", path, "--cache", str(tmp_path / "cache"),
                                       "--runs", str(tmp_path / "runs"), "-q",
                                       *smaller(path), *extra])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    name = compile_file(path).spec.experiment.name
    summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    assert summary["results"]
    return summary


@pytest.mark.parametrize("path", TEXT + ["specs/quickstart.rlhf"])
def test_text_spec_runs(path, tmp_path):
    summary = run(path, tmp_path)
    assert any(row["metrics"].get("gold_reward") is not None for row in summary["results"])


@pytest.mark.parametrize("path", [p for p in BANDIT if p != "specs/quickstart.rlhf"])
def test_bandit_spec_runs(path, tmp_path):
    summary = run(path, tmp_path)
    for row in summary["results"]:
        if row["kind"] == "policy" and "gold_reward" in row["metrics"]:
            assert row["metrics"]["gold_reward"] is not None
