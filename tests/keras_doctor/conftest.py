import os

import pytest

if os.environ.setdefault("KERAS_BACKEND", "torch") != "torch":
    pytest.skip("the Keras doctor's tests need KERAS_BACKEND=torch", allow_module_level=True)
pytest.importorskip("torch", reason="the Keras doctor's tests need PyTorch")
keras = pytest.importorskip(
    "keras", minversion="3.0", reason="the Keras doctor's tests need Keras 3"
)

import torch  # noqa: E402

# one thread: the tiny models of these tests run several times faster than with a pool of
# threads competing for the shared cores
torch.set_num_threads(1)
