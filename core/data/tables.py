"""Built-in datasets of more than two columns: an 8-D Gaussian mixture of our own, and real tables that ship
inside scikit-learn and statsmodels (no download at run time).

| name | rows x columns | source | licence |
|---|---|---|---|
| mixture8 | any x 8 | flowscope: 6 Gaussian components with fixed means and diagonal scales | (ours) |
| iris | 150 x 4 | Fisher (1936), scikit-learn's bundled copy (`sklearn.datasets.load_iris`) | public domain |
| wine | 178 x 13 | UCI wine recognition data (Forina et al.), scikit-learn's copy, standardised | CC BY 4.0 |
| engel | 235 x 2 | Engel's food expenditure data (Koenker & Bassett 1982), statsmodels' copy | public domain |

The real tables need the `datasets` extra (`pip install 'flowscope[datasets]'`: scikit-learn and
statsmodels); the pretrained models of them carry the data sample they are shown with, so the explorer
needs neither. A real table has a fixed number of rows: asking for n rows returns min(n, rows) of them in
a seeded random order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .loader import generated_columns

__all__ = ["TABLES", "TableInfo", "load", "load_labels", "table_info"]


@dataclass(frozen=True)
class TableInfo:
    """What a built-in table is: its column names, whether it has fresh draws, and where it comes from."""

    name: str
    columns: tuple[str, ...]
    fresh_draws: bool
    source: str
    labels: tuple[str, ...] = ()


MIXTURE_DIM, MIXTURE_COMPONENTS = 8, 6


def _mixture_parameters() -> tuple[np.ndarray, np.ndarray]:
    """Fixed means [6, 8] (std 3) and per-dimension scales [6, 8] (0.3 to 1) of the mixture."""
    rng = np.random.Generator(np.random.PCG64(20_231))
    means = 3.0 * rng.standard_normal((MIXTURE_COMPONENTS, MIXTURE_DIM))
    scales = rng.uniform(0.3, 1.0, size=(MIXTURE_COMPONENTS, MIXTURE_DIM))
    return means, scales


def _mixture(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n i.i.d. points of the 8-D mixture (equal weights), with their components."""
    means, scales = _mixture_parameters()
    rng = np.random.Generator(np.random.PCG64(seed))
    part = rng.integers(0, MIXTURE_COMPONENTS, size=n)
    return means[part] + scales[part] * rng.standard_normal((n, MIXTURE_DIM)), part


def _need(package: str) -> None:
    """A clear message when an optional package of the datasets extra is missing."""
    raise ValueError(f"this dataset ships inside {package}, which is not installed: "
                     "pip install 'flowscope[datasets]'")


def _iris() -> tuple[np.ndarray, np.ndarray]:
    """Iris's 4 measurements and species."""
    try:
        from sklearn.datasets import load_iris
    except ImportError:
        _need("scikit-learn")
    bunch = load_iris()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)


def _wine() -> tuple[np.ndarray, np.ndarray]:
    """Wine's 13 measurements, each standardised, and cultivar."""
    try:
        from sklearn.datasets import load_wine
    except ImportError:
        _need("scikit-learn")
    bunch = load_wine()
    x = np.asarray(bunch.data, dtype=np.float64)
    return (x - x.mean(0)) / x.std(0), np.asarray(bunch.target)


def _engel() -> tuple[np.ndarray, None]:
    """Engel's income and food expenditure (no labels)."""
    try:
        from statsmodels.datasets import engel
    except ImportError:
        _need("statsmodels")
    frame = engel.load_pandas().data
    return frame[["income", "foodexp"]].to_numpy(dtype=np.float64), None


_WINE_COLUMNS = ("alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
                 "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
                 "od280/od315_of_diluted_wines", "proline")
_INFO: dict[str, TableInfo] = {
    "mixture8": TableInfo("mixture8", generated_columns(MIXTURE_DIM), True,
                          "flowscope: 6 Gaussian components in 8-D",
                          tuple(f"component {k}" for k in range(MIXTURE_COMPONENTS))),
    "iris": TableInfo("iris", ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"),
                      False, "Fisher's iris (1936), scikit-learn's bundled copy; public domain",
                      ("setosa", "versicolor", "virginica")),
    "wine": TableInfo("wine", _WINE_COLUMNS, False,
                      "UCI wine recognition data, scikit-learn's bundled copy, standardised; CC BY 4.0",
                      ("class_0", "class_1", "class_2")),
    "engel": TableInfo("engel", ("income", "foodexp"), False,
                       "Engel's food expenditure data, statsmodels' bundled copy; public domain"),
}
_FIXED: dict[str, Callable[[], tuple[np.ndarray, np.ndarray | None]]] = {"iris": _iris, "wine": _wine,
                                                                        "engel": _engel}

#: The built-in tables, in a stable order.
TABLES: tuple[str, ...] = tuple(_INFO)


def table_info(name: str) -> TableInfo:
    """Columns, draws and source of a built-in table; ValueError naming the valid ones for another name."""
    if name not in _INFO:
        raise ValueError(f"unknown table {name!r}; valid names: {', '.join(TABLES)}")
    return _INFO[name]


def load(name: str, n: int, seed: int) -> np.ndarray:
    """n rows of a built-in table as float64 [n', D]: fresh i.i.d. draws (mixture8), or min(n, rows) rows of
    a real table in a random order given by the seed."""
    return _rows(name, n, seed)[0]


def load_labels(name: str, n: int, seed: int) -> np.ndarray:
    """The class indices [n'] of `load(name, n, seed)`'s rows (ValueError for a table without labels)."""
    labels = _rows(name, n, seed)[1]
    if labels is None:
        raise ValueError(f"table {name!r} has no labels")
    return labels


def _rows(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows and labels of a table, drawn or ordered by the seed."""
    info = table_info(name)
    if info.fresh_draws:
        return _mixture(n, seed)
    rows, labels = _FIXED[name]()
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(rows))[:n]
    return rows[order], None if labels is None else labels[order]
