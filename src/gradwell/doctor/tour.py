"""``gradwell doctor --tour``: break training in the classic ways, diagnose, repair.

Each case is a config of the built-in recipe (:mod:`gradwell.doctor.recipes`) with
one thing wrong. :func:`gradwell.doctor.repair` trains it, prints what the doctor
found, applies the top remedy, retrains from scratch and shows the repaired run:
the same loop ``gradwell doctor --fix`` runs on a user's own setup. Everything is
seeded, so the tour prints the same numbers every time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import recipes
from .repair import RepairResult, repair


@dataclass(frozen=True)
class Case:
    title: str
    expect: str  # the kind the case is built to show
    config: dict[str, Any]
    story: str = ""


CASES = [
    Case(
        "A deep sigmoid network",
        "vanishing_gradients",
        {"data": "circle", "widths": [16] * 8, "activation": "Sigmoid", "lr": 0.05, "epochs": 8},
        "Each sigmoid passes back at most a quarter of the gradient; eight of them starve "
        "the first layers.",
    ),
    Case(
        "A learning rate far too high",
        "nan_trap",
        {"data": "plane", "widths": [16, 16], "lr": 3.0, "epochs": 6},
        "Regression with SGD at lr 3: every step overshoots more, the loss explodes, then NaN.",
    ),
    Case(
        "A ReLU network killed by a high learning rate",
        "dead_relu",
        {"data": "circle", "widths": [32, 32], "lr": 3.0, "epochs": 6},
        "One huge step pushes the biases so negative that units output 0 for every input.",
    ),
    Case(
        "Unscaled features",
        "unscaled_features",
        {"data": "wine", "widths": [16], "lr": 0.05, "epochs": 20},
        "Wine's columns range from 0.1 to 1680: one learning rate cannot suit them all.",
    ),
    Case(
        "Dropout rate 1.0",
        "dropout_misconfigured",
        {"data": "circle", "widths": [32, 32], "lr": 0.1, "epochs": 6, "dropout": 1.0},
        "rate is the fraction dropped (Keras): 1.0 drops everything, and nothing learns.",
    ),
]


def describe(config: dict[str, Any]) -> str:
    """'2 x [Linear -> ReLU] (widths 16-16), SGD lr 3, data plane'."""
    c = recipes.settings(config)
    block = f"Linear -> {'BatchNorm1d -> ' if c['batchnorm'] else ''}{c['activation']}"
    if c["dropout"] is not None:
        block += f" -> Dropout({c['dropout']:g})"
    widths = "-".join(str(w) for w in c["widths"])
    raw = ", inputs as they come" if not c["scale_features"] and c["data"] in recipes.REAL else ""
    return (
        f"{len(c['widths'])} x [{block}] (widths {widths}), {c['optimizer']} lr {c['lr']:g}"
        f"{raw}, data {c['data']}"
    )


def run_tour(
    cases: list[Case] | None = None, html_dir: str | None = None, print_fn: Any = print
) -> list[dict[str, Any]]:
    """Repair each case; returns per case what was expected, found, and the RepairResult."""
    cases = CASES if cases is None else cases
    say = print_fn
    say("gradwell doctor tour: classic training failures, diagnosed and repaired.")
    say("Each case trains a small network on small built-in data; the doctor watches,")
    say("its top remedy is applied and the run retrained from scratch (gw.doctor.repair).\n")
    results = []
    for i, case in enumerate(cases, 1):
        say(f"{i}/{len(cases)}  {case.title}")
        if case.story:
            say(f"     {case.story}")
        say(f"     model: {describe(case.config)}")
        result: RepairResult = repair(
            recipes.build, recipes.train, case.config, print_fn=lambda line: say("     " + line)
        )
        if html_dir is not None:
            os.makedirs(html_dir, exist_ok=True)
            base = os.path.join(html_dir, f"{i}-{case.expect}")
            result.first.history.doctor.save_html(base + "-before.html")
            result.final.history.doctor.save_html(base + "-after.html")
            say(f"     reports: {base}-before.html, {base}-after.html")
        say("")
        found = [f.kind for f in result.first.findings]
        results.append({"case": case.title, "expect": case.expect, "found": found,
                        "result": result})  # fmt: skip
    return results
