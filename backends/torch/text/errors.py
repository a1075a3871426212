"""Every error the text backend raises, in one place.

Each is a :class:`TextBackendError`: a one-line ``message`` written like a compiler diagnostic
(lowercase, no final period, names in backticks) and an optional ``help`` line, so the executor
can turn it into a user diagnostic without showing a traceback. ``code`` is a short stable key the
executor can map onto its diagnostic codes.
"""

from __future__ import annotations


class TextBackendError(Exception):
    """A problem the user can fix: a missing path, a refused plugin, a bad scorer argument."""

    code = "text"

    def __init__(self, message: str, help: str | None = None):
        self.message = message
        self.help = help
        super().__init__(message if help is None else f"{message} (help: {help})")


class PathNotFound(TextBackendError):
    """A local directory or file named by the spec does not exist or holds the wrong thing."""

    code = "path-not-found"


class TokenizerNotFound(PathNotFound):
    """`tokenizer = "dir"`: the directory is missing or holds no tokenizer."""

    code = "tokenizer-not-found"


class ModelNotFound(PathNotFound):
    """`path = "dir"`: the directory is missing or holds no saved model."""

    code = "model-not-found"


class DataNotFound(PathNotFound):
    """`prompts = file(...)` or `pretrain = file(...)`: the file is missing or empty."""

    code = "data-not-found"


class ModelConfigError(TextBackendError):
    """The model declaration cannot be built (heads do not divide width, vocabulary too small)."""

    code = "model-config"


class UnknownScorer(TextBackendError):
    """A scorer name the text backend does not know."""

    code = "unknown-scorer"


class ScorerArgumentError(TextBackendError):
    """A scorer was given an argument it cannot use (an invalid regular expression, n <= 0)."""

    code = "scorer-argument"


class PluginsNotAllowed(TextBackendError):
    """`plugin("pkg.mod:fn")` runs user code, which needs `rlhfc run --allow-plugins`."""

    code = "plugins-not-allowed"


class PluginError(TextBackendError):
    """A plugin could not be imported, is not callable, or returned the wrong values."""

    code = "plugin"
