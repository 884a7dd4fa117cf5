"""``gradwell doctor --tour``: break training in the classic ways, diagnose, repair.

Each case trains a small network on small built-in data with one thing wrong,
prints what the doctor found, applies the top remedy of the most severe finding
(the doctor's own machine-readable action), trains again and shows the repaired
run. Everything is seeded, so the tour prints the same numbers every time.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: How the tour can apply an action: the actions it knows.
APPLICABLE = ("scale_lr", "replace_activation", "set_dropout", "scale_features",
              "add_batchnorm", "clip_grad_norm")  # fmt: skip


@dataclass(frozen=True)
class Setup:
    """One training configuration (everything the remedies may change)."""

    data: str
    widths: tuple[int, ...]
    act: str = "ReLU"
    optimizer: str = "sgd"
    lr: float = 0.1
    epochs: int = 6
    dropout: float | None = None
    batchnorm: bool = False
    scaled: bool = True
    clip: float | None = None
    init: str | None = None

    def describe(self) -> str:
        blocks = f"Linear -> {'BatchNorm1d -> ' if self.batchnorm else ''}{self.act}"
        if self.dropout is not None:
            blocks += f" -> Dropout({self.dropout:g})"
        widths = "-".join(str(w) for w in self.widths)
        extra = ", inputs as they come" if not self.scaled else ""
        clip = f", clip_grad_norm={self.clip:g}" if self.clip else ""
        return (
            f"{len(self.widths)} x [{blocks}] (widths {widths}), "
            f"{'SGD' if self.optimizer == 'sgd' else 'Adam'} lr {self.lr:g}{clip}{extra}"
        )


@dataclass(frozen=True)
class Case:
    title: str
    expect: str  # the kind the case is built to show
    setup: Setup
    story: str = ""
    notes: list[str] = field(default_factory=list)


CASES = [
    Case(
        "A deep sigmoid network",
        "vanishing_gradients",
        Setup("circle", (16,) * 8, act="Sigmoid", lr=0.1, epochs=8, init="xavier"),
        "Each sigmoid passes back at most a quarter of the gradient; eight of them starve "
        "the first layers.",
    ),
    Case(
        "A learning rate far too high",
        "nan_trap",
        Setup("plane", (16, 16), lr=3.0, epochs=6),
        "Regression with SGD at lr 3: every step overshoots more, the loss explodes, then NaN.",
    ),
    Case(
        "A ReLU network killed by a high learning rate",
        "dead_relu",
        Setup("circle", (32, 32), lr=3.0, epochs=6),
        "One huge step pushes the biases so negative that units output 0 for every input.",
    ),
    Case(
        "Unscaled features",
        "unscaled_features",
        Setup("wine", (16,), lr=0.05, epochs=20, scaled=False),
        "Wine's columns range from 0.1 to 1680: one learning rate cannot suit them all.",
    ),
    Case(
        "Dropout rate 1.0",
        "dropout_misconfigured",
        Setup("circle", (32, 32), lr=0.1, epochs=6, dropout=1.0),
        "rate is the fraction dropped (Keras): 1.0 drops everything, and nothing learns.",
    ),
]


# --------------------------------------------------------------------------- running
def load(setup: Setup, seed: int = 0) -> dict[str, Any]:
    """Train/validation arrays for a setup's data set (seeded split)."""
    import gradwell as gw

    d = gw.data.datasets
    if setup.data in ("circle", "plane"):
        ds = getattr(d, setup.data)(n=800, noise=0.1, seed=seed)
        X = ds.X / 6.0  # the Playground sets span about [-6, 6]
    else:
        ds = getattr(d, f"load_{setup.data}")()
        X = ds.X
    task = ds.task
    y = ds.y.astype(np.int64) if task == "classification" else ds.y.astype(np.float32)[:, None]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    tr, va = order[:cut], order[cut:]
    out = {
        "X": X[tr],
        "y": y[tr],
        "Xv": X[va],
        "yv": y[va],
        "task": task,
        "names": list(ds.feature_names),
        "classes": int(y.max()) + 1 if task == "classification" else 1,
    }
    if setup.scaled and setup.data not in ("circle", "plane"):
        from gradwell.preprocessing import AutoScaler

        scaler = AutoScaler(feature_names=out["names"]).fit(out["X"])
        out["X"], out["Xv"] = scaler.transform(out["X"]), scaler.transform(out["Xv"])
    out["X"] = np.asarray(out["X"], dtype=np.float32)
    out["Xv"] = np.asarray(out["Xv"], dtype=np.float32)
    return out


