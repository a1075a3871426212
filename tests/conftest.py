import os
import pathlib

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def specs_dir() -> pathlib.Path:
    return SPECS
