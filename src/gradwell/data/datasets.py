"""Datasets: scikit-learn's bundled real data, TensorFlow-Playground 2-D sets, CSV files,
and the California housing data of Google's Machine Learning Crash Course.

Every loader returns the same :class:`Dataset`: float32 features ``X``, targets
``y`` (int64 class labels, or float32 values for regression), feature and target
names, the task and a description.

>>> from gradwell.data.datasets import circle
>>> ds = circle(n=200, noise=0.05, seed=0)
>>> ds.X.shape, ds.X.dtype, ds.task, ds.n_classes
((200, 2), dtype('float32'), 'classification', 2)
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_file
from .csv import CSVFormatError, is_numeric, parse_numeric, read_csv_columns

Seed = int | np.random.Generator | None
TASKS = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A table of examples: ``X`` (n, d) float32, ``y`` (n,) or None, names and task.

    ``target_names`` are the class names for classification (``y`` holds their
    indices) and the target's name for regression.

    >>> import numpy as np
    >>> from gradwell.data.datasets import Dataset
    >>> ds = Dataset(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ("a", "b"), ("no", "yes"),
    ...              "classification")
    >>> len(ds), ds.n_features, ds.n_classes, ds.X.dtype
    (4, 2, 2, dtype('float32'))
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    task: str
    description: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        X = np.asarray(self.X)
        if X.ndim != 2:
            raise ValueError(f"Dataset: expected X of shape (n, d), got shape {X.shape}")
        object.__setattr__(self, "X", X.astype(np.float32, copy=False))
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        object.__setattr__(self, "target_names", tuple(str(n) for n in self.target_names))
        if len(self.feature_names) != X.shape[1]:
            raise ValueError(
                f"Dataset: expected {X.shape[1]} feature_names (one per column of X), "
                f"got {len(self.feature_names)}"
            )
        if self.task not in TASKS:
            raise ValueError(f"Dataset: expected task in {TASKS}, got {self.task!r}")
        if self.y is not None:
            y = np.asarray(self.y)
            if y.shape[:1] != X.shape[:1]:
                raise ValueError(
                    f"Dataset: expected y with {X.shape[0]} rows (like X), got shape {y.shape}"
                )
            if self.task == "classification":
                if y.size and not np.array_equal(y, np.round(y)):
                    raise ValueError("Dataset: expected integer class labels for classification")
                y = y.astype(np.int64, copy=False)
            else:
                y = y.astype(np.float32, copy=False)
            object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Dataset({label}{len(self)} examples x {self.n_features} features, {self.task}"
            + (f", {self.n_classes} classes" if self.task == "classification" else "")
            + ")"
        )

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.target_names) if self.task == "classification" else 0

    def columns(self) -> dict[str, np.ndarray]:
        """The features as a dict of named 1-D arrays (views of ``X``), e.g. for a ColumnScaler."""
        return {name: self.X[:, j] for j, name in enumerate(self.feature_names)}

    def split(
        self, test_fraction: float = 0.2, seed: Seed = 0, stratify: bool | None = None
    ) -> tuple[Dataset, Dataset]:
        """Random ``(train, test)`` split; stratified by class for classification by default.

        >>> from gradwell.data.datasets import load_iris
        >>> train, test = load_iris().split(0.2, seed=0)
        >>> len(train), len(test), sorted(np.bincount(test.y).tolist())
        (120, 30, [10, 10, 10])
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"split: expected 0 < test_fraction < 1, got {test_fraction!r}")
        rng = _rng(seed, "split")
        if stratify is None:
            stratify = self.task == "classification" and self.y is not None
        if stratify:
            if self.y is None or self.task != "classification":
                raise ValueError("split: stratify=True needs class labels (a classification y)")
            test_idx = []
            for c in np.unique(self.y):
                members = rng.permutation(np.flatnonzero(self.y == c))
                test_idx.append(members[: int(round(test_fraction * members.size))])
            test = np.sort(np.concatenate(test_idx))
        else:
            n_test = int(round(test_fraction * len(self)))
            test = np.sort(rng.permutation(len(self))[:n_test])
        mask = np.zeros(len(self), dtype=bool)
        mask[test] = True
        if mask.all() or not mask.any():
            raise ValueError(
                f"split: expected both parts non-empty, got {int(mask.sum())} test and "
                f"{int((~mask).sum())} train rows from {len(self)} (test_fraction={test_fraction})"
            )
        return self._take(~mask), self._take(mask)

    def _take(self, rows: np.ndarray) -> Dataset:
        return Dataset(
            self.X[rows],
            None if self.y is None else self.y[rows],
            self.feature_names,
            self.target_names,
            self.task,
            self.description,
            self.name,
        )


