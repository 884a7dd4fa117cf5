"""Frames per second of ``gradwell playground``: the default network (2-4-2 tanh, SGD lr
0.03, batch 10, features x1 and x2) playing on the spiral set (250 training points, so
one frame = one epoch = 25 steps with the doctor, then the heatmaps and the numbers).

Three measures, each over ``--seconds`` of play after a short warm-up, repeated:

- run:     frames the training thread makes (no server, no page): the ceiling;
- socket:  frames a WebSocket client receives from the server (JSON decoded);
- page:    frames headless Chromium draws (and, in brackets, the epochs its counter
           advances: the server skips frames a busy page cannot take), when
           /usr/bin/chromium and Playwright are there.

The server caps the rate at ``run.MAX_FPS`` (60). The goal (issue 18): at least 20.

    python benchmarks/playground_fps.py --repeats 3 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from gradwell.playground.command import Server
from gradwell.playground.config import Config
from gradwell.playground.run import Run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SPIRAL = {"dataset": "spiral"}


def run_fps(seconds: float) -> float:
    frames: list[float] = []
    run = Run(Config.from_dict(SPIRAL), lambda f: frames.append(time.perf_counter()))
    run.gate.play(True)
    run.start()
    time.sleep(1.0)  # warm-up (the first steps compile the doctor's kernels)
    start, n = time.perf_counter(), len(frames)
    time.sleep(seconds)
    rate = (len(frames) - n) / (time.perf_counter() - start)
    run.stop()
    return rate


def socket_fps(server: Server, seconds: float) -> float:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}", max_size=None) as ws:
        ws.recv()
        ws.send(json.dumps({"type": "config", "config": SPIRAL}))
        ws.send(json.dumps({"type": "play"}))
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:
            ws.recv()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            count += json.loads(ws.recv())["type"] == "frame"
        rate = count / (time.perf_counter() - start)
        ws.send(json.dumps({"type": "pause"}))
    return rate


def page_fps(server: Server, seconds: float, repeats: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    drawn, epochs = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(server.url + "#dataset=spiral")
        page.wait_for_selector(".unit.neuron")
        for _ in range(repeats):
            page.click("[data-testid=reset]")
            time.sleep(0.3)
            page.click("[data-testid=play]")
            time.sleep(1.0)
            counter = "[data-testid=epoch]"
            first = int(page.text_content(counter)), int(page.get_attribute(counter, "data-frames"))
            start = time.perf_counter()
            time.sleep(seconds)
            last = int(page.text_content(counter)), int(page.get_attribute(counter, "data-frames"))
            elapsed = time.perf_counter() - start
            epochs.append((last[0] - first[0]) / elapsed)
            drawn.append((last[1] - first[1]) / elapsed)
            page.click("[data-testid=play]")
        browser.close()
    return drawn, epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    server = Server("127.0.0.1", 0)
    thread = server.start_thread()
    results = {
        "run": [run_fps(args.seconds) for _ in range(args.repeats)],
        "socket": [socket_fps(server, args.seconds) for _ in range(args.repeats)],
    }
    if os.access(CHROMIUM, os.X_OK):
        results["page"], results["page (epochs/s)"] = page_fps(server, args.seconds, args.repeats)
    server.stop(thread)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| measure | median frames/s | min | max |")
    print("|---|---:|---:|---:|")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f} | {max(rates):.1f} |")


if __name__ == "__main__":
    main()
