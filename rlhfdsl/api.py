"""The verbs of the front end, as functions: what the CLI calls, and what tests and backends use.

    checked = rlhfdsl.check_file("specs/quickstart.rlhf", sets=("pi.objective.kl=0.1",))
    graph = rlhfdsl.lower(checked)
"""

from __future__ import annotations

from rlhfdsl.check import Checked, check
from rlhfdsl.resolve import load


def check_file(path: str, sets: tuple[str, ...] = (), *, text: str | None = None,
               allow_outside_imports: bool = False) -> Checked:
    """Load, resolve and check a spec file. Never raises for a user error: see
    ``.all_diagnostics`` and ``.ok``."""
    loaded = load(path, tuple(sets), text=text, allow_outside_imports=allow_outside_imports)
    return check(loaded)
