"""rlhfdsl: a declarative language and compiler for RLHF experiments.

The front end (this package) never imports torch: `import rlhfdsl` and `rlhfc check` stay
light. The verbs are loaded on first use:

    import rlhfdsl
    compiled = rlhfdsl.compile_file("specs/quickstart.rlhf")
    for stage in compiled.lowered.stages(): ...
"""

__version__ = "0.1.0"

__all__ = ["check_file", "compile_file", "lower", "format_source", "parse"]


def __getattr__(name: str):
    if name == "check_file":
        from rlhfdsl.api import check_file

        return check_file
    if name == "compile_file":
        from rlhfdsl.api import compile_file

        return compile_file
    if name == "lower":
        from rlhfdsl.lower import lower

        return lower
    if name == "format_source":
        from rlhfdsl.fmt import format_source

        return format_source
    if name == "parse":
        from rlhfdsl.parser import parse

        return parse
    raise AttributeError(f"module 'rlhfdsl' has no attribute {name!r}")
