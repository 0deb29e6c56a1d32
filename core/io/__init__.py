"""Layer 7, files: model checkpoints (safetensors), sample files, atomic writes."""

__all__: list[str] = []