def _rng(seed: Seed, where: str) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"{where}: expected seed to be an int, a numpy Generator or None, got {seed!r}")


# ------------------------------------------------------------------ scikit-learn's data
def _from_sklearn(loader_name: str, task: str, name: str, **kwargs: Any) -> Dataset:
    try:
        from sklearn import datasets as skd
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(
            f"{name}: the bundled real datasets come with scikit-learn; install scikit-learn"
        ) from err
    bunch = getattr(skd, loader_name)(**kwargs)
    X = np.asarray(bunch.data)
    names = getattr(bunch, "feature_names", None)
    if names is None or len(names) != X.shape[1]:
        names = [f"x{j}" for j in range(X.shape[1])]
    if task == "classification":
        targets = [str(t) for t in bunch.target_names]
    else:
        targets = ["target"]
    return Dataset(X, bunch.target, tuple(names), tuple(targets), task, bunch.DESCR, name)


def load_iris() -> Dataset:
    """Fisher's iris: 150 flowers, 4 measurements (cm), 3 species.

    >>> from gradwell.data.datasets import load_iris
    >>> ds = load_iris()
    >>> ds.X.shape, ds.target_names
    ((150, 4), ('setosa', 'versicolor', 'virginica'))
    """
    return _from_sklearn("load_iris", "classification", "iris")


def load_digits() -> Dataset:
    """8x8 images of handwritten digits: 1797 examples, 64 pixel intensities 0..16, 10 classes.

    >>> from gradwell.data.datasets import load_digits
    >>> ds = load_digits()
    >>> ds.X.shape, ds.n_classes, float(ds.X.max())
    ((1797, 64), 10, 16.0)
    """
    return _from_sklearn("load_digits", "classification", "digits")


def load_wine() -> Dataset:
    """Wine recognition: 178 wines, 13 chemical measurements on very different scales, 3 cultivars.

    >>> from gradwell.data.datasets import load_wine
    >>> ds = load_wine()
    >>> ds.X.shape, ds.feature_names[-1]
    ((178, 13), 'proline')
    """
    return _from_sklearn("load_wine", "classification", "wine")


def load_breast_cancer() -> Dataset:
    """Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant or benign.

    >>> from gradwell.data.datasets import load_breast_cancer
    >>> ds = load_breast_cancer()
    >>> ds.X.shape, ds.target_names
    ((569, 30), ('malignant', 'benign'))
    """
    return _from_sklearn("load_breast_cancer", "classification", "breast_cancer")


def load_diabetes(scaled: bool = False) -> Dataset:
    """Diabetes progression: 442 patients, 10 baseline features, a one-year progression score.

    ``scaled=False`` (default) gives the raw measurements (age in years, sex as 1/2,
    bmi, blood pressure, six blood serum values), so feature scaling is left to you;
    ``scaled=True`` gives scikit-learn's pre-centred, pre-scaled version.

    >>> from gradwell.data.datasets import load_diabetes
    >>> ds = load_diabetes()
    >>> ds.X.shape, ds.task, ds.feature_names[:3]
    ((442, 10), 'regression', ('age', 'sex', 'bmi'))
    """
    return _from_sklearn("load_diabetes", "regression", "diabetes", scaled=scaled)


# ------------------------------------------------------------ Playground-style 2-D sets
_PLAYGROUND_FEATURES = ("x1", "x2")
_RADIUS = 5.0  # the data live in about [-6, 6]^2, as in the TensorFlow Playground


def _check_n_noise(where: str, n: int, noise: float) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{where}: expected n to be an int >= 2, got {n!r}")
    if not isinstance(noise, (int, float, np.floating)) or not 0 <= noise <= 10:
        raise ValueError(f"{where}: expected noise to be a number in [0, 10], got {noise!r}")


def _classes(
    where: str,
    X: np.ndarray,
    y: np.ndarray,
    names: tuple[str, str],
    noise: float,
    rng: np.random.Generator,
    doc: str,
) -> Dataset:
    # Labels come from the clean geometry; noise then blurs the inputs, so a larger
    # noise gives more overlap between classes near the boundary.
    X = X + rng.normal(0.0, noise * _RADIUS / 2, size=X.shape)
    order = rng.permutation(len(y))
    return Dataset(X[order], y[order], _PLAYGROUND_FEATURES, names, "classification", doc, where)


