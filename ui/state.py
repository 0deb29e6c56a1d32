"""Session state and caches: the selected model, this session's own models, cached zoo loaders and results.

Isolation rule: what a user uploads or trains lives in `st.session_state` only (never a module global or an
st.cache_*), so two browser sessions never see each other's data or models. Shared caches hold only the
pretrained zoo (st.cache_resource, never mutated) and arrays computed from it (st.cache_data, keyed by the
model's name, its file's modification time and the settings).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from flowscope import FlowModel
from flowscope.data.datasets import ALL_DATASETS, DATASETS, dataset_columns, dataset_labels, make_dataset, make_labelled
from flowscope.data.images import IMAGE_DATASETS
from flowscope.data.loader import generated_columns
from flowscope.evaluation.classifier import ImageClassifier, load_classifier
from flowscope.zoo import registry as zoo

from . import image_compute
from .layout import MODEL_KEY

T = TypeVar("T")

SESSION_MODELS = "session_models"
_MEMO = "_memo"
_MEMO_SIZE = 48
#: Points of a toy dataset that the views use as "the data" (exact fields, W2 reference).
VIEW_POINTS = 5000
#: Preferred model to show first.
DEFAULT_ZOO_MODEL = "moons-ot"
_counter = itertools.count(1)


@dataclass
class ModelView:
    """What every view needs about the model it shows.

    Attributes:
        key: "zoo:<name>" for a pretrained model, "mine:<n>" for one of this session's models.
        label: what the menus show.
        flow: the model (a shared zoo object must never be mutated).
        data: the data it is shown against, data coordinates, shuffled [n, D] (D = flow.dim).
        dataset: the data's name.
        cache_id: identifies the model and data in caches (zoo: name and file time).
        info: manifest metrics or training summary, for captions.
        data_labels: for a conditional model, the class index of each row of `data` [n] (int64) when known,
            else None (its exact class fields then cannot be drawn; its samples still can).
    """

    key: str
    label: str
    flow: FlowModel
    data: np.ndarray
    dataset: str
    cache_id: str
    info: dict[str, Any] = field(default_factory=dict)
    data_labels: np.ndarray | None = None

    @property
    def conditional(self) -> bool:
        """Whether the model takes a class label (its views then offer a class and a guidance scale)."""
        return self.flow.conditional

    @property
    def is_zoo(self) -> bool:
        """Whether this is a shared pretrained model."""
        return self.key.startswith("zoo:")

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The data's column names when known: recorded with the model, or a built-in table's; else None."""
        names = self.flow.info.get("columns")
        if isinstance(names, list | tuple) and len(names) == self.flow.dim and all(isinstance(n, str) for n in names):
            return tuple(names)
        if self.dataset in ALL_DATASETS and self.dataset not in DATASETS:
            known = dataset_columns(self.dataset)
            return known if len(known) == self.flow.dim else None
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        """A name per data column: the known ones, else the core's names of unnamed columns (x, y or c1, c2, ...)."""
        return self.columns or generated_columns(self.flow.dim)


def zoo_folder() -> Path:
    """The pretrained models' folder: $FLOWSCOPE_ZOO_DIR if set (tests, custom zoos), else the package's."""
    return zoo.directory()


def _mtime(path: Path) -> float:
    """A file's modification time, or 0 when it is missing (cache keys change when a file is rebuilt)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False, max_entries=4)
def _entries(folder: str, mtime: float) -> list[zoo.ZooEntry]:
    """The manifest's entries, cached until the manifest changes."""
    return zoo.entries(Path(folder))


def zoo_entries() -> tuple[list[zoo.ZooEntry], str | None]:
    """(entries, None), or ([], a message saying why there is no zoo and how to build it)."""
    folder = zoo_folder()
    try:
        return _entries(str(folder), _mtime(folder / zoo.MANIFEST)), None
    except zoo.ZooError as err:
        return [], str(err)


@st.cache_resource(show_spinner=False, max_entries=64)
def _zoo_model(folder: str, name: str, mtime: float) -> FlowModel:
    """A validated zoo model, loaded once per file version and shared by all sessions (never mutated)."""
    return zoo.load(name, Path(folder))


def zoo_model(entry: zoo.ZooEntry) -> FlowModel:
    """Load a zoo model; raises zoo.ZooError with a readable message when it is missing or corrupt."""
    folder = zoo_folder()
    return _zoo_model(str(folder), entry.name, _mtime(folder / entry.file))


