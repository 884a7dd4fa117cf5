"""The words a remedy uses for the framework's own tools.

A remedy says what to do ("clip the gradient norm at 5") and how, in the user's
framework ("torch.nn.utils.clip_grad_norm_(model.parameters(), 5)"). The how comes
from :data:`VOCABULARY`, one table per framework; a Doctor for another framework
diagnoses inside ``with speaking("torch"):`` and every remedy written there uses that
table. Each entry is a ``str.format`` template.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

VOCABULARY: dict[str, dict[str, str]] = {
    "gradwell": {
        "clip_grad_norm": "gw.nn.utils.clip_grad_norm_(model.parameters(), {v})",
        "init_he": "init='kaiming' on the Linear or Conv2d, or gw.nn.init.kaiming_normal_",
        "init_xavier": "init='xavier' on the Linear or Conv2d, or gw.nn.init.xavier_normal_",
        "init_default": "module.reset_parameters()",
        "optimizer": "gw.optim.{name}(model.parameters(), lr={lr})",
        "batch_size": "fit(..., batch_size={n})",
        "clamp": "gw.clip({x}, 1e-6)",
        "target_scaler": (
            "gw.fit(..., target_scaler=gw.preprocessing.TargetScaler({method!r})); gw.predict "
            "applies the inverse, so predictions come back in the target's units"
        ),
        "lr_find": "gw.lr_find(model, train, loss, optimizer)",
        "early_stopping": (
            "callbacks=[gw.callbacks.EarlyStopping(monitor='val_loss', patience=3, "
            "restore_best_weights=True)]"
        ),
        "auto_scaler": "gw.preprocessing.AutoScaler() fitted on the training data applies these",
        "zscore": "gw.preprocessing.ZScoreScaler() fitted on the training data",
        "bad_rows": "the gw.preprocessing scalers report the first bad row",
        "terminate_on_nan": "callbacks=[gw.callbacks.TerminateOnNaN()]",
        "fused_loss": "gw.nn.CrossEntropyLoss or BCEWithLogitsLoss",
        "eval_mode": "gw.predict does this",
        "mse_loss": "loss='mse' (gw.nn.MSELoss())",
        "cross_entropy_loss": "loss='cross_entropy' (gw.nn.CrossEntropyLoss())",
        "loss_object": "gw.nn.{name}()",
        "raw_output": "",
        "weight_decay": "{optimizer}(..., weight_decay={v})",
        "apply_edits": "gw.doctor.apply_edits",
        "bn_momentum": "{torch}",  # (a momentum in PyTorch's sense, said in this framework's)
        "bn_cumulative": "None (a cumulative average of every batch)",
        "bn_new_batch_weight": "momentum",
        "bn_momentum_note": " (Keras' momentum=0.99 is 0.01 here)",
        "new_lr": "",  # (the sentence says it all: "lower the learning rate from 1 to 0.1")
        "update_bn": (
            "set momentum=None on each batch norm, running_mean to 0, running_var to 1 and "
            "num_batches_tracked to 0, then run the training data through the model in "
            "training mode under gw.no_grad()"
        ),
    },
    "torch": {
        "clip_grad_norm": "torch.nn.utils.clip_grad_norm_(model.parameters(), {v})",
        "init_he": "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')",
        "init_xavier": "nn.init.xavier_normal_(layer.weight)",
        "init_default": "module.reset_parameters()",
        "optimizer": "torch.optim.{name}(model.parameters(), lr={lr})",
        "batch_size": "DataLoader(..., batch_size={n})",
        "clamp": "torch.clamp({x}, min=1e-6)",
        "target_scaler": (
            "y_scaled = (y - y.mean()) / y.std() (after torch.log1p(y) for 'log'), training "
            "on y_scaled and applying the inverse to the model's predictions (method "
            "{method!r})"
        ),
        "lr_find": "a learning-rate range test (raise the lr each step on a copy of the model)",
        "early_stopping": (
            "keep the weights of the epoch with the best validation loss "
            "(copy.deepcopy(model.state_dict())) and stop 3 epochs after it"
        ),
        "auto_scaler": (
            "gradwell.preprocessing.AutoScaler() fitted on the training data applies these"
        ),
        "zscore": "sklearn.preprocessing.StandardScaler() fitted on the training data",
        "bad_rows": "torch.isfinite(X).all(dim=1) marks the good rows",
        "terminate_on_nan": "break out of the loop when not torch.isfinite(loss)",
        "fused_loss": "nn.CrossEntropyLoss or nn.BCEWithLogitsLoss",
        "eval_mode": "wrap evaluation in model.eval() and torch.no_grad()",
        "mse_loss": "nn.MSELoss()",
        "cross_entropy_loss": "nn.CrossEntropyLoss()",
        "loss_object": "nn.{name}()",
        "raw_output": "",
        "weight_decay": "torch.optim.{optimizer}(..., weight_decay={v})",
        "apply_edits": "gradwell.torch.apply_edits",
        "update_bn": "torch.optim.swa_utils.update_bn(train_loader, model)",
        "bn_momentum": "{torch}",  # (a momentum in PyTorch's sense, said in this framework's)
        "bn_cumulative": "None (a cumulative average of every batch)",
        "bn_new_batch_weight": "momentum",
        "bn_momentum_note": " (Keras' momentum=0.99 is 0.01 here)",
        "new_lr": "",
    },
    "keras": {
        "clip_grad_norm": (
            "pass clipnorm={v} to the Keras optimizer, e.g. keras.optimizers.SGD(..., "
            "clipnorm={v}); it clips"
        ),
        "new_lr": ": keras.optimizers.{name}(learning_rate={lr})",
        "init_he": "kernel_initializer='he_normal' on the Dense or Conv2D layer",
        "init_xavier": "kernel_initializer='glorot_normal' on the Dense or Conv2D layer",
        "init_default": "the layer's default kernel_initializer='glorot_uniform'",
        "optimizer": "keras.optimizers.{name}(learning_rate={lr})",
        "batch_size": "model.fit(..., batch_size={n})",
        "clamp": "keras.ops.maximum({x}, 1e-6)",
        "target_scaler": (
            "y_scaled = (y - y.mean()) / y.std() (after np.log1p(y) for 'log'), fitting on "
            "y_scaled and applying the inverse to model.predict's output (method {method!r})"
        ),
        "lr_find": (
            "a learning-rate range test (raise the learning rate each step on a copy of the "
            "model: keras.callbacks.LearningRateScheduler)"
        ),
        "early_stopping": (
            "callbacks=[keras.callbacks.EarlyStopping(monitor='val_loss', patience=3, "
            "restore_best_weights=True)]"
        ),
        "auto_scaler": (
            "gradwell.preprocessing.AutoScaler() fitted on the training data applies these"
        ),
        "zscore": (
            "a keras.layers.Normalization() first layer, adapted to the training data "
            "(layer.adapt(X_train))"
        ),
        "bad_rows": "np.isfinite(X).all(axis=1) marks the good rows",
        "terminate_on_nan": "callbacks=[keras.callbacks.TerminateOnNaN()]",
        "fused_loss": (
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True) or "
            "BinaryCrossentropy(from_logits=True) on a linear output layer"
        ),
        "eval_mode": "model.evaluate and model.predict do this (training=False)",
        "mse_loss": "loss='mse' (keras.losses.MeanSquaredError())",
        "cross_entropy_loss": "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
        "loss_object": "loss=keras.losses.{name}",
        "raw_output": (
            " (a linear {layer}, activation=None; or keep the activation and pass "
            "from_logits=False to the loss)"
        ),
        "weight_decay": "keras.optimizers.{optimizer}(..., weight_decay={v})",
        "bn_momentum": "{keras}",  # (Keras' momentum is the weight of the old statistics)
        "bn_cumulative": (
            "0.5 (Keras has no cumulative average; a lower momentum forgets the initial "
            "values sooner)"
        ),
        "bn_new_batch_weight": "1 - momentum",
        "bn_momentum_note": " (PyTorch's momentum=0.1 is 0.9 in Keras)",
        # no "apply_edits": gradwell.keras has no repair (a person makes the edits)
        "update_bn": (
            "run the training batches through the model with training=True and no weight "
            "update, with each BatchNormalization's momentum lowered so that its moving "
            "statistics average them"
        ),
    },
}

_framework: ContextVar[str] = ContextVar("gradwell_doctor_framework", default="gradwell")


@contextmanager
def speaking(framework: str) -> Iterator[None]:
    """Write every remedy inside this block in ``framework``'s words."""
    if framework not in VOCABULARY:
        raise ValueError(
            f"speaking: unknown framework {framework!r}; expected one of {sorted(VOCABULARY)}"
        )
    token = _framework.set(framework)
    try:
        yield
    finally:
        _framework.reset(token)


def framework() -> str:
    """The framework remedies are written for now."""
    return _framework.get()


def say(key: str, **values: object) -> str:
    """The current framework's words for ``key``, filled in with ``values``."""
    return VOCABULARY[_framework.get()][key].format(**values)
