"""gradwell doctor --fix on the config.json of gradwell train: repaired, written back, retrained."""

import json

from test_train_command import mixed_csv

from gradwell.cli import main


def test_fix_reads_changes_and_writes_the_train_config(tmp_path, capsys):
    data = mixed_csv(tmp_path / "mixed.csv", n=120)
    run = tmp_path / "run"
    assert main(["train", str(data), "--target", "label", "--epochs", "10", "--dropout", "0.9",
                 "--quiet", "--out", str(run)]) == 0  # fmt: skip
    config = run / "config.json"
    before = json.loads(config.read_text())
    assert before["data"] == str(data.resolve()) and before["dropout"] == 0.9
    capsys.readouterr()
    assert main(["doctor", "--fix", str(config), "--rounds", "1"]) == 0  # no --write: kept
    said = capsys.readouterr().out
    assert "dropout_misconfigured" in said and "(kept)" in said and "CONFIG = {" not in said
    assert json.loads(config.read_text()) == before
    assert main(["doctor", "--fix", str(config), "--rounds", "1", "--write"]) == 0
    after = json.loads(config.read_text())
    assert after["dropout"] < 0.8  # the set_dropout edit, folded into the setting
    assert {k: v for k, v in after.items() if k != "dropout"} == {
        k: v for k, v in before.items() if k != "dropout"
    }
    assert f"retrain with: gradwell train --config {config}" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["train", "--config", str(config), "--quiet", "--out", str(again)]) == 0
    assert "healthy" in capsys.readouterr().out
    assert json.loads((again / "config.json").read_text())["dropout"] == after["dropout"]


def test_a_train_config_with_a_bad_setting_is_refused_before_training(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"target": "label", "data": "x.csv", "widths": [3]}))
    assert main(["doctor", "--fix", str(config)]) == 2
    assert "unknown settings ['widths']" in capsys.readouterr().out
