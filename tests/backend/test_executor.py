"""`rlhfc run` on the bandit domain: caching, reruns, resuming after kill -9, failures."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlhfdsl.api import compile_file
from rlhfdsl.cli.main import main
from rlhfdsl.plan import is_cached

SPEC = "specs/bandit_quickstart.rlhf"
SMALL = ["--set", "prefs.budget=400", "--set", "rm.epochs=5", "--set", "pi.steps=40"]


def run(tmp_path: Path, *args: str, cache: str = "cache"):
    result = CliRunner().invoke(main, ["run", SPEC, "--cache", str(tmp_path / cache), "--runs",
                                       str(tmp_path / "runs"), "-q", *SMALL, *args])
    return result


def summary(tmp_path: Path) -> bytes:
    return (tmp_path / "runs" / "bandit_quickstart" / "summary.json").read_bytes()


def test_run_then_rerun_is_all_cached_and_identical(tmp_path):
    first = run(tmp_path)
    assert first.exit_code == 0, first.output
    assert "9 stages ran, 0 cached" in first.output
    assert "gold_reward" in first.output
    before = summary(tmp_path)
    metrics = (tmp_path / "runs" / "bandit_quickstart" / "metrics.jsonl").read_bytes()
    second = run(tmp_path)
    assert second.exit_code == 0, second.output
    assert "0 stages ran, 9 cached" in second.output
    assert summary(tmp_path) == before
    assert (tmp_path / "runs" / "bandit_quickstart" / "metrics.jsonl").read_bytes() == metrics
    data = json.loads(before)
    row = data["results"][0]["metrics"]
    assert row["gold_reward"] > row["gold_reward_init"]
    run_dir = tmp_path / "runs" / "bandit_quickstart"
    for name in ("lock.json", "resolved.json", "environment.json", "metrics.jsonl",
                 "disclosure.md", "artifacts.json"):
        assert (run_dir / name).exists(), name
    assert "device" in json.loads((run_dir / "environment.json").read_text())


def test_same_spec_twice_in_fresh_caches_gives_identical_summaries(tmp_path):
    assert run(tmp_path, cache="a").exit_code == 0
    a = summary(tmp_path)
    assert run(tmp_path, cache="b").exit_code == 0
    assert summary(tmp_path) == a


def test_a_changed_parameter_reruns_only_what_depends_on_it(tmp_path):
    assert run(tmp_path).exit_code == 0
    result = run(tmp_path, "--set", "pi.objective.kl=0.5")
    assert result.exit_code == 0, result.output
    assert "3 stages ran, 6 cached" in result.output  # optimize_policy, evaluate, report


def test_plan_says_what_is_cached_and_why_the_rest_runs(tmp_path):
    assert run(tmp_path).exit_code == 0
    result = CliRunner().invoke(main, ["plan", SPEC, "--cache", str(tmp_path / "cache"), "--runs",
                                       str(tmp_path / "runs"), *SMALL, "--set", "pi.steps=41"])
    assert result.exit_code == 0, result.output
    assert "6 cached, 3 to run" in result.output
    assert "changed: policy.steps: 40 → 41" in result.output
    assert "after optimize_policy.pi.r0" in result.output


def test_a_run_killed_mid_way_resumes_to_the_same_summary(tmp_path):
    assert run(tmp_path, cache="reference").exit_code == 0
    expected = summary(tmp_path)

    cache = tmp_path / "killed"
    compiled = compile_file(SPEC, tuple(SMALL[1::2]))
    stages = {s.id: s.key for s in compiled.lowered.stages()}
    command = [sys.executable, "-m", "rlhfdsl.cli", "run", SPEC, "--cache", str(cache),
               "--runs", str(tmp_path / "runs"), "-q", *SMALL]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not is_cached(str(cache), stages["feedback.prefs.r0"]):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not is_cached(str(cache), stages["report.bandit_quickstart"])

    resumed = run(tmp_path, cache="killed")
    assert resumed.exit_code == 0, resumed.output
    ran = int(resumed.output.split(" stages ran")[0].split()[-1])
    assert 0 < ran < len(stages)
    assert summary(tmp_path) == expected
    assert not any(".tmp-" in p.name for p in cache.glob("*/*"))


def test_a_nan_loss_is_a_clear_message_and_keeps_the_cache(tmp_path):
    result = run(tmp_path, "--set", "rm.optimizer=sgd { lr = 1e30 }", "--set", "rm.epochs=30")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "error: stage `fit_reward.rm.r0`" in result.output
    assert "help:" in result.output and "rerun" in result.output
    cache = tmp_path / "cache"
    compiled = compile_file(SPEC, tuple(SMALL[1::2]) + ("rm.optimizer=sgd { lr = 1e30 }", "rm.epochs=30"))
    keys = {s.id: s.key for s in compiled.lowered.stages()}
    assert is_cached(str(cache), keys["feedback.prefs.r0"])
    assert not is_cached(str(cache), keys["fit_reward.rm.r0"])


def test_an_unavailable_device_is_a_clear_message(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = run(tmp_path, "--device", "cuda")
    assert result.exit_code == 1
    assert "no CUDA device" in result.output and "Traceback" not in result.output
