"""benchmarks/doctor_cases.py: enough recipes, every kind covered, each one buildable and
carrying its PyTorch measurement (the benchmark itself runs by hand: it takes a minute)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import gradwell as gw
from gradwell.doctor import recipes

PATH = Path(__file__).parents[2] / "benchmarks" / "doctor_cases.py"
NEW_KINDS = ("bad_initialization", "unscaled_targets", "stalled_training", "oscillating_loss",
             "output_loss_mismatch", "missing_nonlinearity")  # fmt: skip


def _cases():
    if "doctor_cases" not in sys.modules:
        spec = importlib.util.spec_from_file_location("doctor_cases", PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["doctor_cases"] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    return sys.modules["doctor_cases"]


def test_at_least_30_sick_and_10_healthy_recipes_covering_every_kind():
    cases = _cases()
    assert len(cases.SICK) >= 30 and len(cases.HEALTHY) >= 10
    assert all(r.kind is None for r in cases.HEALTHY)
    covered = {r.kind for r in cases.SICK}
    assert covered >= set(gw.doctor.KINDS) | set(NEW_KINDS)
    names = [r.name for r in cases.SICK + cases.HEALTHY]
    assert len(set(names)) == len(names)
    assert len({r.config["data"] for r in cases.SICK}) >= 8  # several data sets


def test_every_recipe_builds_and_carries_its_pytorch_symptom():
    cases = _cases()
    source = PATH.read_text()
    for r in cases.SICK + cases.HEALTHY:
        model, optimizer = recipes.build(r.config)
        assert model(gw.tensor(recipes.data(r.config)["X"][:4])).shape[0] == 4
        block = source[: source.index(f'R("{r.name}"')].rstrip().rsplit("\n    R(", 1)[-1]
        assert re.search(r"# PyTorch: loss \S+ \(step 0\)", block), r.name
