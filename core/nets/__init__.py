"""Layer 3, velocity networks: the MLP and the U-Net, their configs and how one is sized to the data."""

__all__: list[str] = []
