"""The stage graph: stable keys, changes that reach exactly the stages downstream, sweeps that
share what does not depend on the swept value."""

import json
import subprocess
import sys

import networkx as nx
import pytest

from rlhfdsl.api import compile_file

QUICKSTART = "specs/quickstart.rlhf"
BANDIT = "specs/bandit_quickstart.rlhf"


def keys(path, *sets, text=None):
    compiled = compile_file(path, sets, text=text)
    assert compiled.ok, [d.message for d in compiled.diagnostics]
    return compiled.lowered, {s.id: s.key for s in compiled.lowered.stages()}


@pytest.mark.parametrize("path", [BANDIT, "specs/overoptimization.rlhf", "specs/text/sycophancy.rlhf"])
def test_same_spec_same_keys_across_processes(path):
    _, here = keys(path)
    code = ("import json; from rlhfdsl.api import compile_file; "
            f"c = compile_file({path!r}); "
            "print(json.dumps({s.id: s.key for s in c.lowered.stages()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert json.loads(out.stdout) == here


@pytest.mark.parametrize("setting, direct", [
    ("pi.objective.kl=0.1", {"optimize_policy.pi.r0"}),
    ("rm.epochs=7", {"fit_reward.rm.r0"}),
    ("crowd.majority.rationality=3.5", {"population.crowd"}),
    ("crowd.evaluators=41", {"population.crowd"}),
    ("prefs.budget=1000", {"sample.prefs.r0", "feedback.prefs.r0"}),
    ("arms.actions=33", {"task.arms"}),
    ("evaluate.samples=500", {"evaluate.pi.r0"}),
])
def test_one_change_reaches_exactly_the_stages_downstream(setting, direct):
    lowered, before = keys(BANDIT)
    _, after = keys(BANDIT, setting)
    assert set(before) == set(after)
    changed = {i for i in before if before[i] != after[i]}
    expected = set(direct)
    for stage in direct:
        expected |= nx.descendants(lowered.graph, stage)
    assert changed == expected


def test_seed_changes_every_stage():
    _, before = keys(BANDIT)
    _, after = keys(BANDIT, "experiment.seed=8")
    assert all(before[i] != after[i] for i in before)


def test_renaming_nothing_and_reformatting_keep_keys(tmp_path):
    text = open(BANDIT).read()
    spaced = text.replace("\n", "\n\n").replace("  ", "    ")
    _, a = keys(BANDIT)
    _, b = keys(BANDIT, text=spaced)
    assert a == b


def test_sweep_shares_the_reward_model():
    text = open(BANDIT).read() + "\nsweep pi.objective.kl in [0.0, 0.01, 0.05, 0.2]\n"
    lowered, ids = keys(BANDIT, text=text)
    kinds = {}
    for stage in lowered.stages():
        kinds.setdefault(stage.kind, []).append(stage)
    assert len(kinds["fit_reward"]) == 1
    assert len(kinds["feedback"]) == 1
    assert len(kinds["optimize_policy"]) == 4
    assert {s.id for s in kinds["optimize_policy"]} == {
        "optimize_policy.pi.r0[kl=0.0]", "optimize_policy.pi.r0[kl=0.01]",
        "optimize_policy.pi.r0[kl=0.05]", "optimize_policy.pi.r0[kl=0.2]"}
    assert len(kinds["fit_reward"][0].branches) == 4


def test_rounds_are_unrolled_and_chained():
    text = open(BANDIT).read() + "\nschedule { rounds = 3 }\n"
    lowered, ids = keys(BANDIT, text=text)
    stages = {s.id: s for s in lowered.stages()}
    assert {f"fit_reward.rm.r{k}" for k in range(3)} <= set(stages)
    assert stages["sample.prefs.r1"].inputs["policy"] == ("optimize_policy.pi.r0",)
    assert stages["fit_reward.rm.r2"].inputs["feedback"] == (
        "feedback.prefs.r0", "feedback.prefs.r1", "feedback.prefs.r2")
    assert stages["optimize_policy.pi.r2"].inputs["previous"] == ("optimize_policy.pi.r1",)


def test_every_stage_carries_its_symbol_and_a_report_ends_the_graph():
    lowered, _ = keys(BANDIT)
    stages = lowered.stages()
    assert stages[-1].kind == "report"
    assert {s.symbol for s in stages} >= {"ΔH", "s", "v", "f", "r̂_φ", "π_θ"}
    assert nx.is_directed_acyclic_graph(lowered.graph)


def test_data_files_are_hashed_by_content(tmp_path):
    spec = open("specs/text/sycophancy.rlhf").read().replace("../data/prefs.jsonl", "prefs.jsonl")
    data = open("specs/data/prefs.jsonl").read()
    (tmp_path / "prefs.jsonl").write_text(data)
    path = tmp_path / "s.rlhf"
    path.write_text(spec)
    _, a = keys(str(path))
    (tmp_path / "prefs.jsonl").write_text(data + data)
    _, b = keys(str(path))
    changed = {i for i in a if a[i] != b[i]}
    assert "sample.prefs.r0" in changed and "population.raters" not in changed
    (tmp_path / "prefs.jsonl").unlink()
    compiled = compile_file(str(path))
    assert not compiled.ok
    assert any(d.code == "E0001" and "prefs.jsonl" in d.message for d in compiled.diagnostics)


@pytest.mark.parametrize("path", sorted(p for p in __import__("glob").glob("specs/**/*.rlhf", recursive=True)
                                        if "/errors/" not in p))
def test_formatted_spec_lowers_to_the_same_keys(path):
    from rlhfdsl.fmt import format_source

    text = open(path).read()
    messy = text.replace("\n  ", "\n      ").replace(" = ", "=")
    formatted = format_source(messy, path)
    original = compile_file(path)
    again = compile_file(path, text=formatted)
    if original.library:
        assert again.library and again.ok
        return
    assert {s.id: s.key for s in again.lowered.stages()} == \
        {s.id: s.key for s in original.lowered.stages()}