@st.cache_resource(show_spinner=False, max_entries=2)
def _classifier(file: str, mtime: float) -> ImageClassifier:
    """A classifier file, loaded once per version and shared by all sessions (never mutated)."""
    return load_classifier(file)


def digits_classifier() -> tuple[ImageClassifier | None, str]:
    """(the zoo's digits classifier, "") when its file is there and readable, else (None, why): a page view never
    trains one (that takes a while; `flowscope zoo build` writes it)."""
    file = zoo_folder() / zoo.CLASSIFIERS["digits"]
    if not file.is_file():
        return None, f"the zoo has no digits classifier ({file.name}; `flowscope zoo build --only digits-ot` writes it)"
    try:
        return _classifier(str(file), _mtime(file)), ""
    except ValueError as err:
        return None, str(err)


@st.cache_data(show_spinner=False, max_entries=1)
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The built-in digits' held-out images [n, 1, 8, 8] and labels (no digits model here trained on them)."""
    held_out = image_compute.held_out_digits()[1]
    assert held_out.labels is not None
    return held_out.images, held_out.labels


@st.cache_data(show_spinner=False, max_entries=32)
def toy_data(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Points of a built-in dataset (cached; the same for everyone)."""
    return make_dataset(name, n, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def toy_labelled(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(points, class index per point, class names) of a built-in dataset with natural labels: the points of
    `toy_data` for the same name, n and seed (cached; the same for everyone)."""
    labelled = make_labelled(name, n, seed=seed)
    return labelled.x, labelled.y, labelled.names


@st.cache_data(show_spinner=False, max_entries=256)
def _shared_memo(kind: str, cache_id: str, settings: tuple[Any, ...], _compute: Callable[[], Any]) -> Any:
    """Results computed from zoo models, shared across sessions, keyed by kind, model and settings."""
    return _compute()


@st.cache_data(show_spinner=False, max_entries=16)
def _shared_frames(kind: str, cache_id: str, settings: tuple[Any, ...], _compute: Callable[[], Any]) -> Any:
    """Like `_shared_memo` for the t sliders' frames (a few MB each): fewer of them are kept."""
    return _compute()


#: Kinds of result that are a slider's frames (kept in smaller caches: FRAMES_KEPT per session).
FRAMES_SUFFIX, FRAMES_KEPT = "_frames", 4


def memo(kind: str, view: ModelView, settings: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """compute() once per (kind, model, settings): shared for zoo models, per session for the session's own.

    Frames of a t slider (kinds ending in "_frames", a few MB each) have caches of their own, smaller ones,
    so that moving the probe around many times cannot fill the server's memory.
    """
    frames = kind.endswith(FRAMES_SUFFIX)
    if view.is_zoo:
        result: T = (_shared_frames if frames else _shared_memo)(kind, view.cache_id, settings, compute)
        return result
    cache: OrderedDict[tuple[Any, ...], Any] = st.session_state.setdefault(_MEMO + FRAMES_SUFFIX if frames else _MEMO,
                                                                           OrderedDict())
    key = (kind, view.cache_id, settings)
    if key in cache:
        cache.move_to_end(key)
        value: T = cache[key]
        return value
    value = compute()
    cache[key] = value
    while len(cache) > (FRAMES_KEPT if frames else _MEMO_SIZE):
        cache.popitem(last=False)
    return value


# --- this session's own models --------------------------------------------------------------------------


def session_models() -> dict[str, ModelView]:
    """This session's trained and uploaded models, by key (in st.session_state only)."""
    models: dict[str, ModelView] = st.session_state.setdefault(SESSION_MODELS, {})
    return models


def _new_view(flow: FlowModel, data: np.ndarray, label: str, dataset: str, info: dict[str, Any] | None,
              labels: np.ndarray | None = None) -> ModelView:
    """A session model with a fresh key; the data (and their labels) are shuffled once for the views (no
    Streamlit calls). Labels are kept for a conditional model only, and only one per data row."""
    key = f"mine:{next(_counter)}"
    order = np.random.default_rng(0).permutation(len(data))
    kept = None
    if flow.conditional and labels is not None and len(labels) == len(data):
        kept = np.asarray(labels, dtype=np.int64)[order]
    return ModelView(key=key, label=f"{label} (this session)", flow=flow, data=np.asarray(data)[order],
                     dataset=dataset, cache_id=key, info=dict(info or {}), data_labels=kept)


def add_session_model(flow: FlowModel, data: np.ndarray, label: str, dataset: str,
                      info: dict[str, Any] | None = None, labels: np.ndarray | None = None) -> ModelView:
    """Keep a model in this session and select it (`labels`: the class of each data row, conditional models)."""
    view = _new_view(flow, data, label, dataset, info, labels)
    session_models()[view.key] = view
    st.session_state[MODEL_KEY] = view.key
    return view


# --- a training running in this session ------------------------------------------------------------------
#
# A training runs in a background job (`jobs`), not in a page run: it goes on while the user opens other pages.
# Its worker keeps the model with plain Python on the session's own dict of models, which it took from the
# session when the training was submitted (`new_session_model`, no Streamlit call); the session's next page run
# collects the finished job and selects its model (`widgets.training_status`).

LAST_TRAINED = "train_last"


def new_session_model(models: dict[str, ModelView], flow: FlowModel, data: np.ndarray, label: str, dataset: str,
                      info: dict[str, Any], labels: np.ndarray | None = None) -> ModelView:
    """Keep a trained model in a session's dict of models (no Streamlit calls: this runs in a worker thread)."""
    view = _new_view(flow, data, label, dataset, info, labels)
    models[view.key] = view
    return view


# --- the selected model ----------------------------------------------------------------------------------


def model_options() -> dict[str, str]:
    """Every model a user can pick: key -> label (pretrained first, then this session's)."""
    entries, _ = zoo_entries()
    options = {f"zoo:{e.name}": f"{e.name}  ({e.dataset}, {e.path})" for e in entries}
    options.update({key: view.label for key, view in session_models().items()})
    return options


def image_model_options() -> dict[str, str]:
    """The image models a user can pick: key -> label (the zoo's models of a built-in image dataset, then this
    session's image models)."""
    entries, _ = zoo_entries()
    options = {f"zoo:{e.name}": f"{e.name}  ({e.dataset}, {e.path})" for e in entries if e.dataset in IMAGE_DATASETS}
    options.update({key: view.label for key, view in session_models().items() if view.flow.image is not None})
    return options


def model_datasets() -> dict[str, str]:
    """key -> dataset name of every model (to pair models trained on the same data)."""
    entries, _ = zoo_entries()
    datasets = {f"zoo:{e.name}": e.dataset for e in entries}
    datasets.update({key: view.dataset for key, view in session_models().items()})
    return datasets


def default_key(options: dict[str, str]) -> str | None:
    """The model shown before the user picks one: moons-ot if present, else the first one."""
    if f"zoo:{DEFAULT_ZOO_MODEL}" in options:
        return f"zoo:{DEFAULT_ZOO_MODEL}"
    return next(iter(options), None)


def select(key: str) -> None:
    """Make `key` the model the views show (used by the gallery's buttons, as a callback)."""
    st.session_state[MODEL_KEY] = key


def model_data(flow: FlowModel, dataset: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The data a zoo model is shown against and, for a conditional model, their labels when known.

    VIEW_POINTS of its toy dataset (with their natural labels when those are the model's classes), else
    the sample it carries (the pretrained tables', with `flow.data_labels`), else none (the page then says
    it cannot be drawn).
    """
    carried = None if flow.data is None else flow.data.detach().cpu().numpy()
    carried_labels = None
    if flow.conditional and flow.data_labels is not None and carried is not None \
            and len(flow.data_labels) == len(carried):
        carried_labels = flow.data_labels.detach().cpu().numpy().astype(np.int64)
    if dataset in DATASETS:
        if not flow.conditional:
            return toy_data(dataset, VIEW_POINTS, 0), None
        if dataset_labels(dataset) == flow.labels:
            points, labels, _ = toy_labelled(dataset, VIEW_POINTS, 0)
            return points, labels
        if carried is None:
            return toy_data(dataset, VIEW_POINTS, 0), None
    if carried is not None:
        return carried, carried_labels
    return np.empty((0, flow.dim), dtype=np.float32), None


def resolve(key: str) -> ModelView:
    """The ModelView of a key; raises zoo.ZooError (missing/corrupt zoo model) or KeyError (unknown key)."""
    if key.startswith("mine:"):
        return session_models()[key]
    name = key.removeprefix("zoo:")
    entries, message = zoo_entries()
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        raise zoo.ZooError(message or f"no zoo model named {name!r}")
    flow = zoo_model(entry)
    data, labels = model_data(flow, entry.dataset)
    cache_id = f"{zoo_folder() / entry.file}@{_mtime(zoo_folder() / entry.file)}"
    return ModelView(key=key, label=entry.name, flow=flow, data=data, dataset=entry.dataset, cache_id=cache_id,
                     info={"metrics": entry.metrics, "path": entry.path, "coupling": entry.coupling,
                           "source": entry.source}, data_labels=labels)