def circle(n: int = 500, noise: float = 0.0, seed: Seed = 0) -> Dataset:
    """Two classes: a disc (class 1, radius < 2.5) inside a ring (class 0, radius 3.5..5).

    ``noise`` is the std of Gaussian noise added to both inputs, as a fraction of
    half the radius (0.1 -> std 0.25). Half the points are in each class.

    >>> from gradwell.data.datasets import circle
    >>> ds = circle(n=100, seed=0)
    >>> bool(((ds.y == 1) == (np.hypot(ds.X[:, 0], ds.X[:, 1]) < 3)).all())
    True
    """
    _check_n_noise("circle", n, noise)
    rng = _rng(seed, "circle")
    n_in = n // 2
    r = np.concatenate(
        [rng.uniform(0, 0.5 * _RADIUS, n_in), rng.uniform(0.7 * _RADIUS, _RADIUS, n - n_in)]
    )
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.column_stack([r * np.cos(angle), r * np.sin(angle)])
    y = np.concatenate([np.ones(n_in, np.int64), np.zeros(n - n_in, np.int64)])
    return _classes("circle", X, y, ("outside", "inside"), noise, rng, circle.__doc__ or "")


def xor(n: int = 500, noise: float = 0.0, seed: Seed = 0) -> Dataset:
    """Exclusive or: class 1 where x1 and x2 have the same sign, class 0 otherwise.

    Points are uniform in the quadrants of [-5.3, 5.3]^2 less a 0.3 band along the
    axes, so the classes are separable without noise; half the points are in each
    class. ``noise`` as in :func:`circle`.

    >>> from gradwell.data.datasets import xor
    >>> ds = xor(n=100, seed=0)
    >>> bool(((ds.y == 1) == (ds.X[:, 0] * ds.X[:, 1] > 0)).all())
    True
    """
    _check_n_noise("xor", n, noise)
    rng = _rng(seed, "xor")
    # Magnitudes padded 0.3 away from the axes; signs drawn so that exactly half the
    # points share a sign (class 1) and half do not (class 0).
    X = rng.uniform(0.0, _RADIUS, size=(n, 2)) + 0.3
    y = (np.arange(n) < n // 2).astype(np.int64)
    first = rng.choice([-1.0, 1.0], size=n)
    X[:, 0] *= first
    X[:, 1] *= np.where(y == 1, first, -first)
    return _classes("xor", X, y, ("different sign", "same sign"), noise, rng, xor.__doc__ or "")


def gaussians(n: int = 500, noise: float = 0.0, seed: Seed = 0, classes: int = 2) -> Dataset:
    """Two Gaussian clouds: class 1 around (2, 2), class 0 around (-2, -2).

    Each cloud has std ``0.5 + 3.5 * noise`` per axis (0.5 without noise: nearly
    separable; noise=1 gives heavy overlap). ``classes=k`` (k >= 3) gives k clouds
    instead, centred on a circle of radius 3.5 (class j at angle 2 pi j / k), about
    n / k points each.

    >>> from gradwell.data.datasets import gaussians
    >>> ds = gaussians(n=200, seed=0)
    >>> bool(ds.X[ds.y == 1].mean() > 1.5 and ds.X[ds.y == 0].mean() < -1.5)
    True
    >>> np.bincount(gaussians(n=300, classes=3, seed=0).y).tolist()
    [100, 100, 100]
    """
    _check_n_noise("gaussians", n, noise)
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"gaussians: expected classes to be an int >= 2, got {classes!r}")
    rng = _rng(seed, "gaussians")
    std = 0.5 + 3.5 * noise
    if classes > 2:
        y = np.arange(n, dtype=np.int64) % classes
        angle = 2 * np.pi * y / classes
        X = 3.5 * np.column_stack([np.cos(angle), np.sin(angle)])
        X = X + rng.normal(0.0, std, size=(n, 2))
        order = rng.permutation(n)
        names = tuple(f"cloud {j}" for j in range(classes))
        doc = gaussians.__doc__ or ""
        return Dataset(X[order], y[order], _PLAYGROUND_FEATURES, names, "classification", doc,
                       "gaussians")  # fmt: skip
    n_pos = n // 2
    centres = np.concatenate([np.full((n_pos, 2), 2.0), np.full((n - n_pos, 2), -2.0)])
    X = centres + rng.normal(0.0, std, size=(n, 2))
    y = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n - n_pos, np.int64)])
    order = rng.permutation(n)
    return Dataset(
        X[order],
        y[order],
        _PLAYGROUND_FEATURES,
        ("lower-left", "upper-right"),
        "classification",
        gaussians.__doc__ or "",
        "gaussians",
    )


