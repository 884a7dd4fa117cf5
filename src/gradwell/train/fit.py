"""The training loop: ``fit``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..data.loader import DataLoader, Seed
from ..nn.layers import reseed_dropout
from . import habits as _habits
from . import inputs as _inputs
from . import metrics as _metrics
from . import targets as _targets
from .callbacks import Callback, CallbackList, TrainingState
from .compiled import CompiledStep
from .history import History
from .predict import _evaluate, fresh_copy, resolve_loss
from .progress import ProgressBar


def _takes_logits(loss_fn: Any) -> bool:
    name = type(loss_fn).__name__ if not hasattr(loss_fn, "__name__") else loss_fn.__name__
    return "WithLogits" in name or "with_logits" in name


def _loader(
    data: Any, batch_size: int, shuffle: bool, seed: Seed, what: str, weights: Any = None
) -> Any:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        arrays = tuple(data) if weights is None else (*data, weights)  # weights: a 3rd field
        return DataLoader(arrays, batch_size=batch_size, shuffle=shuffle, seed=seed)
    if isinstance(data, (np.ndarray, Tensor, tuple, list)):
        got = (
            f"a {type(data).__name__} of {len(data)} items"
            if isinstance(data, (tuple, list))
            else f"one array of shape {data.shape}"
        )
        raise TypeError(f"fit: {what} must be a pair of arrays (X, y) or a DataLoader; got {got}")
    if hasattr(data, "__iter__") and hasattr(data, "__len__"):
        return data  # any re-iterable of (inputs, targets) batches with a length
    raise TypeError(
        f"fit: {what} must be a pair of arrays (X, y) or a DataLoader; got {type(data).__name__}"
    )


def _doctor_callback(doctor: Any) -> Callback | None:
    """The seam for the training doctor: ``fit(doctor=...)`` adds it as a callback.

    ``None``/``False``: no doctor; a Callback: used as given; ``True`` or a dict of
    options: ``gradwell.doctor.Doctor(**options)``.
    """
    if doctor is None or doctor is False:
        return None
    if isinstance(doctor, Callback):
        return doctor
    try:
        from ..doctor import Doctor  # type: ignore[attr-defined]
    except ImportError as e:
        raise NotImplementedError(
            "fit(doctor=...): the training doctor (gradwell.doctor) is not available"
        ) from e
    if doctor is True:
        return Doctor()  # type: ignore[no-any-return]
    if isinstance(doctor, dict):
        return Doctor(**doctor)  # type: ignore[no-any-return]
    raise TypeError(f"fit: doctor must be True, a dict of options or a Callback; got {doctor!r}")


def fit(
    model: Any,
    train: Any,
    *,
    loss: Any,
    optimizer: Any,
    epochs: int,
    batch_size: int = 32,
    validation: Any = None,
    metrics: Sequence[Any] = (),
    callbacks: Sequence[Callback] = (),
    seed: Seed = None,
    verbose: int = 1,
    shuffle: bool = True,
    clip_grad_norm: float | None = None,
    initial_epoch: int = 0,
    doctor: Any = True,
    compile: bool = False,
    target_scaler: Any = None,
    distributed: Any = False,
    validation_split: float | None = None,
    class_weight: dict[int, float] | None = None,
    sample_weight: Any = None,
) -> History:
    """Train ``model`` on ``train`` and return the :class:`History`.

    ``train`` and ``validation`` are ``(X, y)`` arrays or DataLoaders. With arrays
    the training data is cut into batches of ``batch_size``, reshuffled every epoch
    from ``seed`` (epoch ``e`` sees the same order in any run with the same seed,
    resumed or not). ``loss`` is a callable ``loss(outputs, targets)`` returning a
    scalar Tensor (e.g. ``gw.nn.CrossEntropyLoss()``) or a name ("cross_entropy",
    "mse", "l1", "huber", "bce_with_logits", "nll"). ``metrics``: names
    ("accuracy", "top_5_accuracy", "mse", "rmse", "mae", "r2") or callables
    ``fn(y_true, y_pred)``. Each step runs: forward, loss, backward, optional
    gradient clipping to the total norm ``clip_grad_norm``, optimizer step, callbacks.
    Epochs are numbered from 0 and ``epochs`` is where training ends (as in Keras):
    a run resumed with ``initial_epoch=k`` trains epochs k .. epochs-1; a given
    DataLoader is set to each epoch's shuffle order (``set_epoch``). ``verbose``: 0 silent, 1 a
    progress bar per epoch (one line per epoch when stdout is not a terminal),
    2 one line per epoch. ``doctor``: the training doctor, on by default (``False``
    turns it off; pass a ``gw.doctor.Doctor`` to configure it); its findings are in
    ``history.findings``. ``compile=True`` runs forward, loss and backward through
    :func:`gw.compile_step <gradwell.train.compiled.compile_step>`: the same numbers,
    replayed without Python per op once two steps of a batch shape agree (the
    doctor's sampled steps, and anything else that hooks the model, run eagerly).
    ``target_scaler``: a ``gw.preprocessing.TargetScaler`` for regression targets far
    from unit scale, fitted on the training targets unless already fitted. The loss
    (``loss``, ``val_loss``) is computed on the scaled targets; metrics are computed
    in the original units; the scaler is attached as ``model.target_scaler``, so
    ``gw.predict`` returns original units, ``gw.save`` keeps it with the model, and a
    later ``fit`` of that model (resuming) uses it again.
    ``distributed=True`` (or a dict of :class:`gw.distributed.DataParallel
    <gradwell.distributed.DataParallel>` options) under ``mpiexec -n N``: each rank
    trains on its share of every epoch (``batch_size`` per rank), gradients are
    averaged over the ranks, logs are reduced, and rank 0 alone prints and saves
    (see :mod:`gradwell.distributed`); in a single process it changes nothing.
    Keras habits: ``optimizer="adam"`` (or "adamw", "sgd", "rmsprop", "adagrad")
    builds that optimizer on the model's parameters; ``validation_split=0.2`` holds
    out the last 20% of each class's rows (of all rows for other targets) for
    validation; ``sample_weight`` (one number per training row) and ``class_weight={1: 5.0}``
    weight each row's loss, as Keras does: the step's loss is ``sum_i w_i * loss_i / batch
    size`` with ``w_i = sample_weight[i] * class_weight[y_i]`` (1 for a class not named), for
    any loss given by name or a gw.nn loss. ``val_loss`` and the metrics are not weighted.

    >>> import numpy as np, gradwell as gw
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 2)); y = (X[:, 0] > 0).astype(np.int64)
    >>> model = gw.nn.Sequential(gw.nn.Linear(2, 8), gw.nn.ReLU(), gw.nn.Linear(8, 2))
    >>> history = gw.fit(model, (X, y), loss=gw.nn.CrossEntropyLoss(),
    ...                  optimizer=gw.optim.Adam(model.parameters(), lr=0.05),
    ...                  epochs=5, metrics=["accuracy"], seed=0, verbose=0)
    >>> history["loss"][-1] < history["loss"][0]
    True
    """
    optimizer = _habits.resolve_optimizer(optimizer, model)
    _inputs.check_arguments(model, optimizer, epochs, initial_epoch)
    if not isinstance(compile, bool):
        raise TypeError(f"fit: expected compile to be True or False; got {compile!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"fit: expected clip_grad_norm > 0 or None; got {clip_grad_norm!r}")
    loss_fn = resolve_loss(loss, "fit")
    train = _inputs.arrays(train, "train")
    weights = _habits.row_weights(train, sample_weight, class_weight)
    if weights is not None and compile:
        raise ValueError("fit: compile=True does not take sample_weight or class_weight")
    if validation_split is not None:
        rows = train if weights is None else (*train, weights)
        rows, validation = _habits.split_validation(rows, validation_split, validation)
        train, weights = rows[:2], (rows[2] if weights is not None else None)
    if validation is not None:
        validation = _inputs.arrays(validation, "validation")
    if target_scaler is None:  # a model trained (or loaded) with one keeps training with it
        target_scaler = getattr(model, "target_scaler", None)
    if target_scaler is not None:
        target_scaler = _targets.prepare(target_scaler, train, "fit")
        train = _targets.scale_data(train, target_scaler)
        validation = _targets.scale_data(validation, target_scaler)
        model.target_scaler = target_scaler
    train_loader = _loader(train, batch_size, shuffle, seed, "train", weights)
    _inputs.check_batches(train_loader, "train")
    val_loader = None
    if validation is not None:
        val_loader = _loader(validation, batch_size, False, None, "validation")
        _inputs.check_batches(val_loader, "validation")
    logits = _takes_logits(loss_fn)
    train_metrics = [_metrics.get(m, logits=logits) for m in metrics]
    val_metrics = [fresh_copy(m) for m in train_metrics]
    for m in train_metrics:
        if m.name in ("loss", "lr", "time") or m.name.startswith("val_"):
            raise ValueError(f"fit: a metric cannot be named {m.name!r} (a reserved log key)")
    _inputs.check_targets(loss_fn, train_metrics, train_loader, val_loader)
    row_loss = None if weights is None else _habits.per_row_loss(loss_fn)
    if distributed is not False:  # one process per rank: see gradwell.distributed
        from ..distributed.fit import distribute

        train_loader, val_loader, train_metrics, val_metrics, callbacks, verbose = distribute(
            distributed, train_loader, val_loader, train_metrics, val_metrics, callbacks, verbose
        )
    if target_scaler is not None:  # outermost: a reduced metric sees original units too
        train_metrics = [_targets.InOriginalUnits(m, target_scaler) for m in train_metrics]
        val_metrics = [_targets.InOriginalUnits(m, target_scaler) for m in val_metrics]

    history = History()
    state = TrainingState(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        train_loader=train_loader,
        validation_loader=val_loader,
        history=history,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=len(train_loader),
    )
    extra = [cb for cb in (_doctor_callback(doctor),) if cb is not None]
    if verbose:
        extra.append(ProgressBar(verbose))
    cbs = CallbackList([*callbacks, *extra], state)
    state.callbacks = cbs.callbacks
    history.params = {"epochs": epochs, "steps": len(train_loader), "initial_epoch": initial_epoch}
    batch_begin = cbs.hooks["on_batch_begin"]
    after_backward = cbs.hooks["on_after_backward"]
    batch_end = cbs.hooks["on_batch_end"]

    compiled = CompiledStep(model, loss_fn) if compile else None
    clip: Callable[..., Any] | None = None
    params = None
    if clip_grad_norm is not None:
        from ..nn.utils import clip_grad_norm_

        clip = clip_grad_norm_
        params = [p for p in model.parameters() if p.requires_grad]
    group = optimizer.param_groups[0]
    step_losses, step_lrs = history.steps["loss"], history.steps["lr"]
    set_epoch = getattr(train_loader, "set_epoch", None)

    cbs.call("on_train_begin", {})
    for epoch in range(initial_epoch, epochs):
        state.epoch = epoch
        started = time.perf_counter()
        cbs.call("on_epoch_begin", epoch, {})
        model.train()
        for m in train_metrics:
            m.reset()
        loss_sum, seen = 0.0, 0
        if set_epoch is not None:
            set_epoch(epoch)
        if isinstance(seed, (int, np.integer)):  # the dropout masks follow from it too
            reseed_dropout(model, (int(seed), epoch))
        for step, batch in enumerate(train_loader):
            inputs, targets = batch[0], batch[1]
            n = len(inputs)
            state.inputs, state.targets = inputs, targets
            if batch_begin:
                for hook in batch_begin:
                    hook(step, {"size": n})

            optimizer.zero_grad(set_to_none=True)
            if compiled is None:
                outputs = model(inputs)
                if row_loss is None:
                    loss_t = loss_fn(outputs, targets)
                else:  # each row's loss times its weight (the batch's third field)
                    loss_t = _habits.weighted_mean(row_loss(outputs, targets), batch[2])
                loss_t.backward()
            else:
                outputs, loss_t = compiled(inputs, targets)
            state.outputs, state.loss = outputs, loss_t
            if clip is not None:
                clip(params, clip_grad_norm)
            if after_backward:
                for hook in after_backward:
                    hook(step, {"size": n})
            optimizer.step()
            state.global_step += 1

            loss_value = loss_t.item()
            lr = group["lr"]
            step_losses.append(loss_value)
            step_lrs.append(lr)
            loss_sum += loss_value * n
            seen += n
            for m in train_metrics:
                m.update(targets.data, outputs.data)
            if batch_end:
                logs = {"loss": loss_value, "lr": lr, "size": n}
                for hook in batch_end:
                    hook(step, logs)
            if state.stop_training:
                break

        epoch_logs: dict[str, Any] = {"loss": loss_sum / seen if seen else float("nan")}
        for m in train_metrics:
            epoch_logs[m.name] = m.result()
        if val_loader is not None:
            epoch_logs.update(_evaluate(model, val_loader, loss_fn, val_metrics, "val_"))
        epoch_logs["lr"] = step_lrs[-1] if step_lrs else group["lr"]
        epoch_logs["time"] = time.perf_counter() - started
        cbs.call("on_epoch_end", epoch, epoch_logs)
        history.record_epoch(epoch, epoch_logs)
        if state.stop_training:
            break
    state.inputs = state.targets = state.outputs = state.loss = None
    _inputs.release(loss_fn)
    cbs.call("on_train_end", {})
    return history
