"""gradwell explain on hostile input: bounded work, and one clear line instead of a traceback."""

from __future__ import annotations

import pytest

from gradwell.cli import main
from gradwell.viz.examples import MAX_DEPTH, MAX_LENGTH, expression


@pytest.mark.parametrize(
    "text, message",
    [
        ("x*9**9**9", "too large for a float"),  # was: Python computing a huge integer
        ("9**9**9**9", "too large for a float"),
        ("x + " + "1" * 400, "too large for a float"),
        ("+".join(["x"] * 100_000), f"at most {MAX_LENGTH}"),  # was: RecursionError
        ("-" * 3000 + "x", f"at most {MAX_LENGTH}"),
        ("-" * (MAX_DEPTH + 5) + "x", f"more than {MAX_DEPTH} deep"),
        ("(" * 250 + "x" + ")" * 250, "not a valid expression"),  # the parser's own limit
        ("__import__('os')", "not allowed"),
        ("x.__class__", "not allowed"),
        ("x * (-8) ** (1 / 3)", "is a complex number"),
    ],
)
def test_expressions_are_bounded(text, message):
    with pytest.raises(ValueError, match=message):
        expression(text, 1.5, -0.5)


def test_the_bounds_leave_room_for_real_formulas():
    assert expression("-" * (MAX_DEPTH - 1) + "x", 2.0, 0.0).item() == -2.0
    assert expression("x ** 3 + 2 ** 10 * y", 2.0, 1.0).item() == 1032.0


def test_the_command_prints_one_line(tmp_path, capsys):
    assert main(["explain", "--expr", "x*9**9**9", "-o", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradwell explain: --expr:") and "Traceback" not in err
    assert not (tmp_path / "p.html").exists()


def test_a_value_starting_with_a_minus_gets_a_hint(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "--expr", "-x*y"])
    assert exit_.value.code == 2
    assert '--expr=VALUE, e.g. --expr="-x*y"' in capsys.readouterr().err


def test_a_value_attached_with_equals_works(tmp_path):
    assert main(["explain", "--expr=-x*y", "-o", str(tmp_path / "p.html")]) == 0


def test_output_folder(tmp_path, capsys):
    assert main(["explain", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"-o {tmp_path} is a folder" in err and "backprop.html" in err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff" * 8 + b"garbage", "not a readable safetensors file"),  # header too large
        (b"", "not a readable safetensors file"),
        (
            b'\x0c\x00\x00\x00\x00\x00\x00\x00{"a":"b"}   ',
            "not a readable safetensors|not a gradwell",
        ),
    ],
)
def test_a_model_that_is_not_a_checkpoint(tmp_path, capsys, content, message):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    args = ["explain", "--model", str(path), "--example", "1,2", "--target", "1"]
    assert main([*args, "-o", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    assert any(m in err for m in message.split("|"))


def test_an_unwritable_path_is_one_line_for_every_command(tmp_path, capsys):
    taken = tmp_path / "a-file"
    taken.write_text("x")
    status = main(["doctor", "--tour", "--cases", "nan_trap", "--html", str(taken)])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("gradwell doctor:") and str(taken) in err and "Traceback" not in err