def spiral(n: int = 500, noise: float = 0.0, seed: Seed = 0) -> Dataset:
    """Two interleaved spiral arms (1.75 turns out to radius 5), one per class.

    ``noise`` as in :func:`circle`. Hard for a linear model, easy for a small MLP.

    >>> from gradwell.data.datasets import spiral
    >>> ds = spiral(n=300, seed=1)
    >>> ds.X.shape, np.bincount(ds.y).tolist()
    ((300, 2), [150, 150])
    """
    _check_n_noise("spiral", n, noise)
    rng = _rng(seed, "spiral")
    parts, labels = [], []
    for label, count, phase in ((1, n // 2, 0.0), (0, n - n // 2, np.pi)):
        t = np.arange(count) / count
        r = t * _RADIUS
        angle = 1.75 * 2 * np.pi * t + phase
        parts.append(np.column_stack([r * np.sin(angle), r * np.cos(angle)]))
        labels.append(np.full(count, label, np.int64))
    return _classes(
        "spiral",
        np.concatenate(parts),
        np.concatenate(labels),
        ("arm 0", "arm 1"),
        noise,
        rng,
        spiral.__doc__ or "",
    )


def _regression(
    name: str, X: np.ndarray, target: np.ndarray, noise: float, rng: np.random.Generator, doc: str
) -> Dataset:
    y = target + rng.normal(0.0, noise, size=target.shape)
    return Dataset(X, y, _PLAYGROUND_FEATURES, ("y",), "regression", doc, name)


def plane(n: int = 500, noise: float = 0.0, seed: Seed = 0) -> Dataset:
    """Regression on a tilted plane: ``y = (x1 + x2) / 12`` for x uniform in [-6, 6]^2.

    The clean target lies in [-1, 1]; ``noise`` is the std of Gaussian noise added to it.

    >>> from gradwell.data.datasets import plane
    >>> ds = plane(n=50, seed=0)
    >>> bool(np.allclose(ds.y, ds.X.sum(axis=1) / 12, atol=1e-6))
    True
    """
    _check_n_noise("plane", n, noise)
    rng = _rng(seed, "plane")
    X = rng.uniform(-6.0, 6.0, size=(n, 2))
    return _regression("plane", X, X.sum(axis=1) / 12.0, noise, rng, plane.__doc__ or "")


#: (x1, x2, sign) of the bumps of :func:`multi_gaussian`: a 3 x 2 grid of alternating signs.
_BUMPS = (
    (-4.0, 2.5, 1.0),
    (0.0, 2.5, -1.0),
    (4.0, 2.5, 1.0),
    (-4.0, -2.5, -1.0),
    (0.0, -2.5, 1.0),
    (4.0, -2.5, -1.0),
)


def multi_gaussian(n: int = 500, noise: float = 0.0, seed: Seed = 0) -> Dataset:
    """Regression on six Gaussian bumps of alternating sign on a 3 x 2 grid.

    ``y = sum_k s_k exp(-|x - c_k|^2 / 2)`` for x uniform in [-6, 6]^2 (so y is in
    about [-1, 1]); ``noise`` is the std of Gaussian noise added to y.

    >>> from gradwell.data.datasets import multi_gaussian
    >>> ds = multi_gaussian(n=400, seed=0)
    >>> bool(-1.1 < ds.y.min() < 0 < ds.y.max() < 1.1)
    True
    """
    _check_n_noise("multi_gaussian", n, noise)
    rng = _rng(seed, "multi_gaussian")
    X = rng.uniform(-6.0, 6.0, size=(n, 2))
    bumps = np.asarray(_BUMPS)
    d2 = ((X[:, None, :] - bumps[None, :, :2]) ** 2).sum(axis=2)
    target = (bumps[:, 2] * np.exp(-d2 / 2.0)).sum(axis=1)
    return _regression("multi_gaussian", X, target, noise, rng, multi_gaussian.__doc__ or "")


# ------------------------------------------------------------------------------ CSV
def load_csv(
    path: str | os.PathLike,
    target: str | int | None = None,
    columns: Sequence[str] | None = None,
    task: str = "auto",
) -> Dataset:
    """Load a numeric CSV with a header row into a :class:`Dataset`.

    ``target`` names (or indexes) the target column; ``None`` loads features only
    (``y`` is None). ``columns`` chooses the feature columns and their order (all
    others but the target by default). Empty cells and ``NA``, ``NaN``, ``null``,
    ``?`` read as NaN (use ``nan_policy`` in the scalers, or the audit, to see them);
    any other non-numeric feature cell raises :class:`CSVFormatError` naming the
    row, line and column, as does a row with the wrong number of fields.

    ``task="auto"`` makes a non-numeric target (class names) or an integer target
    with at most 20 distinct values a classification (class names sorted), and
    anything else a regression; pass ``"classification"`` or ``"regression"`` to decide.

    >>> import tempfile, os
    >>> from gradwell.data.datasets import load_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.csv")
    >>> _ = open(path, "w").write('"a","b","kind"\\n1,2,cat\\n3,,dog\\n')
    >>> ds = load_csv(path, target="kind")
    >>> ds.X.tolist(), ds.y.tolist(), ds.target_names
    ([[1.0, 2.0], [3.0, nan]], [0, 1], ('cat', 'dog'))
    """
    if task not in ("auto", *TASKS):
        raise ValueError(
            f"load_csv: expected task 'auto', {TASKS[0]!r} or {TASKS[1]!r}, got {task!r}"
        )
    header, rows, lines = read_csv_columns(path)
    source = Path(path).name
    target_name: str | None = None
    if target is not None:
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            if not -len(header) <= target < len(header):
                raise KeyError(
                    f"load_csv: expected a target column index in [{-len(header)}, "
                    f"{len(header) - 1}], got {target}"
                )
            target_name = header[target]
        elif target in header:
            target_name = str(target)
        else:
            raise KeyError(
                f"load_csv: expected target column {target!r} in {source}, got columns {header}"
            )
    if columns is None:
        features = [h for h in header if h != target_name]
    else:
        features = [str(c) for c in columns]
        missing = [c for c in features if c not in header]
        if missing:
            raise KeyError(
                f"load_csv: expected columns {missing} in {source}, got columns {header}"
            )
        if target_name in features:
            raise ValueError(
                f"load_csv: column {target_name!r} is the target; drop it from columns"
            )
    if not rows:
        raise CSVFormatError(f"{source}: expected at least one data row, got only the header")
    position = {h: j for j, h in enumerate(header)}
    X = np.empty((len(rows), len(features)), dtype=np.float32)
    for k, name in enumerate(features):
        j = position[name]
        X[:, k] = parse_numeric([r[j] for r in rows], name, lines, source)
    y = None
    targets: tuple[str, ...] = ()
    kind = "regression"
    if target_name is not None:
        cells = [r[position[target_name]] for r in rows]
        y, targets, kind = _target(cells, target_name, lines, source, task)
    elif task != "auto":
        kind = task
    description = f"{source}: {len(rows)} rows, features {features}" + (
        f", target {target_name!r}" if target_name else ""
    )
    return Dataset(X, y, tuple(features), targets, kind, description, Path(path).stem)


def _target(
    cells: list[str], name: str, lines: list[int], source: str, task: str
) -> tuple[np.ndarray, tuple[str, ...], str]:
    numeric = is_numeric(cells)
    if numeric:
        values = parse_numeric(cells, name, lines, source)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise CSVFormatError(
                f"{source}: expected a value in target column {name!r}, got {cells[i]!r} in "
                f"data row {i} (line {lines[i]})"
            )
        integral = bool(np.all(values == np.round(values)))
        if task == "auto":
            task = "classification" if integral and np.unique(values).size <= 20 else "regression"
        if task == "regression":
            return values, (name,), task
        if not integral:
            i = int(np.flatnonzero(values != np.round(values))[0])
            raise CSVFormatError(
                f"{source}: expected integer class labels in target column {name!r} for "
                f"classification, got {cells[i]!r} in data row {i} (line {lines[i]})"
            )
        classes = np.unique(values)
        labels = np.searchsorted(classes, values)
        return labels, tuple(f"{c:g}" for c in classes), task
    if task == "regression":
        parse_numeric(cells, name, lines, source)  # raises, naming the first bad cell
    stripped = [c.strip() for c in cells]
    classes_s = sorted(set(stripped))
    index = {c: i for i, c in enumerate(classes_s)}
    return (
        np.array([index[c] for c in stripped], dtype=np.int64),
        tuple(classes_s),
        "classification",
    )


# ------------------------------------------------------------------ California housing
CALIFORNIA_COLUMNS = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
    "median_house_value",
)
CALIFORNIA_TARGET = "median_house_value"
_CALIFORNIA_BASE = "https://download.mlcc.google.com/mledu-datasets/"
#: split -> (file name, URL, sha256 of the Crash Course file)
CALIFORNIA_FILES = {
    "train": (
        "california_housing_train.csv",
        _CALIFORNIA_BASE + "california_housing_train.csv",
        "bb9ca4041a66e0ed691cb825188f16fdab518435c4950a080951be2fdfe30d4d",
    ),
    "test": (
        "california_housing_test.csv",
        _CALIFORNIA_BASE + "california_housing_test.csv",
        "be3f531aac5aca44fe1c04fd888b4aa68a9a69f69c05d0eb2e0473dfe702dda2",
    ),
}


def gradwell_cache_dir(folder: str | os.PathLike | None = None) -> Path:
    """Where downloads are kept: ``folder``, else ``$GRADWELL_CACHE``, else ~/.cache/gradwell."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get("GRADWELL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "gradwell"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its sha256.

    The bytes go to a temporary file in the same folder, renamed onto ``dest`` only
    once complete and verified, so an interrupted or corrupt download never leaves
    a file that looks valid.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(dest, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            digest = hashlib.sha256()
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            got = digest.hexdigest()
            if got != sha256:  # raising here leaves dest as it was
                raise OSError(
                    f"download of {url}: expected sha256 {sha256}, got {got}; the file was not kept"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise OSError(
            f"could not download {url} ({err}); check the network, or pass path= to a local copy"
        ) from err
    return dest


def load_california_housing(
    path: str | os.PathLike | None = None,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """California housing (1990 census blocks) from Google's Machine Learning Crash Course.

    Features: longitude, latitude, housing_median_age, total_rooms, total_bedrooms,
    population, households, median_income; target: median_house_value (regression).
    ``split="train"`` has 17,000 rows, ``"test"`` 3,000.

    With ``path``, that local CSV is read (header checked). Otherwise the file is
    looked up in the cache folder (``cache_dir``, else ``$GRADWELL_CACHE``, else
    ~/.cache/gradwell) and, if absent or corrupt and ``download`` is true,
    downloaded once from the Crash Course's server with a sha256 check.

    >>> from gradwell.data.datasets import load_california_housing
    >>> ds = load_california_housing("california_housing_train.csv")  # doctest: +SKIP
    >>> ds.X.shape, ds.feature_names[3]  # doctest: +SKIP
    ((17000, 8), 'total_rooms')
    """
    if split not in CALIFORNIA_FILES:
        raise ValueError(
            f"load_california_housing: expected split in {sorted(CALIFORNIA_FILES)}, got {split!r}"
        )
    name, url, sha = CALIFORNIA_FILES[split]
    if path is None:
        local = _cached(name, url, sha, gradwell_cache_dir(cache_dir), download)
    else:
        local = Path(path)
    header, _, _ = read_csv_columns(local)
    if tuple(header) != CALIFORNIA_COLUMNS:
        raise CSVFormatError(
            f"load_california_housing: expected the columns {list(CALIFORNIA_COLUMNS)} in "
            f"{local.name}, got {header}"
        )
    ds = load_csv(local, target=CALIFORNIA_TARGET, task="regression")
    return Dataset(
        ds.X,
        ds.y,
        ds.feature_names,
        ds.target_names,
        "regression",
        f"California housing ({split}), Machine Learning Crash Course: {len(ds)} census blocks; "
        f"target median_house_value in dollars",
        f"california_housing_{split}",
    )


def _cached(name: str, url: str, sha: str, folder: Path, allow_download: bool) -> Path:
    local = folder / name
    if local.is_file():
        if _sha256(local) == sha:
            return local
        if not allow_download:
            raise OSError(
                f"{local}: expected sha256 {sha}, got a different file; delete it to download "
                f"again, or pass path="
            )
    elif not allow_download:
        raise FileNotFoundError(
            f"load_california_housing: expected {name} in {folder} (download=False); "
            f"pass path= to a local copy or allow the download"
        )
    return download_file(url, local, sha)