def build(setup: Setup, n_in: int, n_out: int, seed: int = 0) -> Any:
    import gradwell as gw

    nn = gw.nn
    act = re.sub(r"\(.*\)$", "", setup.act)
    init = setup.init or ("xavier" if act in ("Sigmoid", "Tanh") else "kaiming")
    layers: list[Any] = []
    d = n_in
    for i, w in enumerate(setup.widths):
        layers.append(nn.Linear(d, w, init=init, rng=seed * 1000 + i))
        if setup.batchnorm:
            layers.append(nn.BatchNorm1d(w))
        layers.append(getattr(nn, act)())
        if setup.dropout is not None:
            layers.append(nn.Dropout(setup.dropout, rng=seed * 1000 + 500 + i))
        d = w
    layers.append(nn.Linear(d, n_out, init=init, rng=seed * 1000 + 999))
    return nn.Sequential(*layers)


@dataclass
class Outcome:
    setup: Setup
    history: Any
    doctor: Any
    first_loss: float
    last_loss: float
    score: float  # validation accuracy (classification) or validation MSE (regression)
    task: str

    def summary(self) -> str:
        def f(x: float) -> str:
            return f"{x:.3g}" if math.isfinite(x) else str(x)

        score = (
            f"validation accuracy {self.score:.0%}"
            if self.task == "classification"
            else f"validation MSE {f(self.score)}"
        )
        return f"loss {f(self.first_loss)} -> {f(self.last_loss)}, {score}"


def train(setup: Setup, seed: int = 0) -> Outcome:
    """Train one setup with a quiet doctor; return what happened."""
    import warnings

    import gradwell as gw
    from gradwell.doctor import Doctor

    data = load(setup, seed)
    model = build(setup, data["X"].shape[1], data["classes"], seed)
    cls = gw.optim.SGD if setup.optimizer == "sgd" else gw.optim.Adam
    opt = cls(model.parameters(), lr=setup.lr)
    classification = data["task"] == "classification"
    doctor = Doctor(verbose=False, feature_names=data["names"])
    with warnings.catch_warnings():  # overflow warnings are the point of some cases
        warnings.simplefilter("ignore", RuntimeWarning)
        history = gw.fit(
            model,
            (data["X"], data["y"]),
            loss="cross_entropy" if classification else "mse",
            optimizer=opt,
            epochs=setup.epochs,
            batch_size=32,
            seed=seed,
            verbose=0,
            validation=(data["Xv"], data["yv"]),
            clip_grad_norm=setup.clip,
            doctor=doctor,
        )
        pred = gw.predict(model, data["Xv"])
    if classification:
        score = float(np.mean(pred.argmax(axis=1) == data["yv"]))
    else:
        with np.errstate(all="ignore"):
            score = float(np.mean((pred - data["yv"]) ** 2))
    losses = history.steps["loss"]
    return Outcome(setup, history, doctor, losses[0], losses[-1], score, data["task"])


def apply(setup: Setup, action: dict[str, Any]) -> Setup | None:
    """The setup with ``action`` applied, or None when the tour cannot apply it."""
    kind = action.get("action")
    if kind == "scale_lr":
        lr = action.get("lr", [setup.lr * action["factor"]])[0]
        return replace(setup, lr=float(lr))
    if kind == "replace_activation":
        return replace(
            setup,
            act=re.sub(r"\(.*\)$", "", action["to"]),
            init=None if action["to"].startswith("ReLU") else setup.init,
        )
    if kind == "set_dropout":
        rate = float(action["rate"])
        return replace(setup, dropout=None if rate == 0 else rate)
    if kind == "scale_features":
        return replace(setup, scaled=True)
    if kind == "add_batchnorm":
        return replace(setup, batchnorm=True)
    if kind == "clip_grad_norm":
        return replace(setup, clip=float(action["max_norm"]))
    return None


