#!/usr/bin/env bash
# GPU checks of the text training code, for a CUDA machine; run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # logs under $OUT when set, else /tmp/gpu_check
#
# 1. the CUDA smoke tests (tests/backend/text/test_text_gpu.py: sampling and log-probs, the
#    compiled reward step, the compiled DPO step, a LoRA PPO run, bf16 autocast);
# 2. the quickstart on the GPU (`rlhfc run specs/quickstart.rlhf --device cuda -q`);
# 3. benchmarks/bench_train.py's GPU setting (GPT-2 small, 128 + 128 tokens, batch 32, bf16)
#    against TRL's RewardTrainer and DPOTrainer, with model FLOPs utilisation.
# Each step has a time limit; all together they finish within about 8 minutes.
#
# The GPU image has torch, transformers, peft, accelerate, pandas, pyarrow, xxhash, pytest and
# hypothesis; what it lacks travels as wheels in .whl/ (see the device notes). Made beforehand,
# on a machine that reaches PyPI, from the repository root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
#     lark==1.3.1 interegular==0.3.3 pydantic==2.13.4 pydantic-core==2.46.4 \
#     annotated-types==0.7.0 typing-inspection==0.4.2
#
# (the first four for TRL, the rest for rlhfdsl itself), and the device run carries `.whl`.
# Without TRL the benchmark still measures our side and says that TRL was not measured.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gpu_check}
mkdir -p "$LOG"
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
start=$(date +%s)
step() { echo; echo "=== $1 ($(( $(date +%s) - start ))s)"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl > "$LOG/wheels.log" 2>&1 || echo "wheels: install failed"
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# rlhfdsl itself (its grammar package and the `rlhfdsl.backends` entry point need an install)
if ! $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . > "$LOG/install.log" 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . \
    >> "$LOG/install.log" 2>&1 || echo "rlhfdsl: install failed (see install.log)"
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
$PY - <<'PY' 2>&1 | tee "$LOG/versions.txt"
import importlib.metadata as md
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("torch", "transformers", "peft", "triton", "accelerate", "trl", "datasets", "pyarrow", "rlhfdsl"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "missing")
PY

step "1. CUDA tests"
timeout 140 $PY -m pytest -q -p no:cacheprovider -rs tests/backend/text/test_text_gpu.py \
  2>&1 | tee "$LOG/gpu_tests.log"

step "2. quickstart on cuda"
timeout 70 $PY -m rlhfdsl.cli run specs/quickstart.rlhf --device cuda -q \
  2>&1 | tee "$LOG/quickstart.log"

step "3. bench_train.py --setting gpu"
timeout 290 $PY benchmarks/bench_train.py --setting gpu --repeats 1 --trl-python "$PY" \
  2> "$LOG/bench_gpu.log" | tee "$LOG/bench_gpu.json"
tail -n 12 "$LOG/bench_gpu.log"

step "done"
