"""Stage functions of the PyTorch backend, one per stage kind (see :mod:`rlhfdsl.lower`)."""

from backends.torch.stages.common import Ctx


def _wrap(fn):
    def run(call):
        return fn(Ctx(call))

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _registry():
    from backends.torch.stages import data, evaluation, learning

    return {
        "task": _wrap(data.task),
        "population": _wrap(data.population),
        "pretrain": _wrap(learning.pretrain),
        "sample": _wrap(data.sample),
        "render": _wrap(data.render),
        "feedback": _wrap(data.feedback),
        "fit_reward": _wrap(learning.fit_reward),
        "optimize_policy": _wrap(learning.optimize_policy),
        "evaluate": _wrap(evaluation.evaluate),
        "report": _wrap(evaluation.report),
    }


class _Stages(dict):
    """Filled on first use, so importing the backend stays cheap."""

    def __missing__(self, kind):
        if not self:
            self.update(_registry())
            return self[kind]
        raise KeyError(kind)


STAGES = _Stages()
