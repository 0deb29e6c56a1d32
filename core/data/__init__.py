"""Layer 6, data: the built-in datasets, the bundled tables, the table and image loaders, labels."""

from .datasets import (  # the built-in datasets, as `flowscope.data.NAME`
    ALL_DATASETS,
    DATASETS,
    RINGS_RADII,
    TOY_LABELS,
    Labelled,
    dataset_columns,
    dataset_hash,
    dataset_labels,
    distance_to_rings,
    fresh_draws,
    held_out_labelled,
    make_circles,
    make_dataset,
    make_labelled,
    make_moons,
    make_swiss_roll,
)

__all__ = [
    "ALL_DATASETS",
    "DATASETS",
    "TOY_LABELS",
    "Labelled",
    "dataset_columns",
    "dataset_labels",
    "fresh_draws",
    "held_out_labelled",
    "make_labelled",
    "RINGS_RADII",
    "dataset_hash",
    "distance_to_rings",
    "make_circles",
    "make_dataset",
    "make_moons",
    "make_swiss_roll",
]
