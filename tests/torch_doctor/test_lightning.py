"""``LightningDoctor``: the torch doctor through ``trainer.fit``; a sick run is caught with
the right kind and place, a healthy run stays quiet. Skipped without Lightning."""

from __future__ import annotations

import logging
import warnings

import pytest

L = pytest.importorskip("lightning.pytorch", reason="LightningDoctor's tests need Lightning")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch_doctor.kit import dataset, mlp  # noqa: E402

from gradwell.torch import LightningDoctor  # noqa: E402

SEEDS = (0, 1)


class Classifier(L.LightningModule):
    """A LightningModule around a network, cross-entropy, validation on held-out rows."""

    def __init__(self, net: nn.Module, optimizer: str, lr: float) -> None:
        super().__init__()
        self.net, self.optimizer_name, self.lr = net, optimizer, lr
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", self.loss_fn(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[self.optimizer_name]
        return cls(self.parameters(), lr=self.lr)


def fit(data: str, net: nn.Module, optimizer: str, lr: float, epochs: int, seed: int,
        **options) -> LightningDoctor:  # fmt: skip
    X, y, _ = dataset(data, seed)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    g = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X[:448], y[:448]), batch_size=32, shuffle=True, generator=g
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X[448:], y[448:]), 64)
    doctor = LightningDoctor(loss=nn.CrossEntropyLoss(), verbose=False, raise_errors=True,
                             **options)  # fmt: skip
    trainer = L.Trainer(max_epochs=epochs, callbacks=[doctor], accelerator="cpu",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        trainer.fit(Classifier(net, optimizer, lr), train, val)
    return doctor


def serious(doctor: LightningDoctor) -> list:
    return [f for f in doctor.findings if f.severity in ("warning", "critical")]


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_stack_vanishes_at_the_first_layers(seed):
    net = mlp(2, [16] * 6, 2, "Sigmoid", seed=seed)
    doctor = fit("circle", net, "sgd", 0.5, epochs=3, seed=seed)
    f = next(f for f in serious(doctor) if f.kind == "vanishing_gradients")
    linears = [f"net.{p}" for p, m in net.named_modules() if isinstance(m, nn.Linear)]
    assert f.locations[0] == linears[0] and set(f.locations) <= set(linears[:-2])
    assert "nn.init.kaiming_normal_" in " ".join(f.remedies)
    assert doctor.doctor.trace.n_samples >= 12  # at least 4 samples an epoch
    assert [e["val_loss"] is not None for e in doctor.doctor.trace.epochs] == [True] * 3


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_run_stays_quiet_and_writes_its_report(seed, tmp_path):
    net = mlp(2, [32, 32], 2, "ReLU", seed=seed)
    path = tmp_path / "report.html"
    doctor = fit("circle", net, "adam", 0.01, epochs=4, seed=seed, save_html=path)
    assert serious(doctor) == [], [f.headline() for f in serious(doctor)]
    assert "val_acc" in doctor.doctor.trace.epochs[-1]["metrics"]
    assert "<html" in path.read_text()[:200].lower()
    assert "net.0.weight" in doctor.report()
