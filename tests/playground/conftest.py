"""The playground tests' fixtures: one server per test module, and the browser."""

import pytest
from viz.test_browser import browser  # noqa: F401  (Chromium through Playwright, or a skip)


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("uvicorn", reason="the playground server needs the playground extra")
    from gradwell.playground.command import Server

    s = Server("127.0.0.1", 0)
    thread = s.start_thread()
    yield s
    s.stop(thread)
