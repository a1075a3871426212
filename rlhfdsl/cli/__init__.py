"""The command line, `rlhfc`: thin click commands over the verbs of :mod:`rlhfdsl.api`.

Data goes to stdout, diagnostics and progress to stderr. Exit codes: 0 ok, 1 spec errors,
2 usage, 3 `fmt --check` would change a file, 70 internal error, 130 interrupted.
"""

from rlhfdsl.cli.main import main  # noqa: F401
