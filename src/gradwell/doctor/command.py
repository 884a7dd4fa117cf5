"""``gradwell doctor``: ``--fix SCRIPT_OR_CONFIG`` repairs a setup, ``--tour`` shows the classics.

``--fix`` takes either a Python file that defines ``build(config)``,
``train(model, optimizer, config)`` and ``CONFIG`` (the user's own file, imported
from its folder as a test runner imports a conftest.py), or a JSON file holding a
config of the built-in recipe (``{"recipe": "mlp", "data": "wine", ...}``; see
:mod:`gradwell.doctor.recipes`), or the ``config.json`` that ``gradwell train`` wrote
(it names a ``target``; its run is retrained on the CSV it names). It runs
:func:`gradwell.doctor.repair` and prints each round and the repaired configuration;
for a ``gradwell train`` config, ``--write`` saves the repaired settings back into the
file, ready for ``gradwell train --config config.json``. Nothing else writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from .tour import CASES, run_tour


def load_setup(path: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(build, train, config) from a Python script or a JSON recipe config."""
    from . import recipes

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"gradwell doctor --fix: no file at {p}")
    if p.suffix == ".json":
        try:
            config = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"gradwell doctor --fix: {p} is not valid JSON ({e})") from e
        if isinstance(config, dict) and "target" in config:  # written by gradwell train
            from ..train import table_run

            return table_run.build, table_run.train_run, table_run.settings(config, str(p))
        if not isinstance(config, dict) or config.get("recipe", "mlp") != "mlp":
            raise ValueError(
                f"gradwell doctor --fix: {p} must hold a JSON object naming a built-in recipe "
                f'("recipe": "mlp"); got {str(config)[:80]}'
            )
        config = {k: v for k, v in config.items() if k != "recipe"}
        recipes.settings(config)  # unknown keys are reported now, not after training
        return recipes.build, recipes.train, config
    if p.suffix != ".py":
        raise ValueError(
            f"gradwell doctor --fix: expected a .py script (defining build, train and CONFIG) "
            f"or a .json recipe config; got {p.name}"
        )
    name = f"gradwell_fix_{abs(hash(str(p.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, p)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    sys.path.insert(0, folder)  # the script may import its neighbours
    try:
        spec.loader.exec_module(module)
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    missing = [n for n in ("build", "train", "CONFIG") if not hasattr(module, n)]
    if missing:
        raise ValueError(
            f"gradwell doctor --fix: {p.name} must define build(config) -> (model, optimizer), "
            f"train(model, optimizer, config) -> History and CONFIG (a dict); it lacks "
            + ", ".join(missing)
        )
    if not isinstance(module.CONFIG, dict):
        raise ValueError(f"gradwell doctor --fix: CONFIG in {p.name} must be a dict")
    return module.build, module.train, module.CONFIG


def _until(marker: str) -> Any:
    """``print``, silent from the line ``marker`` on."""
    seen = False

    def say(line: str) -> None:
        nonlocal seen
        seen = seen or line == marker
        if not seen:
            print(line)

    return say


def _train_settings(args: argparse.Namespace, result: Any) -> None:
    """The repaired settings of a ``gradwell train`` run as JSON; saved with ``--write``."""
    from .._atomic import atomic_write
    from ..train.table_run import repaired_settings, settings_json

    fixed, left = repaired_settings(result.config, result.edits)
    text = settings_json(fixed)
    print(f"the repaired settings ({args.fix}):\n{text}", end="")
    for edit in left:
        print(f"  not representable in the settings (a change to one layer): {edit}")
    if args.write and fixed == result.first.config:
        print(f"--write: nothing to change in {args.fix}")
    elif args.write:
        atomic_write(args.fix, text)
        print(f"wrote {args.fix}; retrain with: gradwell train --config {args.fix}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fix",
        metavar="SCRIPT_OR_CONFIG",
        help="repair a setup: a .py file defining build, train and CONFIG, a .json config of "
        "the built-in recipe, or the config.json of gradwell train; prints the repaired "
        "configuration",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="with --fix on a gradwell train config.json: save the repaired settings into it",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="at most this many retrainings (default 3)"
    )
    parser.add_argument(
        "--metric",
        metavar="KEY",
        help="the History key that judges a run (default: the first of val_accuracy, "
        "val_r2, accuracy, r2, val_loss, loss)",
    )
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
    if args.fix:
        from .repair import repair

        try:
            build, train, config = load_setup(args.fix)
        except (OSError, ValueError) as e:
            print(e)
            return 2
        print(f"gradwell doctor --fix {args.fix}")
        table = "target" in config  # gradwell train's settings: shown as JSON, not as code
        say = _until("the repaired configuration, to paste:") if table else print
        result = repair(build, train, config, rounds=args.rounds, metric=args.metric, print_fn=say)
        if table:
            _train_settings(args, result)
        elif args.write:
            print("--write changes only the config.json of gradwell train; this file is kept")
        return 0 if result.repaired else 1
    if not args.tour:
        print(
            "gradwell doctor: use --fix SCRIPT_OR_CONFIG to repair a training setup, or --tour "
            "to see the doctor diagnose and repair the classic failures (the doctor itself "
            "runs inside gw.fit, on by default)"
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
    unrepaired = [r["case"] for r in results if not r["result"].repaired]
    if missed:
        print("not diagnosed as expected: " + ", ".join(missed))
    if unrepaired:
        print("not repaired: " + ", ".join(unrepaired))
    return 1 if missed or unrepaired else 0