def top_remedy(findings: list[Any]) -> tuple[Any, str, dict[str, Any]] | None:
    """The most severe finding's first remedy the tour can apply."""
    for f in findings:
        if f.rank < 1:
            continue
        for text, action in zip(f.remedies, f.actions):
            if action.get("action") in APPLICABLE:
                return f, text, action
    return None


# --------------------------------------------------------------------------- the tour
def run_tour(
    cases: list[Case] | None = None, html_dir: str | None = None, print_fn: Any = print
) -> list[dict[str, Any]]:
    """Run the cases; returns per case the findings before and after the repair."""
    cases = CASES if cases is None else cases
    results = []
    say = print_fn
    say("gradwell doctor tour: classic training failures, diagnosed and repaired.")
    say("Each case trains a small network on small built-in data; the doctor watches.\n")
    for i, case in enumerate(cases, 1):
        say(f"{i}/{len(cases)}  {case.title}")
        if case.story:
            say(f"     {case.story}")
        say(f"     model: {case.setup.describe()}, data: {case.setup.data}")
        before = train(case.setup)
        say(f"     before: {before.summary()}")
        found = [f for f in before.doctor.findings if f.rank >= 1]
        for f in found:
            say("     doctor: " + f.headline())
        rounds = []
        current, outcome = case.setup, before
        for _ in range(3):  # a remedy may reveal the next problem; at most three rounds
            pick = top_remedy(outcome.doctor.findings)
            if pick is None:
                break
            _, text, action = pick
            nxt = apply(current, action)
            if nxt is None or nxt == current:
                break
            say(f"     remedy applied: {text}")
            current, outcome = nxt, train(nxt)
            left = [f for f in outcome.doctor.findings if f.rank >= 1]
            verdict = (
                "doctor: no problems found"
                if not left
                else "doctor still finds: " + ", ".join(f"{f.kind} at {f.where}" for f in left)
            )
            say(f"     after:  {outcome.summary()}; {verdict}")
            rounds.append({"remedy": text, "findings": [f.to_dict() for f in left]})
            if not left:
                break
        if html_dir is not None:
            os.makedirs(html_dir, exist_ok=True)
            base = os.path.join(html_dir, f"{i}-{case.expect}")
            before.doctor.save_html(base + "-before.html")
            outcome.doctor.save_html(base + "-after.html")
            say(f"     reports: {base}-before.html, {base}-after.html")
        say("")
        results.append(
            {
                "case": case.title,
                "expect": case.expect,
                "found": [f.kind for f in found],
                "before": before,
                "after": outcome,
                "rounds": rounds,
            }
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tour",
        action="store_true",
        help="break training in the classic ways, diagnose each, repair it",
    )
    parser.add_argument(
        "--html", metavar="DIR", help="also save each case's before/after HTML report in DIR"
    )
    parser.add_argument(
        "--cases",
        metavar="KINDS",
        help="comma-separated subset, by the kind each case shows: "
        + ", ".join(c.expect for c in CASES),
    )


def command(args: argparse.Namespace) -> int:
    if not args.tour:
        print(
            "gradwell doctor: use --tour to see the doctor diagnose and repair the classic "
            "failures (the doctor itself runs inside gw.fit, on by default)"
        )
        return 2
    cases = CASES
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [w for w in wanted if w not in {c.expect for c in CASES}]
        if unknown:
            print(
                f"gradwell doctor: unknown case {unknown[0]!r}; expected one of "
                + ", ".join(c.expect for c in CASES)
            )
            return 2
        cases = [c for c in CASES if c.expect in wanted]
    results = run_tour(cases, html_dir=args.html)
    missed = [r["case"] for r in results if r["expect"] not in r["found"]]
    if missed:
        print("not diagnosed as expected: " + ", ".join(missed))
        return 1
    return 0
