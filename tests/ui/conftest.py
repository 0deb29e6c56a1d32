"""Fixtures of the explorer's tests: a tiny pretrained zoo, built once per session, and pointing the app at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ui_support import build_image_zoo, build_tiny_zoo


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread() -> Iterator[None]:
    """One torch thread, as the explorer runs (small tensors; oversubscribed threads crawl on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with three small zoo models and their manifest."""
    folder = tmp_path_factory.mktemp("zoo")
    build_tiny_zoo(folder)
    return folder


@pytest.fixture(autouse=True)
def ui_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh start-page cache folder per test (never the user's ~/.cache)."""
    folder = tmp_path / "ui-cache"
    monkeypatch.setenv("FLOWSCOPE_UI_CACHE", str(folder))
    return folder


@pytest.fixture()
def zoo_env(tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the explorer at the tiny zoo for one test."""
    monkeypatch.setenv("FLOWSCOPE_ZOO_DIR", str(tiny_zoo))
    return tiny_zoo


@pytest.fixture(scope="session")
def image_zoo(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny zoo with tiny digits-ot and digits-cond image models and a digits classifier."""
    folder = tmp_path_factory.mktemp("image-zoo")
    build_image_zoo(folder, tiny_zoo)
    return folder


@pytest.fixture()
def image_zoo_env(image_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the explorer at the image zoo for one test."""
    monkeypatch.setenv("FLOWSCOPE_ZOO_DIR", str(image_zoo))
    return image_zoo
