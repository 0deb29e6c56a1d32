"""Layer 1, the mathematics: probability paths, couplings, Gaussians, the normaliser, image shapes, grids.

Imports nothing of flowscope's; everything else may import it."""

__all__: list[str] = []
