"""The PyTorch backend and its local executor (entry point `torch`, group `rlhfdsl.backends`)."""


def __getattr__(name):
    if name in ("TorchExecutor", "TorchBackend"):
        from backends.torch import backend

        return getattr(backend, name)
    raise AttributeError(name)
