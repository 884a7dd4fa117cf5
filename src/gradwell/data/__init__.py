"""Data: in-memory datasets, mini-batch loading, train/test splits, bundled datasets."""

from .loader import DataLoader, TensorDataset, train_test_split

try:  # datasets.py is being written alongside; import it plainly once it exists
    from . import datasets
except ImportError:  # pragma: no cover
    pass

__all__ = ["DataLoader", "TensorDataset", "datasets", "train_test_split"]
