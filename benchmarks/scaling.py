"""Feature scaling speed: gradwell.preprocessing side by side with scikit-learn.

A 1,000,000 x 20 float32 matrix goes through a per-column chain (log -> linear on
10 heavy-tailed columns, z-score on 5, robust on 5) with gradwell's ColumnScaler
and with the equivalent scikit-learn ColumnTransformer, then through single
scalers over all columns. Times are the best of ``--repeat`` runs, in seconds;
ratio = gradwell / scikit-learn (below 1 means gradwell is faster).

    python benchmarks/scaling.py [--rows 1000000] [--repeat 3]
    python benchmarks/scaling.py --csv /path/to/california_housing_train.csv
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import gradwell.preprocessing as pp


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_data(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.empty((rows, 20), dtype=np.float32)
    X[:, :10] = rng.lognormal(6.0, 1.2, size=(rows, 10))  # heavy right tails, like counts
    X[:, 10:15] = rng.normal(35.0, 2.0, size=(rows, 5))  # bell-shaped, off-centre
    X[:, 15:] = rng.standard_t(3, size=(rows, 5)) * 50.0  # heavy tails on both sides
    return X


def time_pair(name, ours_factory, theirs_factory, X, repeat):
    """Fit and transform times for a fresh gradwell and scikit-learn object."""
    ours, theirs = ours_factory(), theirs_factory()
    fit_o = best_of(lambda: ours.fit(X), repeat)
    fit_t = best_of(lambda: theirs.fit(X), repeat)
    tr_o = best_of(lambda: ours.transform(X), repeat)
    tr_t = best_of(lambda: theirs.transform(X), repeat)
    out_o, out_t = ours.transform(X), theirs.transform(X)
    return name, fit_o, fit_t, tr_o, tr_t, out_o, out_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--csv", help="also audit this CSV (e.g. California housing)")
    args = parser.parse_args()

    from sklearn import __version__ as sk_version
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        MinMaxScaler,
        RobustScaler,
        StandardScaler,
    )

    X = make_data(args.rows)
    heavy, bell, tails = list(range(10)), list(range(10, 15)), list(range(15, 20))

    def ours_chain():
        return pp.ColumnScaler(
            {tuple(heavy): [pp.LogScaler(), pp.LinearScaler()], tuple(bell): pp.ZScoreScaler()},
            default=pp.RobustScaler(),
        )

    def theirs_chain():
        log_linear = make_pipeline(
            FunctionTransformer(np.log1p, inverse_func=np.expm1),
            MinMaxScaler(feature_range=(-1, 1)),
        )
        return ColumnTransformer(
            [
                ("heavy", log_linear, heavy),
                ("bell", StandardScaler(), bell),
                ("tails", RobustScaler(), tails),
            ]
        )

    cases = [
        ("per-column chain", ours_chain, theirs_chain),
        ("linear / MinMaxScaler", pp.LinearScaler, lambda: MinMaxScaler(feature_range=(-1, 1))),
        ("zscore / StandardScaler", pp.ZScoreScaler, StandardScaler),
        ("robust / RobustScaler", pp.RobustScaler, RobustScaler),
    ]
    print(
        f"{args.rows:,} x 20 float32, best of {args.repeat}; numpy {np.__version__}, "
        f"scikit-learn {sk_version}"
    )
    header = (
        f"{'case':<25}{'gw fit':>9}{'sk fit':>9}{'gw tr':>9}{'sk tr':>9}"
        f"{'gw total':>10}{'sk total':>10}{'ratio':>8}  out dtype gw/sk"
    )
    print(header)
    print("-" * len(header))
    for name, ours, theirs in cases:
        name, fo, ft, to, tt, out_o, out_t = time_pair(name, ours, theirs, X, args.repeat)
        # Column order differs in ColumnTransformer (grouped); compare sorted statistics.
        same = np.allclose(np.sort(out_o.mean(axis=0)), np.sort(out_t.mean(axis=0)), atol=1e-3)
        print(
            f"{name:<25}{fo:>9.3f}{ft:>9.3f}{to:>9.3f}{tt:>9.3f}{fo + to:>10.3f}{ft + tt:>10.3f}"
            f"{(fo + to) / (ft + tt):>8.2f}  {out_o.dtype}/{out_t.dtype}"
            + ("" if same else "  (outputs differ!)")
        )

    # gradwell-only: the chain the audit recommends for heavy tails, with fitted clipping
    # (scikit-learn has no quantile clip transformer to compare against).
    clip_chain = pp.ColumnScaler(
        {tuple(heavy): "clip(q=0,0.99) -> log -> linear", tuple(bell): "zscore"},
        default="robust",
    )
    fo = best_of(lambda: clip_chain.fit(X), args.repeat)
    to = best_of(lambda: clip_chain.transform(X), args.repeat)
    print(f"{'chain with clip (gw only)':<25}{fo:>9.3f}{'':>9}{to:>9.3f}{'':>9}{fo + to:>10.3f}")
    fa = best_of(lambda: pp.audit(X[:200_000]), 1)
    print(f"audit of 200,000 x 20: {fa:.3f} s")

    if args.csv:
        from gradwell.data.datasets import load_csv

        data = load_csv(args.csv, target=None)
        print()
        print(pp.audit(data.X, data.feature_names))


if __name__ == "__main__":
    main()
