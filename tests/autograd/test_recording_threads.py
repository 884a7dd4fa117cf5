"""Grad mode and the recording seam's observers belong to a thread, as in PyTorch."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

import gradwell as gw


def _in_parallel(*fns: Callable[[threading.Barrier], object]) -> list[object]:
    """Run each function on its own thread, all started together; their results in order
    (an exception in one is raised here)."""
    together = threading.Barrier(len(fns), timeout=30)
    results: list[object] = [None] * len(fns)

    def run(i: int) -> None:
        try:
            results[i] = fns[i](together)
        except BaseException as e:  # handed to the test's thread
            results[i] = e
            together.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def test_no_grad_in_one_thread_leaves_another_recording_with_its_own_tape():
    x = gw.tensor([1.0, 2.0], requires_grad=True)

    def under_no_grad(together: threading.Barrier) -> tuple[bool, bool]:
        with gw.no_grad():
            together.wait()  # both threads are inside their blocks now
            recorded = (x * 2).requires_grad
            together.wait()
            return gw.is_grad_enabled(), recorded

    def recording(together: threading.Barrier) -> tuple[bool, list[str], list[float]]:
        with gw.autograd.record() as tape:
            together.wait()
            loss = (x * 3).sum()
            together.wait()
        loss.backward()
        assert x.grad is not None
        return gw.is_grad_enabled(), [s.op.name for s in tape], x.grad.numpy().tolist()

    (enabled_a, recorded_a), (enabled_b, names, grad) = _in_parallel(under_no_grad, recording)
    assert (enabled_a, recorded_a) == (False, False)
    assert enabled_b and names == ["mul", "sum"] and grad == [3.0, 3.0]
    assert gw.is_grad_enabled() and not gw.autograd.recording.observers


def test_training_beside_a_thread_that_predicts_under_no_grad():
    """The playground's case: one thread trains, another evaluates the same kind of
    model under no_grad at the same time; the trained numbers are those of a lone run."""

    def make() -> tuple[gw.nn.Module, np.ndarray, np.ndarray]:
        gw.manual_seed(0)
        rng = np.random.default_rng(0)
        model = gw.nn.Sequential(gw.nn.Linear(3, 8), gw.nn.ReLU(), gw.nn.Linear(8, 1))
        return model, rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 1))

    def train(model: gw.nn.Module, x: np.ndarray, y: np.ndarray, steps: int = 30) -> np.ndarray:
        opt = gw.optim.SGD(model.parameters(), lr=0.05)
        target = gw.tensor(y.astype(np.float32))
        for _ in range(steps):
            opt.zero_grad()
            loss = ((model(gw.tensor(x)) - target) ** 2).mean()
            loss.backward()
            opt.step()
        return np.concatenate([p.data.ravel() for p in model.parameters()])

    alone = train(*make())
    model, x, y = make()
    other = gw.nn.Linear(3, 1)
    stop = threading.Event()

    def trainer(together: threading.Barrier) -> np.ndarray:
        together.wait()
        try:
            return train(model, x, y)
        finally:
            stop.set()

    def predictor(together: threading.Barrier) -> int:
        calls = 0
        with gw.no_grad():
            together.wait()
            while not stop.is_set() or calls == 0:
                assert not other(gw.tensor(x)).requires_grad
                calls += 1
        return calls

    trained, calls = _in_parallel(trainer, predictor)
    assert calls > 0
    np.testing.assert_array_equal(trained, alone)


def test_a_new_thread_records_and_a_decorated_function_restores_each_threads_mode():
    x = gw.tensor([1.0], requires_grad=True)

    @gw.no_grad()
    def doubled(together: threading.Barrier) -> bool:
        together.wait()  # both threads inside the decorated call at once
        return (x * 2).requires_grad

    def call_it(together: threading.Barrier) -> tuple[bool, bool]:
        return doubled(together), gw.is_grad_enabled()

    with gw.no_grad():  # the main thread's mode is not the new threads'
        seen = _in_parallel(lambda _: (x * 2).requires_grad)
        both = _in_parallel(call_it, call_it)
    assert seen == [True]
    assert both == [(False, True), (False, True)]


def test_set_grad_enabled_switches_at_once_and_restores_after_a_block():
    x = gw.tensor([1.0], requires_grad=True)
    gw.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
        with gw.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not gw.is_grad_enabled()
    finally:
        gw.set_grad_enabled(True)
    assert (x * 2).requires_grad and not gw.autograd.recording.no_grad_threads
