"""The feature-scaling example runs and shows its point with numbers."""

import re
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "feature_scaling.py"


def test_feature_scaling_example(capsys):
    gw = pytest.importorskip("gradwell")
    if not all(hasattr(gw, name) for name in ("fit", "evaluate", "predict", "optim", "nn")):
        pytest.skip("the training layer is not available")
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    raw, scaled = map(float, re.search(r"test accuracy: raw (\S+) vs scaled (\S+)", out).groups())
    assert scaled >= 0.9 and scaled > raw + 0.3
    assert "reloaded transform identical: True" in out
