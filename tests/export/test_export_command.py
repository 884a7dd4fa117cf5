"""gradwell train -> predict -> export on a mixed CSV with missing cells, through main([...]).

The ONNX file takes the CSV's raw columns and must give what ``gradwell predict``
wrote (6 significant digits) within ``1e-5 + 1e-5 * |value|``.
"""

import numpy as np
import pytest
from test_train_command import mixed_csv, rows

import gradwell as gw
from gradwell.cli import main

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def feeds(path, meta):
    """The CSV's feature columns as the ONNX inputs take them: (N, 1) float32 or text."""
    frame = gw.data.load_csv(path, columns=meta["columns"], categorical=meta["categorical"])
    feeds = {}
    for name, column in frame.frame().items():
        if name in meta["categorical"]:
            feeds[name] = np.array(["" if v is None else v for v in column], object)[:, None]
        else:
            feeds[name] = column.astype(np.float32)[:, None]
    return feeds


@pytest.mark.parametrize(
    ("target", "flags"), [("label", ["--batchnorm"]), ("price", ["--target-scaler", "log"])]
)
def test_train_predict_export(tmp_path, capsys, target, flags):
    data = mixed_csv(tmp_path / "mixed.csv", n=120)
    run = tmp_path / "run"
    assert main(["train", str(data), "--target", target, "--epochs", "3", "--quiet",
                 "--out", str(run), *flags]) == 0  # fmt: skip
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(run / "model.safetensors"), str(data), "--out", str(preds)]) == 0
    onnx_path = tmp_path / "model.onnx"
    capsys.readouterr()
    assert main(["export", str(run / "model.safetensors"), str(onnx_path), "--check",
                 str(data)]) == 0  # fmt: skip
    _, _, meta = gw.load(run / "model.safetensors")
    said = capsys.readouterr().out
    assert f"inputs {', '.join(meta['columns'])};" in said
    assert "rows of" in said and "onnxruntime and gradwell agree" in said
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == meta["columns"]
    stored = session.get_modelmeta().custom_metadata_map
    assert stored["target"] == target and stored["task"] == meta["task"]
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, feeds(data, meta)),
            strict=True,
        )
    )
    written = rows(preds)
    if target == "label":
        for k, name in enumerate(meta["classes"]):
            want = np.array([float(r[f"p_{name}"]) for r in written])
            np.testing.assert_allclose(outputs["probabilities"][:, k], want, rtol=1e-5, atol=1e-5)
    else:
        assert "probabilities" not in outputs
        want = np.array([float(r["prediction"]) for r in written])
        np.testing.assert_allclose(outputs["output"][:, 0], want, rtol=1e-5, atol=1e-5)


def test_export_refusals(tmp_path, capsys):
    net = gw.nn.Sequential(gw.nn.Conv2d(1, 2, 3), gw.nn.Flatten(), gw.nn.Linear(8, 2))
    gw.save(tmp_path / "cnn.safetensors", net)
    out = tmp_path / "cnn.onnx"
    assert main(["export", str(tmp_path / "cnn.safetensors"), str(out)]) == 2
    assert "--input-shape C,H,W" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "cnn.safetensors"), str(out), "--input-shape", "x"]) == 2
    assert "expected --input-shape as positive sizes" in capsys.readouterr().err
    assert not out.exists()
    assert main(["export", str(tmp_path / "cnn.safetensors"), str(out), "--input-shape",
                 "1,4,4"]) == 0  # fmt: skip
    x = np.random.default_rng(0).normal(size=(3, 1, 4, 4)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], gw.predict(net, x), rtol=1e-5, atol=1e-5
    )
    assert main(["export", str(tmp_path / "missing.safetensors"), str(out)]) == 2
    assert main(["export", str(tmp_path / "cnn.safetensors"), str(out), "--input-shape", "1,4,4",
                 "--check", str(tmp_path / "any.csv")]) == 2  # fmt: skip
    assert "--check needs a model written by gradwell train" in capsys.readouterr().err


def test_import_gradwell_leaves_onnx_until_an_export():
    # onnx takes seconds to import: every process (each MPI rank, each CLI call) would pay it
    import subprocess
    import sys

    code = (
        "import sys, gradwell; print('onnx' in sys.modules); "
        "import gradwell.export; print('onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
