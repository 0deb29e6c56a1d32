"""Layer 9, the pretrained zoo: its manifest, its recipes and how it is built."""

__all__: list[str] = []
