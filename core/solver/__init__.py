"""Layer 2, solving ODEs: sampling a velocity field (torchdiffeq) and the likelihood by the change of variables."""

__all__: list[str] = []
