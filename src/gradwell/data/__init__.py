"""Data: in-memory datasets, mini-batch loading, train/test splits, bundled datasets."""

from . import datasets
from .datasets import Dataset, load_csv
from .loader import DataLoader, TensorDataset, train_test_split

__all__ = ["DataLoader", "Dataset", "TensorDataset", "datasets", "load_csv", "train_test_split"]
