"""Does a sparse embedding gradient pay? gradwell's dense one against PyTorch's dense and sparse.

One training step of an ``Embedding(V, 64)`` alone: look up 32 x 50 ids, the loss is the
sum of squares of the rows, backward, one optimizer step (SGD, and Adam: PyTorch's
``SparseAdam`` for its sparse gradient). The table size V grows while the ids looked up
stay 1600, so the dense path's extra cost (a zero-filled (V, 64) gradient and an update
of every row) shows against the work proportional to the ids. One thread; each cell the
fastest of ``--repeat`` turn medians, spread = slowest / fastest.

    python benchmarks/embedding.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import os
import sys

from rnn import median_step

DIM, IDS = 64, (32, 50)


def _ids(vocab: int):
    import numpy as np

    return np.random.default_rng(0).integers(0, vocab, IDS)


def _step(emb, opt, ids):
    """One training step; gradwell and PyTorch spell it alike."""

    def step() -> None:
        opt.zero_grad()
        rows = emb(ids)
        (rows * rows).sum().backward()
        opt.step()

    return step


def _gradwell(vocab: int, optimizer: str):
    import gradwell as gw

    emb = gw.nn.Embedding(vocab, DIM, rng=0)
    opt = (gw.optim.SGD if optimizer == "sgd" else gw.optim.Adam)(emb.parameters(), lr=1e-3)
    return _step(emb, opt, _ids(vocab))


def _torch(vocab: int, optimizer: str, sparse: bool):
    import torch

    torch.manual_seed(0)
    emb = torch.nn.Embedding(vocab, DIM, sparse=sparse)
    if optimizer == "sgd":
        opt = torch.optim.SGD(emb.parameters(), lr=1e-3)
    else:
        opt = (torch.optim.SparseAdam if sparse else torch.optim.Adam)(emb.parameters(), lr=1e-3)
    return _step(emb, opt, torch.tensor(_ids(vocab)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--vocab", default="1000,10000,100000,1000000")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
        have_torch = True
    except ImportError:
        print("(torch is not installed)", file=sys.stderr)
        have_torch = False
    names = ["gradwell dense"] + (["torch dense", "torch sparse"] if have_torch else [])
    head = ["optimizer", "V"] + [f"{n} ms (spread)" for n in names]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print("  ".join(head))
    for optimizer in ("sgd", "adam"):
        for vocab in (int(v) for v in args.vocab.split(",")):
            steps = {"gradwell dense": _gradwell(vocab, optimizer)}
            if have_torch:
                steps["torch dense"] = _torch(vocab, optimizer, sparse=False)
                steps["torch sparse"] = _torch(vocab, optimizer, sparse=True)
            turns: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(args.repeat):
                for name, step in steps.items():
                    turns[name].append(median_step(step, args.steps))
            cells = [optimizer, str(vocab)]
            cells += [f"{min(t) * 1e3:.2f} ({max(t) / min(t):.2f})" for t in turns.values()]
            print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
