"""The PyTorch backend: how each kind of stage computes, on the run's device.

Stage functions live in :mod:`backends.torch.stages`, one module per kind, each a function of a
:class:`~backends.base.StageCall` that writes its artifacts and returns its final metrics.
Failures a user can act on (a NaN loss, out of memory, a missing file, plugins not allowed)
become :class:`~backends.base.StageFailure` with a hint; nothing a user did shows a traceback.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from backends.base import Backend, StageCall, StageFailure
from backends.local import LocalExecutor
from backends.torch import device as devices
from rlhfdsl.lower import Stage


class NonFiniteLoss(Exception):
    """Raised by training loops when a loss or a parameter stops being finite."""


class TorchBackend(Backend):
    name = "torch"
    version = "1"

    def resolve_device(self, requested: str) -> str:
        try:
            return devices.resolve(requested)
        except devices.DeviceUnavailable as exc:
            raise StageFailure(str(exc), exc.help) from None

    def environment(self) -> dict[str, Any]:
        return {"torch": torch.__version__,
                "cuda": torch.version.cuda if torch.cuda.is_available() else None,
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "threads": torch.get_num_threads()}

    def needs(self, stage: Stage) -> dict[str, float]:
        if stage.params.get("domain") == "text" and stage.kind in (
                "pretrain", "sample", "fit_reward", "optimize_policy", "evaluate"):
            return {"num_gpus": 1}
        return {"num_cpus": 1}

    def run_stage(self, call: StageCall) -> dict[str, Any]:
        from backends.torch.stages import STAGES

        if call.stage.params.get("domain") == "text":
            _quiet_transformers()
        devices.deterministic()
        threads = torch.get_num_threads()
        if call.device == "cpu":
            # Stage tensors are small (bandits, tiny LMs): with two OpenMP threads on a shared
            # 2-core machine the hand-off costs more than the work — measured 30x slower
            # generation for a 2-layer model under load. One thread by default (results then
            # also do not depend on the core count); RLHF_CPU_THREADS overrides.
            torch.set_num_threads(int(os.environ.get("RLHF_CPU_THREADS", "1")))
        from backends.torch.feedback.errors import FeedbackError, PluginsNotAllowed
        from backends.torch.text.errors import TextBackendError

        try:
            return STAGES[call.stage.kind](call)
        except StageFailure:
            raise
        except PluginsNotAllowed as exc:
            raise StageFailure(f"stage `{call.stage.id}`: {exc}",
                               "plugins run code named by the spec: pass --allow-plugins if you "
                               "trust it") from None
        except FeedbackError as exc:
            raise StageFailure(f"stage `{call.stage.id}`: {exc}") from None
        except TextBackendError as exc:
            if "plugin" in type(exc).__name__.lower() and "allow" in type(exc).__name__.lower():
                help = "plugins run code named by the spec: pass --allow-plugins if you trust it"
            else:
                help = exc.help
            raise StageFailure(f"stage `{call.stage.id}`: {exc.message}", help) from None
        except NonFiniteLoss as exc:
            raise StageFailure(f"stage `{call.stage.id}`: {exc}",
                               "lower the learning rate (`optimizer = adam { lr = ... }`), add "
                               "regularisation, or check the feedback for degenerate labels") from None
        except torch.cuda.OutOfMemoryError:
            raise StageFailure(f"stage `{call.stage.id}` ran out of GPU memory",
                               "lower `batch_size`, the model size or `max_new_tokens`") from None
        except MemoryError:
            raise StageFailure(f"stage `{call.stage.id}` ran out of memory",
                               "lower `batch_size`, the budget or the model size") from None
        except FileNotFoundError as exc:
            name = exc.filename or str(exc)
            raise StageFailure(f"stage `{call.stage.id}` cannot find `{name}`",
                               "paths in a spec are relative to the spec's directory") from None
        except PermissionError as exc:
            raise StageFailure(f"stage `{call.stage.id}` cannot read `{exc.filename}`",
                               "check the file's permissions") from None
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise StageFailure(f"stage `{call.stage.id}` ran out of memory",
                                   "lower `batch_size`, the model size or `max_new_tokens`") from None
            raise
        finally:
            torch.set_num_threads(threads)


class TorchExecutor(LocalExecutor):
    """The entry point `torch` of group `rlhfdsl.backends`: the local executor on PyTorch."""

    def __init__(self) -> None:
        super().__init__(TorchBackend())


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Progress is the executor's job: no per-file bars from the hub libraries on stderr.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
