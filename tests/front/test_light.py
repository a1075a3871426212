"""`import rlhfdsl` and `rlhfc check/plan/graph/fmt` never import torch or transformers."""

import subprocess
import sys

CODE = """
import sys
from click.testing import CliRunner
import rlhfdsl
from rlhfdsl.cli.main import main
runner = CliRunner()
for args in (["check", "specs/quickstart.rlhf"], ["plan", "specs/quickstart.rlhf"],
             ["graph", "specs/quickstart.rlhf", "--format", "mermaid"],
             ["fmt", "--check", "specs/quickstart.rlhf"], ["schema"], ["explain", "E0201"],
             ["check", "specs/text/sycophancy.rlhf"]):
    result = runner.invoke(main, args)
    assert result.exit_code in (0, 3), (args, result.output)
heavy = [m for m in ("torch", "transformers", "peft", "safetensors") if m in sys.modules]
print(",".join(heavy))
"""


def test_front_end_commands_do_not_import_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
