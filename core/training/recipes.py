"""Named training recipes for points (tables and the 2-D toys): the library's default, and a quick variant for a
live training in the explorer.

Why: `flowscope train` and the Train page each chose their own steps and width without saying why, so one data
set gave two different models. There is one recipe, the core's defaults (`TrainConfig()`, `MLPConfig`), and
one named variant that trades steps for time where a person watches the training; each caller says which it
uses. (The zoo pins its own recipe, `zoo.registry.recipe`, so that its files rebuild exactly.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..nets.models import MLPConfig
from .loop import TrainConfig

__all__ = ["DEFAULT", "QUICK", "RECIPES", "Recipe"]


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its name, the optimisation settings, the MLP's width and depth, and what it is for."""

    name: str
    config: TrainConfig
    width: int
    depth: int
    why: str

    def model(self, dim: int) -> MLPConfig:
        """The recipe's MLP for data of `dim` columns."""
        return MLPConfig(dim=dim, width=self.width, depth=self.depth)


#: The library's recipe (`flowscope train`'s defaults): 6,000 steps of batch 512, an MLP of width 64 and depth 3.
DEFAULT = Recipe("default", TrainConfig(), MLPConfig.width, MLPConfig.depth,
                 "the library's defaults: W2 within ~1.1x its floor on the 2-D toys (issue 18's measurements)")
#: The quick recipe (the Train page's): a third of the steps on half the batch, the same network, so that a live
#: training on one CPU thread takes seconds; its samples are somewhat blurrier than the default's.
QUICK = Recipe("quick", replace(TrainConfig(), steps=2000, batch_size=256), MLPConfig.width, MLPConfig.depth,
               "a third of the default's steps on half its batch (about a sixth of its work), for a live training "
               "on one CPU thread; somewhat blurrier samples")
#: The recipes by name.
RECIPES = {recipe.name: recipe for recipe in (DEFAULT, QUICK)}
