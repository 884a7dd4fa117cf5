import pytest

torch = pytest.importorskip("torch", reason="the torch doctor's tests need PyTorch")
# one thread: the tiny models of these tests run several times faster than with a pool of
# threads competing for the shared cores
torch.set_num_threads(1)
