"""The verbs of the front end, as functions: what the CLI calls, and what tests and backends use.

    compiled = rlhfdsl.compile_file("specs/quickstart.rlhf", sets=("pi.objective.kl=0.1",))
    compiled.ok, compiled.diagnostics, compiled.spec, compiled.lowered.stages()
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhfdsl.check import Checked, check
from rlhfdsl.errors import Diagnostic
from rlhfdsl.resolve import load


def check_file(path: str, sets: tuple[str, ...] = (), *, text: str | None = None,
               allow_outside_imports: bool = False) -> Checked:
    """Load, resolve and check a spec file. Never raises for a user error: see
    ``.all_diagnostics`` and ``.ok``."""
    loaded = load(path, tuple(sets), text=text, allow_outside_imports=allow_outside_imports)
    return check(loaded)


@dataclass
class Compiled:
    checked: Checked
    lowered: object | None  # rlhfdsl.lower.Lowered

    @property
    def diagnostics(self) -> list[Diagnostic]:
        found = list(self.checked.all_diagnostics)
        if self.lowered is not None:
            found += self.lowered.diagnostics
        return sorted(dict.fromkeys(found), key=Diagnostic.sort_key)

    @property
    def ok(self) -> bool:
        """Checked clean (a library of declarations is ok, but has no stage graph)."""
        return self.checked.ok and not any(d.is_error for d in self.diagnostics)

    @property
    def library(self) -> bool:
        """A file of declarations without a task: importable and checkable, not runnable."""
        return self.checked.ok and self.checked.spec.task is None

    @property
    def spec(self):
        return self.checked.spec

    @property
    def sources(self) -> dict[str, str]:
        return self.checked.loaded.sources


def compile_file(path: str, sets: tuple[str, ...] = (), *, text: str | None = None,
                 allow_outside_imports: bool = False) -> Compiled:
    """Check and lower a spec: the whole front end. Never raises for a user error."""
    from rlhfdsl.lower import lower

    checked = check_file(path, sets, text=text, allow_outside_imports=allow_outside_imports)
    if not checked.ok or checked.spec.task is None:
        return Compiled(checked, None)
    return Compiled(checked, lower(checked))
