"""The explain page in a real browser: stepping shows the right numbers, no console errors.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright; `make test` installs
Chromium with apt-get when it is missing. Without a browser the tests are skipped,
with the reason.
"""

import math
import os
import re

import pytest

import gradwell as gw
from gradwell.cli import main

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The tiny network, by hand: x = (1, -2), W1 = (0.5, 0.25), b1 = 0.1, tanh,
# W2 = 2, b2 = -0.5, target 1, loss = (out - y)^2.
X0, X1, W10, W11, B1, W2, B2, Y = 1.0, -2.0, 0.5, 0.25, 0.1, 2.0, -0.5, 1.0
Z = W10 * X0 + W11 * X1 + B1
H = math.tanh(Z)
OUT = W2 * H + B2
LOSS = (OUT - Y) ** 2
D_OUT = 2 * (OUT - Y)
D_H = D_OUT * W2
D_Z = D_H * (1 - H**2)
VALUES = {"z1[0]": Z, "h1[0]": H, "out[0]": OUT, "loss": LOSS}
GRADS = {
    "loss": 1.0,
    "out[0]": D_OUT,
    "W2[0,0]": D_OUT * H,
    "b2[0]": D_OUT,
    "h1[0]": D_H,
    "z1[0]": D_Z,
    "W1[0,0]": D_Z * X0,
    "W1[0,1]": D_Z * X1,
    "b1[0]": D_Z,
}


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.skip(f"the browser test needs the playwright package ({e}); pip install playwright")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
            "(`make test` tries to)"
        )
    manager = sync_playwright().start()
    try:
        b = manager.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Exception as e:  # Playwright reports launch failures as its own Error type
        manager.stop()
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pytest.skip(f"Chromium at {CHROMIUM} could not be launched: {reason}")
    yield b
    b.close()
    manager.stop()


@pytest.fixture
def open_page(browser):
    pages = []

    def open_(path):
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.errors = []
        page.on(
            "console",
            lambda m: page.errors.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        pages.append(page)
        return page

    yield open_
    for p in pages:
        p.close()


def tiny_page(tmp_path):
    loss = gw.viz.scalar_mlp([([[W10, W11]], [B1]), ([[W2]], [B2])], [X0, X1], [Y], dtype="float64")
    return gw.viz.explain(loss, tmp_path / "tiny.html")


def node_ids(page, view):
    """Node name -> element id, read from each node's tooltip ("#3 tanh · h1[0]")."""
    pairs = page.eval_on_selector_all(
        f'.view[data-view="{view}"] g.node',
        "els => els.map(g => [g.id, g.querySelector('title').textContent.split('\\n')[0]])",
    )
    ids = {}
    for element_id, head in pairs:
        if " · " in head:
            ids[head.split(" · ", 1)[1]] = element_id
    return ids


def shown(page, element_id, field):
    text = page.text_content(f"#{element_id} text.{field}") or ""
    text = text.replace("∂", "").strip()
    return float(text) if text else None


def step_until(page, title_pattern, limit=200):
    for _ in range(limit):
        if re.search(title_pattern, page.text_content("#title")):
            return
        page.keyboard.press("ArrowRight")
    raise AssertionError(f"no step titled like {title_pattern!r}")


def test_stepping_shows_the_hand_computed_numbers(tmp_path, open_page):
    page = open_page(tiny_page(tmp_path))
    ids = node_ids(page, "scalars")
    assert set(GRADS) <= set(ids)
    assert page.text_content("#phase") == "forward"

    # before any op ran, only the leaves show values
    assert shown(page, ids["W1[0,1]"], "v") == W11
    assert shown(page, ids["h1[0]"], "v") is None

    # forward: each value appears when its step comes, computed as by hand
    step_until(page, r"^h1\[0\] = tanh\(z1\[0\]\)")
    assert shown(page, ids["h1[0]"], "v") == pytest.approx(H, rel=1e-3)
    assert shown(page, ids["out[0]"], "v") is None  # not yet computed
    rows = page.text_content("#rows")
    assert f"tanh({Z:.4g}) = {H:.4g}" in rows
    step_until(page, r"^loss = ")
    for name, value in VALUES.items():
        assert shown(page, ids[name], "v") == pytest.approx(value, rel=1e-3), name

    # backward: the gradient at h1[0] is upstream × local, and so on down to the weights
    step_until(page, r"^gradient at h1\[0\]")
    assert page.text_content("#phase") == "backward"
    rows = page.text_content("#rows")
    m = re.search(r"upstream (\S+) × local (\S+) = (\S+)", rows)
    assert m, rows
    assert [float(v) for v in m.groups()] == pytest.approx([D_H, 1 - H**2, D_Z], rel=1e-3)
    page.keyboard.press("End")
    for name, grad in GRADS.items():
        assert shown(page, ids[name], "g") == pytest.approx(grad, rel=1e-3), name
    assert page.text_content("#c-done") == page.text_content("#c-products")
    assert page.errors == []


def test_buttons_keys_and_play(tmp_path, open_page):
    page = open_page(tiny_page(tmp_path))
    n_steps = int(page.get_attribute("#scrub", "max")) + 1
    assert page.is_disabled("#prev") and page.is_enabled("#next")
    page.click("#next")
    page.click("#next")
    assert page.input_value("#scrub") == "2"
    page.click("#prev")
    assert page.input_value("#scrub") == "1"
    page.keyboard.press("ArrowLeft")
    assert page.input_value("#scrub") == "0"
    page.keyboard.press("End")
    assert page.input_value("#scrub") == str(n_steps - 1) and page.is_disabled("#next")
    page.keyboard.press("Home")
    page.select_option("#speed", "150")
    page.click("#play")
    assert page.text_content("#play").strip().endswith("Pause")
    page.wait_for_function("Number(document.querySelector('#scrub').value) >= 3")
    page.keyboard.press(" ")  # pause
    assert page.text_content("#play").strip().endswith("Play")
    at = page.input_value("#scrub")
    page.wait_for_timeout(400)
    assert page.input_value("#scrub") == at  # paused: no more steps
    assert page.errors == []


def test_default_page_has_both_views_and_no_console_errors(tmp_path, open_page):
    out = tmp_path / "bp.html"
    assert main(["explain", "-o", str(out)]) == 0
    page = open_page(out)
    assert page.is_visible('.view[data-view="neurons"]')
    assert not page.is_visible('.view[data-view="tensors"]')
    page.keyboard.press("End")
    neurons_paths = page.text_content("#c-paths")
    page.click('.tab[data-view="tensors"]')
    assert page.is_visible('.view[data-view="tensors"]')
    assert page.input_value("#scrub") == "0"  # each view keeps its own place
    page.keyboard.press("End")
    assert page.text_content("#phase") == "backward"
    assert page.text_content("#c-paths") != neurons_paths
    ids = node_ids(page, "tensors")
    # the tensor view shows the weight gradient of the last layer as a vector
    assert re.fullmatch(
        r"∂ \[-?[\d.]+, -?[\d.]+\]", page.text_content(f"#{ids['4.weight']} text.g")
    )
    page.click("#zoom-in")
    page.click("#zoom-fit")
    assert page.errors == []
