"""The playground page in a real browser (Debian's Chromium through Playwright).

One server for the module, small networks and short runs. Without a browser the
tests are skipped, with the reason (as the explain page's browser test).
"""

import re
import subprocess
import sys
import time
from urllib.parse import unquote

import pytest

from gradwell.playground.config import PRESETS

WAIT = 30.0  # seconds


def poll(condition, timeout=WAIT):
    """Wait until ``condition()`` holds (read from Python: the page's Content-Security-Policy
    forbids the eval that Playwright's wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def open_(fragment="", url=None, context=None):
        if context is None:
            context = browser.new_context(
                viewport={"width": 1500, "height": 950}, accept_downloads=True
            )
            contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on(
            "console",
            lambda m: page.errors.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(url or server.url + fragment)
        poll(lambda: page.text_content("[data-testid=train-loss]") != "-")
        return page

    yield open_
    for c in contexts:
        c.close()


def epoch(page):
    return int(page.text_content("[data-testid=epoch]"))


def loss(page):
    return float(page.text_content("[data-testid=train-loss]"))


def wait_epoch(page, at_least):
    poll(lambda: epoch(page) >= at_least)


def settings(url):
    return dict(part.split("=", 1) for part in unquote(url.split("#", 1)[1]).split("&"))


@pytest.mark.parametrize("dataset", ["circle", "spiral"])
def test_play_raises_the_epoch_and_lowers_the_training_loss(open_page, dataset):
    page = open_page(f"#dataset={dataset}&seed=2")
    assert epoch(page) == 0
    before = loss(page)
    page.click("[data-testid=play]")
    wait_epoch(page, 25)
    page.click("[data-testid=play]")  # pause
    assert loss(page) < 0.95 * before
    assert page.get_attribute("[data-testid=play]", "aria-label") == "play"
    assert page.errors == []


def test_step_advances_exactly_one_epoch_and_the_learning_rate_keeps_the_network(open_page):
    page = open_page("#layers=3")
    for expected in (1, 2, 3):
        page.click("[data-testid=step]")
        wait_epoch(page, expected)
        page.wait_for_timeout(150)  # time enough for a second epoch, had one run
        assert epoch(page) == expected
    page.select_option("[data-testid=learning-rate]", "0.1")
    poll(lambda: "lr=0.1&" in page.evaluate("location.href"))
    page.click("[data-testid=step]")
    wait_epoch(page, 4)  # the same network goes on
    page.select_option("[data-testid=activation]", "relu")
    poll(lambda: epoch(page) == 0)  # any other change starts afresh
    assert page.errors == []


def test_every_data_set_draws_and_points_can_be_uploaded(open_page, tmp_path):
    page = open_page()
    for name in ("xor", "gauss", "spiral", "plane", "multigauss", "circle"):
        old = page.evaluate("location.href")
        page.click(f"[data-testid=dataset-{name}]")
        poll(lambda o=old: page.evaluate("location.href") != o)
        page.click("[data-testid=step]")
        wait_epoch(page, 1)
        regression = name in ("plane", "multigauss")
        assert page.input_value("[data-testid=problem]") == (
            "regression" if regression else "classification"
        )
        assert (page.text_content("[data-testid=train-accuracy]") == "") == regression
    page.click("[data-testid=dataset-gauss]")
    page.select_option("[data-testid=classes]", "3")
    poll(lambda: "classes=3" in page.evaluate("location.href"))
    assert page.locator(".unit.output").count() == 3
    csv = tmp_path / "points.csv"
    csv.write_text(
        "x1,x2,label\n" + "".join(f"{i % 5 - 2},{i % 3 - 1},{i % 2}\n" for i in range(20))
    )
    page.set_input_files("[data-testid=upload]", str(csv))
    poll(lambda: "dataset=custom" in page.evaluate("location.href"))
    assert page.errors == []


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_diagnosed_and_apply_remedy_repairs_it(open_page, name):
    kinds = PRESETS[name][1]
    page = open_page()
    page.click(f"[data-testid=preset-{name}]")
    serious = ", ".join(
        f".finding.{s}[data-kind={k}]" for k in kinds for s in ("warning", "critical")
    )
    page.wait_for_selector(f"[data-testid=health-panel] :is({serious})", timeout=WAIT * 1000)
    if page.get_attribute("[data-testid=play]", "aria-label") == "pause":
        page.click("[data-testid=play]")  # pause (a NaN has paused it already), then apply
    page.locator(f"[data-testid=health-panel] :is({serious})").first.locator(
        "[data-testid=apply-remedy]"
    ).click()
    poll(lambda: page.text_content("[data-testid=remedy-note]").startswith("Applied"))
    wait_epoch(page, 10)
    page.click("[data-testid=play]")  # pause
    assert page.locator(f"[data-testid=health-panel] :is({serious})").count() == 0
    assert loss(page) < 0.7 * float(
        page.get_attribute("[data-testid=loss-chart]", "data-first-loss")
    )
    assert page.errors == []


def test_a_shared_link_restores_every_setting(open_page):
    page = open_page()

    def href():
        return page.evaluate("location.href")

    def settled(action):
        old = href()
        action()
        poll(lambda: href() != old)

    settled(lambda: page.click("[data-testid=dataset-xor]"))
    settled(lambda: page.select_option("[data-testid=activation]", "relu"))
    settled(lambda: page.select_option("[data-testid=learning-rate]", "0.1"))
    settled(lambda: page.click("[data-testid=add-layer]"))
    settled(lambda: page.click("[data-testid=feature-x1x2]"))
    settled(lambda: page.select_option("[data-testid=dropout]", "0.2"))
    settled(lambda: page.check("[data-testid=batchnorm]"))
    settled(lambda: page.select_option("[data-testid=init]", "xavier"))
    settled(lambda: page.select_option("[data-testid=optimizer]", "adam"))
    settled(lambda: page.select_option("[data-testid=regularization]", "l2"))
    settled(lambda: page.select_option("[data-testid=reg-rate]", "0.003"))
    settled(lambda: page.check("[data-testid=show-test]"))
    for control, value in (("noise", "25"), ("train-ratio", "70"), ("batch-size", "20")):
        settled(
            lambda c=control, v=value: page.eval_on_selector(
                f"[data-testid={c}]",
                f"el => {{ el.value = '{v}'; el.dispatchEvent(new Event('change')); }}",
            )
        )
    page.click("[data-testid=share-link]")
    link = page.input_value("#share-url")
    assert "token" not in link
    expected = settings(link)
    assert (
        expected["dataset"] == "xor" and expected["layers"] == "4,2,2" and expected["noise"] == "25"
    )

    again = open_page(url=link, context=page.context)  # the same browser: its cookie opens it
    assert settings(again.evaluate("location.href")) == expected
    for control, value in (("activation", "relu"), ("learning-rate", "0.1"), ("init", "xavier"),
                           ("optimizer", "adam"), ("regularization", "l2"), ("reg-rate", "0.003"),
                           ("dropout", "0.2"), ("noise", "25"), ("train-ratio", "70"),
                           ("batch-size", "20")):  # fmt: skip
        assert again.input_value(f"[data-testid={control}]") == value, control
    assert again.is_checked("[data-testid=batchnorm]") and again.is_checked(
        "[data-testid=show-test]"
    )
    assert "off" not in again.get_attribute("[data-testid=feature-x1x2]", "class")
    assert again.locator(".unit.neuron").count() == 8  # 4 + 2 + 2
    assert again.text_content("[data-testid=train-loss]") == page.text_content(
        "[data-testid=train-loss]"
    )

    classroom = open_page(url=link + "&hide=learning-rate,activation", context=page.context)
    assert not classroom.is_visible("[data-testid=learning-rate]")
    assert classroom.is_visible("[data-testid=optimizer]")
    classroom.click("[data-testid=classroom]")  # the teacher's menu: tick what to hide
    classroom.check("[data-testid=hide-list] label:has-text('optimizer') input")
    assert not classroom.is_visible("[data-testid=optimizer]")
    assert "hide=learning-rate,activation,optimizer" in classroom.input_value("#share-url")
    assert page.errors == again.errors == classroom.errors == []


def test_the_exported_script_runs_and_reaches_a_similar_loss(open_page, tmp_path):
    page = open_page("#dataset=circle&layers=4&activation=relu&lr=0.1&seed=5")
    for expected in range(1, 9):
        page.click("[data-testid=step]")
        wait_epoch(page, expected)
    with page.expect_download() as download:
        page.click("[data-testid=export-python]")
    path = tmp_path / "playground.py"
    download.value.save_as(path)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    script_loss = float(re.search(r"train loss ([0-9.e+-]+)", out.stdout).group(1))
    assert script_loss == pytest.approx(loss(page), rel=0.05)
    assert page.errors == []


def test_a_hover_card_shows_a_weight_and_a_click_edits_it(open_page):
    page = open_page("#layers=2&seed=4")
    link = page.locator("#links path").first
    link.dispatch_event("mouseenter")
    assert page.is_visible("#card") and page.text_content("#card").startswith("Weight ")
    link.dispatch_event("click")
    page.fill("[data-testid=edit-value]", "1.5")
    page.press("[data-testid=edit-value]", "Enter")
    poll(lambda: page.get_attribute("#links path", "stroke-width") == str(0.5 + 1.5 * 1.5))
    link.dispatch_event("mouseenter")
    assert re.match(r"Weight 1\.5(?!\d)", page.text_content("#card"))
    assert page.errors == []


def test_clicking_the_plane_explains_a_point_and_adds_points(open_page):
    page = open_page("#layers=2&loss=mse")
    page.click("[data-testid=step]")
    wait_epoch(page, 1)
    page.click("[data-testid=output-heatmap]", position={"x": 200, "y": 100})
    explain = page.frame_locator("[data-testid=explain-frame]")
    explain.locator("#last").click()
    assert explain.locator("#title").text_content().startswith("update: w ← w − α")
    assert explain.locator('.tab[data-view="neurons"]').count() == 1  # a small MSE network
    page.click("#explain-close")
    page.select_option("[data-testid=click-mode]", "1")
    page.click("[data-testid=output-heatmap]", position={"x": 150, "y": 150})
    poll(lambda: "selected" in (page.get_attribute("[data-testid=dataset-custom]", "class") or ""))
    assert page.errors == []


def test_the_server_rejects_requests_without_the_token_or_from_a_foreign_origin(
    open_page, browser, server
):
    page = open_page()
    base = f"http://127.0.0.1:{server.port}"
    assert page.request.get(base + "/api/export/python?session=x").status == 403
    foreign = page.request.get(
        base + "/api/export/python?session=x",
        headers={"X-Gradwell-Token": server.token, "Origin": "http://evil.example"},
    )
    assert foreign.status == 403
    stranger = browser.new_context().new_page()  # no token, no cookie
    response = stranger.goto(base + "/")
    assert response.status == 403 and "token" in stranger.text_content("body")
    stranger.context.close()
