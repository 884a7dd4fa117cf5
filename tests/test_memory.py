"""The malloc tuning applied at import: on, and off on request."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gradwell._memory as memory


def test_tuning_is_applied_on_glibc():
    if not sys.platform.startswith("linux") or os.environ.get("GRADWELL_MALLOC_TUNING") == "0":
        pytest.skip("malloc tuning applies to glibc (Linux) only")
    assert memory.TUNED is True


def test_tuning_can_be_turned_off():
    code = "import gradwell._memory as m; print(m.TUNED)"
    env = dict(os.environ, GRADWELL_MALLOC_TUNING="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
