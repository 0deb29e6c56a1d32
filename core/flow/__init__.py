"""Layer 4, the trained model: `FlowModel` (a path, a network, a normaliser and what was kept of the data)."""

__all__: list[str] = []
