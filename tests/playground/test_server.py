"""The playground's server: the token, Host and Origin checks, size limits, the protocol."""

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import gradwell as gw
from gradwell.cli import main
from gradwell.playground.build import build_model
from gradwell.playground.config import Config

websockets = pytest.importorskip("websockets.sync.client", reason="needs the playground extra")


def request(server, path, headers=None, data=None, token=True):
    url = f"http://127.0.0.1:{server.port}{path}"
    headers = dict(headers or {})
    if token:
        headers.setdefault("X-Gradwell-Token", server.token)
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def socket(server, origin=None, token=None):
    token = server.token if token is None else token
    return websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws?token={token}",
        origin=origin or f"http://127.0.0.1:{server.port}",
        max_size=None,
    )


def until(ws, kind):
    while True:
        m = json.loads(ws.recv(timeout=60))
        if m["type"] == kind:
            return m
        assert m["type"] != "error", m


def test_the_page_needs_the_token(server):
    assert request(server, "/", token=False)[0] == 403
    assert request(server, "/?token=wrong", token=False)[0] == 403
    status, body = request(server, f"/?token={server.token}", token=False)
    assert status == 200 and b'data-testid="output-heatmap"' in body
    assert b'src="http' not in body and b'href="http' not in body  # everything is inline


def test_api_calls_and_sockets_without_the_token_are_refused(server):
    for path in ("/api/export/python?session=x", "/api/explain?session=x&x1=0&x2=0"):
        assert request(server, path, token=False)[0] == 403
    with pytest.raises(websockets.InvalidStatus) as e:
        with socket(server, token="wrong") as ws:
            ws.recv(timeout=10)
    assert e.value.response.status_code == 403


def test_a_foreign_origin_or_host_is_refused(server):
    status, body = request(server, "/", headers={"Origin": "http://evil.example"})
    assert status == 403 and b"evil.example" in body
    status, body = request(server, "/", headers={"Host": "evil.example"})  # DNS rebinding
    assert status == 403 and b"Host" in body
    with pytest.raises(websockets.InvalidStatus):
        with socket(server, origin="http://evil.example") as ws:
            ws.recv(timeout=10)


def test_large_bodies_and_bad_uploads_are_refused(server):
    with socket(server) as ws:
        session = until(ws, "hello")["session"]
        ws.send(json.dumps({"type": "config", "config": {}}))
        until(ws, "frame")
        path = f"/api/upload?session={session}"
        assert request(server, path, data=b"1,2,0\n" * 20000)[0] == 413
        status, body = request(server, path, data=b"x1,x2,label\n0.5,1,0\n9,1,1\n")
        assert status == 400 and b"row 2, column x1" in body
        status, body = request(server, path, data=b"0.5,1,0\n1,1,__import__('os')\n")
        assert status == 400 and b"row 2, column label" in body
        status, body = request(server, path, data=b"x1,x2,label\n0.5,1,0\n-1,-2,1\n3,3,2\n")
        assert status == 200 and body == b"3 points"
        setup = until(ws, "setup")
        assert setup["config"]["dataset"] == "custom" and setup["classes"] == 3
        status, body = request(server, path, data=b"0.5,1,0.25\n-1,-2,-0.5\n3,3,1\n")
        assert status == 200
        setup = until(ws, "setup")
        assert setup["problem"] == "regression" and setup["labels"] == [0.25, -0.5, 1.0]
        status, body = request(server, path, data=b"0.5,1,0.25\n-1,-2,3.5\n")
        assert status == 400 and b"row 2, column label" in body
        ws.send(json.dumps({"type": "config", "config": {"lr": "import os"}}))
        error = until(ws, "error")
        assert error["message"].startswith("lr: expected one of")
        ws.send("x" * 20_000)
        assert "limited" in until(ws, "error")["message"]


def test_step_advances_one_epoch_and_edits_a_weight(server):
    with socket(server) as ws:
        until(ws, "hello")
        ws.send(json.dumps({"type": "config", "config": {"dataset": "spiral", "seed": 3}}))
        until(ws, "setup")
        assert until(ws, "frame")["epoch"] == 0
        for expected in (1, 2):
            ws.send(json.dumps({"type": "step"}))
            assert until(ws, "frame")["epoch"] == expected
        ws.send(json.dumps({"type": "set_weight", "layer": 0, "to": 1, "from": 0, "value": 2.5}))
        frame = until(ws, "frame")
        assert frame["epoch"] == 2 and frame["links"][0]["w"][1][0] == 2.5
        ws.send(json.dumps({"type": "set_weight", "layer": 9, "to": 0, "from": 0, "value": 1}))
        assert "layer" in until(ws, "error")["message"]


def test_pause_and_reset_act_within_a_frame(server):
    with socket(server) as ws:
        until(ws, "hello")
        ws.send(json.dumps({"type": "config", "config": {"layers": [3]}}))
        until(ws, "frame")
        ws.send(json.dumps({"type": "play"}))
        for _ in range(3):
            until(ws, "frame")
        ws.send(json.dumps({"type": "pause"}))
        assert until(ws, "state")["playing"] is False
        late = []  # the frame waiting to be sent, and the epoch under way: no more
        with pytest.raises(TimeoutError):
            while True:
                late.append(json.loads(ws.recv(timeout=1.0)))
        assert len(late) <= 2 and all(m["type"] == "frame" for m in late)
        ws.send(json.dumps({"type": "reset"}))
        assert until(ws, "setup")["config"]["layers"] == [3]
        assert until(ws, "frame")["epoch"] == 0


def test_exports_and_the_explain_page(server, tmp_path):
    with socket(server) as ws:
        session = until(ws, "hello")["session"]
        ws.send(json.dumps({"type": "config", "config": {"layers": [3]}}))
        until(ws, "frame")
        ws.send(json.dumps({"type": "step"}))
        until(ws, "frame")
        status, html = request(server, f"/api/explain?session={session}&x1=1.5&x2=-2")
        assert status == 200 and b"w \xe2\x86\x90 w \xe2\x88\x92 \xce\xb1" in html  # "w ← w − α"
        status, data = request(server, f"/api/export/checkpoint?session={session}")
        assert status == 200
        path = tmp_path / "run.safetensors"
        path.write_bytes(data)
        model = build_model(Config(layers=(3,)), 2, 2)
        meta = gw.load(path, model)
        assert meta["epoch"] == 1 and json.loads(meta["playground"])["layers"] == [3]


def test_the_command_refuses_a_remote_host_without_the_flag(capsys):
    assert main(["playground", "--host", "0.0.0.0", "--no-browser"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_the_command_serves_until_interrupted():
    command = [sys.executable, "-m", "gradwell.cli", "playground", "--port", "0", "--no-browser"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            url = p.stdout.readline()  # printed once the port is bound
            assert "?token=" in url, p.stderr.read()
            p.send_signal(signal.SIGINT)  # Ctrl-C
            out, err = p.communicate(timeout=60)
        finally:
            p.kill()
    assert p.returncode == 0, err
    assert "stopped" in out
