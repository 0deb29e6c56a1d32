"""The pretrained models (safetensors + manifest.json), shipped as package data so that checkouts and
installed wheels find them the same way; built by `flowscope zoo build`."""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
