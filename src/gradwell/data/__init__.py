"""Data: in-memory datasets, mini-batch loading, train/test splits, bundled datasets."""

from . import datasets
from .loader import DataLoader, TensorDataset, train_test_split

__all__ = ["DataLoader", "TensorDataset", "datasets", "train_test_split"]
