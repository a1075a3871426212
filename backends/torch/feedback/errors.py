"""The errors the feedback simulator raises (the executor turns them into diagnostics)."""


class FeedbackError(ValueError):
    """A spec or input the feedback stage cannot run with; the message says what to change."""


class PluginsNotAllowed(FeedbackError):
    """A `plugin(...)` scorer was reached while the user has not allowed plugins."""
