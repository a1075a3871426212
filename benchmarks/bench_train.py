"""Benchmark of reward-model training and DPO steps against TRL's RewardTrainer and DPOTrainer.

    python benchmarks/bench_train.py --setting cpu [--trl-python /tmp/trlenv/bin/python]
    python benchmarks/bench_train.py --setting gpu [--trl-python python3]

One sample is one prompt/chosen/rejected row. Both sides get the same rows (synthetic sentences
over a made-up lexicon, prompts and completions of an exact token count), the same byte-level
BPE tokenizer trained locally, the same GPT-2 config built from scratch (dropout 0: TRL disables
dropout), the same batch size and device. Throughput counts timed steps only, after warm-up:

* ours — the product's code paths: :func:`backends.torch.text.fit_text_reward` (its
  ``reward_step``), timed from the end of the last warm-up step to the end of the last step
  through its ``progress`` callback; and the DPO objective's pieces (``encode_items``,
  ``CompletionTable``, ``PackedLogprobs``, ``reference_logprobs``, ``dpo_step`` as
  ``optimize_text_policy`` uses them), the reference log-probs of the timed rows computed ahead
  *inside* the timed window. On CUDA the device is synchronised at both ends of the window.
* TRL — ``RewardTrainer`` and ``DPOTrainer`` (reference = a deep copy of the policy, computed on
  the fly as TRL does by default), timed with a ``TrainerCallback`` from the end of the last
  warm-up step to the end of the last step, as ``shared/reference/trl_anchor.py`` does; fp32
  without gradient checkpointing on the CPU, bf16 on the GPU.

TRL is never a project dependency: it comes from ``benchmarks/requirements-trl.txt``, installed
in its own environment (``python -m venv --system-site-packages /tmp/trlenv &&
/tmp/trlenv/bin/pip install -r benchmarks/requirements-trl.txt``). Its half always runs as a
subprocess — ``--trl-python`` (default: this interpreter when it can import trl) running this
file with ``--trl-worker`` — so the two halves never share a process. When TRL cannot be
imported, our half still runs and the JSON says ``"trl_measured": false``.

Settings (from the issue):

    cpu   GPT-2 4 layers, width 256, 4 heads, vocab = the tokenizer's (4096); prompts of 32 and
          completions of 32 tokens; batch 16; fp32; 2 threads; 5 repeats
    gpu   GPT-2 small: 12 layers, width 768, 12 heads, vocab 50304; prompts of 128 and
          completions of 128 tokens; batch 32; bf16 autocast; also model FLOPs utilisation,
          6·N per token for reward training and 8·N for DPO (a reference forward), over a
          dense bf16 peak of 989 TFLOP/s (H100 SXM / H200)

Repeats alternate the two sides (ours, TRL, ours, TRL, …), each in a fresh process, and report
medians, since the machine may be shared: on the CPU a repeat's samples/s is the batch size over
its median step time (our DPO adds the reference pass ahead, spread over the steps), the whole
window's figure beside it; on CUDA the window's. The last line of stdout is one JSON object
with both sides' figures and the ratios ours / TRL.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SETTINGS = {
    "cpu": dict(layers=4, width=256, heads=4, vocab=0, prompt_tokens=32, completion_tokens=32,
                batch_size=16, warmup=5, steps=25, repeats=5, threads=2, device="cpu"),
    "gpu": dict(layers=12, width=768, heads=12, vocab=50304, prompt_tokens=128,
                completion_tokens=128, batch_size=32, warmup=8, steps=30, repeats=2, threads=8,
                device="cuda"),
}
PEAK_TFLOPS = 989.0  # dense bf16, H100 SXM and H200
EOS, PAD = "<|endoftext|>", "<|pad|>"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- data


def make_lexicon(rng: random.Random, n_words: int = 600) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "pe", "da", "qu", "zo",
            "ba", "fi", "gu", "he", "ji", "wo", "xe", "ly", "an", "or", "el", "is"]
    words: set[str] = set()
    while len(words) < n_words:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def make_sentence(rng: random.Random, lexicon: list[str], n: int) -> str:
    s = " ".join(rng.choice(lexicon) for _ in range(n))
    return s[0].upper() + s[1:] + rng.choice([".", "!", "?", ","])


def build_tokenizer(rng: random.Random, lexicon: list[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer trained on synthetic sentences (as trl_anchor.py builds it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [make_sentence(rng, lexicon, rng.randint(6, 30)) for _ in range(4000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS,
                                 unk_token=EOS, pad_token=PAD)
    hf.model_max_length = 1024
    return hf


def text_of_n_tokens(rng: random.Random, lexicon: list[str], tok, n: int) -> str:
    words: list[str] = []
    ids: list[int] = []
    while len(ids) < n:
        words.append(make_sentence(rng, lexicon, rng.randint(4, 12)))
        ids = tok(" ".join(words), add_special_tokens=False)["input_ids"]
    return tok.decode(ids[:n])


def prepare_data(directory: Path, rows: int, prompt_tokens: int, completion_tokens: int,
                 seed: int = 0) -> None:
    """The tokenizer (``directory/tokenizer``) and ``rows.json`` both halves read."""
    rng = random.Random(seed)
    lexicon = make_lexicon(rng)
    tok = build_tokenizer(rng, lexicon)
    tok.save_pretrained(str(directory / "tokenizer"))
    data = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(rows):
        data["prompt"].append(text_of_n_tokens(rng, lexicon, tok, prompt_tokens))
        data["chosen"].append(" " + text_of_n_tokens(rng, lexicon, tok, completion_tokens))
        data["rejected"].append(" " + text_of_n_tokens(rng, lexicon, tok, completion_tokens))
    (directory / "rows.json").write_text(json.dumps(data))


def throughput(marks: dict[int, float], first: int, last: int, batch_size: int, cuda: bool,
               extra: float = 0.0) -> dict:
    """Samples/s over steps first+1 … last from the end-of-step times ``marks`` (``extra``
    seconds more, e.g. a reference pass ahead). On the CPU, whose cores other jobs may share,
    from the median step time (+ extra spread over the steps); on CUDA, where steps are not
    waited for one by one, from the whole window."""
    steps = last - first
    window = marks[last] - marks[first] + extra
    durations = [marks[s] - marks[s - 1] for s in range(first + 1, last + 1)]
    step = statistics.median(durations) + extra / steps
    return {"samples_per_s": batch_size * steps / window if cuda else batch_size / step,
            "window_samples_per_s": batch_size * steps / window,
            "median_step_s": step, "window_s": window}


def mfu(samples_per_s: float, params: int, tokens_per_sample: float, factor: int) -> float:
    return samples_per_s * factor * params * tokens_per_sample / (PEAK_TFLOPS * 1e12)


# ------------------------------------------------------------------------------ our side


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def ours_reward(cfg: dict, tok, data: dict, seed: int) -> dict:
    """fit_text_reward on pairwise labels of the rows, one epoch of warmup + steps batches."""
    import torch

    from backends.torch.labels import LabelTable
    from backends.torch.text import build_reward_model, fit_text_reward
    from backends.torch.text.models import parameter_count
    from rlhfdsl.spec.experiment import Model
    from rlhfdsl.spec.learning import Reward

    B, W, S = cfg["batch_size"], cfg["warmup"], cfg["steps"]
    n = B * (W + S)
    prompts, chosen, rejected = (data[k][:n] for k in ("prompt", "chosen", "rejected"))
    zero = torch.zeros(n, dtype=torch.long)
    items = torch.stack([torch.arange(n), torch.arange(n) + n], 1)
    table = LabelTable("pairwise", dict(
        query=torch.arange(n), items=items, evaluator=zero, group=zero, malicious=zero.bool(),
        triggered=zero.bool(), round=zero, session=zero, cost=torch.ones(n),
        gold=torch.zeros(n, 2), choice=zero), {"texts": chosen + rejected,
                                                "prompts": prompts + prompts, "k": 2})
    model_spec = Model(name="bench", layers=cfg["layers"], width=cfg["width"],
                       heads=cfg["heads"], vocab=cfg["vocab"] or None, context=1024)
    spec = Reward(name="rm", epochs=1, batch_size=B, holdout=0.0,
                  optimizer={"type": "adamw", "lr": 1e-4, "weight_decay": 0.0})
    device = cfg["device"]
    model = build_reward_model(model_spec, tok, generator=torch.Generator().manual_seed(seed),
                               device=device)
    marks: dict[int, float] = {}

    def progress(step: int) -> None:
        if step in (W, W + S):
            synchronize(device)
        marks[step] = time.perf_counter()

    max_tokens = cfg["prompt_tokens"] + cfg["completion_tokens"] + 16
    _, metrics = fit_text_reward(spec, [table], model, tok, device=device, progress=progress,
                                 generator=torch.Generator().manual_seed(seed),
                                 max_tokens=max_tokens, precision=cfg["precision"])
    from backends.torch.text.train_reward import reward_sequences

    rows = reward_sequences(tok, prompts[:256] * 2, chosen[:256] + rejected[:256], max_tokens)
    tokens = 2 * statistics.mean(len(r) for r in rows)
    log("# reward step seconds: " + " ".join(f"{marks[s] - marks[s - 1]:.3f}"
                                            for s in range(2, W + S + 1)))
    out = {**throughput(marks, W, W + S, B, device == "cuda"), "tokens_per_sample": tokens,
           "params": parameter_count(model), "final_loss": metrics["loss"][-1]}
    if device == "cuda":
        out["mfu"] = mfu(out["samples_per_s"], out["params"], tokens, 6)
        out["max_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def ours_dpo(cfg: dict, tok, data: dict, seed: int) -> dict:
    """The DPO objective's step on the rows: reference log-probs of the timed rows ahead (in
    the window), then one dpo_step per batch."""
    import torch

    from backends.torch.reward.training import build_optimizer
    from backends.torch.text import build_causal_lm, frozen_copy
    from backends.torch.text.models import parameter_count
    from backends.torch.text.train_policy import (
        CompletionTable, PackedLogprobs, dpo_step, encode_items, reference_logprobs,
    )
    from backends.torch.text.train_reward import fast_activations, fused
    from rlhfdsl.spec.experiment import Model, TextTask
    from rlhfdsl.spec.learning import DPO, Adam

    B, W, S = cfg["batch_size"], cfg["warmup"], cfg["steps"]
    n = B * (W + S)
    device = cfg["device"]
    task = TextTask(name="bench", domain="text", max_prompt_tokens=cfg["prompt_tokens"] + 8,
                    max_new_tokens=cfg["completion_tokens"] + 8)
    model_spec = Model(name="bench", layers=cfg["layers"], width=cfg["width"],
                       heads=cfg["heads"], vocab=cfg["vocab"] or None, context=1024)
    policy = build_causal_lm(model_spec, tok, generator=torch.Generator().manual_seed(seed),
                             device=device)
    fast_activations(policy)  # as optimize_text_policy does
    reference = frozen_copy(policy)
    objective = DPO(beta=0.1)
    prompts = data["prompt"][:n]
    p_rows, c_rows = encode_items(tok, prompts + prompts, data["chosen"][:n]
                                  + data["rejected"][:n], task)
    table = CompletionTable(p_rows, c_rows, tok.pad_id)
    policy_lp = PackedLogprobs(policy, precision=cfg["precision"])
    ref_lp = PackedLogprobs(reference, precision=cfg["precision"])
    optimizer = fused(build_optimizer(Adam(type="adam", lr=1e-6), policy.parameters(), "text"))

    def rows(step: int) -> torch.Tensor:
        pairs = torch.arange(step * B, (step + 1) * B)
        return torch.cat([pairs, pairs + n])

    def run(first: int, last: int) -> tuple[dict[int, float], float]:
        """Reference log-probs of the steps' rows ahead, then the steps: (end-of-step times,
        seconds of the reference pass)."""
        synchronize(device)
        start = time.perf_counter()
        index = torch.cat([rows(s) for s in range(first, last)])
        ref = reference_logprobs(ref_lp, table, rows=index, batch_size=2 * B)
        if device == "cpu":  # a CPU reference pass is done when it returns
            marks = {first: time.perf_counter()}
            ahead = marks[first] - start
        else:  # not waited for: its time shows in the window
            marks, ahead = {first: start}, 0.0
        for i, step in enumerate(range(first, last)):
            dpo_step(policy_lp, optimizer, table.batch(rows(step), device),
                     ref[2 * B * i:2 * B * (i + 1)], objective)
            if step + 1 == last:
                synchronize(device)
            marks[step + 1] = time.perf_counter()
        return marks, ahead

    run(0, W)  # warm-up: compiles both graphs
    marks, ahead = run(W, W + S)
    lengths = table.tokens.lengths[:512].float()
    tokens = 2 * lengths.mean().item()  # chosen and rejected rows, prompt counted in each
    out = {**throughput(marks, W, W + S, B, device == "cuda", extra=ahead),
           "reference_s": ahead, "tokens_per_sample": tokens, "params": parameter_count(policy)}
    if device == "cuda":
        out["mfu"] = mfu(out["samples_per_s"], out["params"], tokens, 8)
        out["max_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def run_ours(cfg: dict, directory: Path, seed: int) -> dict:
    import torch

    from backends.torch.text import load_tokenizer

    torch.set_num_threads(cfg["threads"])
    if cfg["device"] == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tok = load_tokenizer(str(directory / "tokenizer"))
    data = json.loads((directory / "rows.json").read_text())
    out = {"reward": ours_reward(cfg, tok, data, seed)}
    if cfg["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out["dpo"] = ours_dpo(cfg, tok, data, seed)
    return out


# ------------------------------------------------------------------------------ TRL side


def trl_worker(cfg: dict, directory: Path, seed: int) -> dict:
    """Runs in the TRL environment: RewardTrainer and DPOTrainer on the same rows."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from datasets import Dataset
    from transformers import (
        GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast,
        TrainerCallback,
    )
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    hf_logging.set_verbosity_error()
    torch.set_num_threads(cfg["threads"])
    cuda = cfg["device"] == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    tok = PreTrainedTokenizerFast.from_pretrained(str(directory / "tokenizer"))
    data = json.loads((directory / "rows.json").read_text())
    B, W, S = cfg["batch_size"], cfg["warmup"], cfg["steps"]
    n = B * (W + S)
    ds = Dataset.from_dict({k: v[:n] for k, v in data.items()})

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kw):
            self.marks[state.global_step] = time.perf_counter()

    gpt = dict(n_layer=cfg["layers"], n_embd=cfg["width"], n_head=cfg["heads"], n_positions=1024,
               vocab_size=cfg["vocab"] or len(tok), bos_token_id=tok.eos_token_id,
               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    common = dict(max_steps=W + S, per_device_train_batch_size=B, gradient_accumulation_steps=1,
                  max_length=2 * (cfg["prompt_tokens"] + cfg["completion_tokens"]),
                  use_cpu=not cuda, report_to="none", save_strategy="no", eval_strategy="no",
                  logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=seed,
                  bf16=cuda, fp16=False, gradient_checkpointing=False)
    out = {}
    with tempfile.TemporaryDirectory(prefix="trlbench_") as tmp:
        for name in ("reward", "dpo"):
            torch.manual_seed(seed)
            timer = StepTimer()
            if name == "reward":
                model = GPT2ForSequenceClassification(GPT2Config(num_labels=1, **gpt))
                args = RewardConfig(output_dir=os.path.join(tmp, name), **common)
                trainer = RewardTrainer(model=model, args=args, train_dataset=ds,
                                        processing_class=tok, callbacks=[timer])
                factor = 6
            else:
                model = GPT2LMHeadModel(GPT2Config(**gpt))
                args = DPOConfig(output_dir=os.path.join(tmp, name), **common)
                trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args,
                                     train_dataset=ds, processing_class=tok, callbacks=[timer])
                factor = 8
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            trainer.train()
            processed = trainer.train_dataset.select(range(min(256, n)))
            lengths = [sum(len(row[c]) for c in processed.column_names
                           if isinstance(row[c], list) and row[c] and isinstance(row[c][0], int)
                           and c != "prompt_ids")
                       + (2 * len(row["prompt_ids"]) if "prompt_ids" in row else 0)
                       for row in processed]
            params = sum(p.numel() for p in model.parameters())
            tokens = statistics.mean(lengths)
            result = {**throughput(timer.marks, W, W + S, B, cuda),
                      "tokens_per_sample": tokens, "params": params}
            if cuda:
                result["mfu"] = mfu(result["samples_per_s"], params, tokens, factor)
                result["max_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
            out[name] = result
            del trainer, model
    import trl

    out["version"] = trl.__version__
    return out


def run_trl(python: str, cfg: dict, directory: Path, seed: int) -> dict | None:
    command = [python, __file__, "--trl-worker", str(directory), "--config", json.dumps(cfg),
               "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        log(f"# TRL run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return None
    return json.loads(lines[-1])


def trl_python(requested: str | None) -> str | None:
    """The interpreter that runs TRL: the one asked for, else this one if it imports trl."""
    candidates = [requested] if requested else [sys.executable]
    for python in candidates:
        check = subprocess.run([python, "-c", "import trl, datasets"], capture_output=True)
        if check.returncode == 0:
            return python
        log(f"# TRL is not importable with {python}: "
            f"{check.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    return None


# ----------------------------------------------------------------------------------- main


def summary(results: list[dict], key: str) -> dict:
    """Medians over the repeats of each figure of ``results[i][key]``."""
    figures = [r[key] for r in results]
    return {name: round(statistics.median(f[name] for f in figures), 4)
            for name in figures[0] if isinstance(figures[0][name], (int, float))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="cpu")
    ap.add_argument("--trl-python", default=None,
                    help="python of the TRL environment (default: this one, if it imports trl)")
    ap.add_argument("--no-trl", action="store_true", help="measure our side only")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (cpu: 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trl-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ours-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--config", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.trl_worker or a.ours_worker:
        cfg = json.loads(a.config)
        worker = trl_worker if a.trl_worker else run_ours
        print(json.dumps(worker(cfg, Path(a.trl_worker or a.ours_worker), a.seed)), flush=True)
        return

    cfg = dict(SETTINGS[a.setting])
    for name in ("repeats", "steps", "warmup", "threads"):
        if getattr(a, name) is not None:
            cfg[name] = getattr(a, name)
    cfg["precision"] = "fp32" if cfg["device"] == "cpu" else "auto"
    os.environ["OMP_NUM_THREADS"] = str(cfg["threads"])
    python = None if a.no_trl else trl_python(a.trl_python)
    rows = cfg["batch_size"] * (cfg["warmup"] + cfg["steps"])
    ours, trl = [], []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        prepare_data(directory, rows, cfg["prompt_tokens"], cfg["completion_tokens"], a.seed)
        log(f"# {rows} rows prepared in {time.perf_counter() - t:.1f}s; setting {a.setting}")
        for repeat in range(cfg["repeats"]):
            # our half in a fresh process too, so that neither inherits the other's state
            command = [sys.executable, __file__, "--ours-worker", str(directory), "--config",
                       json.dumps(cfg), "--seed", str(a.seed)]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
            if done.returncode or not lines:
                raise SystemExit(f"our side failed:\n{done.stderr[-4000:]}")
            for line in done.stderr.splitlines():
                if line.startswith("# "):
                    log(line)
            ours.append(json.loads(lines[-1]))
            log(f"# repeat {repeat + 1} ours: " + json.dumps(
                {k: round(v["samples_per_s"], 2) for k, v in ours[-1].items()}))
            if python is not None:
                result = run_trl(python, cfg, directory, a.seed)
                if result is not None:
                    trl.append(result)
                    log(f"# repeat {repeat + 1} TRL {result['version']}: " + json.dumps(
                        {k: round(v["samples_per_s"], 2) for k, v in result.items()
                         if isinstance(v, dict)}))

    out: dict = {"setting": a.setting, "device": cfg["device"], "batch_size": cfg["batch_size"],
                 "prompt_tokens": cfg["prompt_tokens"],
                 "completion_tokens": cfg["completion_tokens"],
                 "model": {k: cfg[k] for k in ("layers", "width", "heads", "vocab")},
                 "steps": cfg["steps"], "warmup": cfg["warmup"], "repeats": cfg["repeats"],
                 "ours": {"reward": summary(ours, "reward"), "dpo": summary(ours, "dpo")}}
    if cfg["device"] == "cuda":
        import torch

        out["gpu"] = torch.cuda.get_device_name(0)
    out["trl_measured"] = bool(trl)
    if trl:
        out["trl"] = {"version": trl[0]["version"], "reward": summary(trl, "reward"),
                      "dpo": summary(trl, "dpo")}
        out["ratio"] = {k: round(out["ours"][k]["samples_per_s"]
                                 / out["trl"][k]["samples_per_s"], 3) for k in ("reward", "dpo")}
    else:
        out["note"] = ("TRL was not measured (not importable: install benchmarks/"
                       "requirements-trl.txt in its own venv and pass --trl-python)")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
