"""Named training recipes: for points (tables and the 2-D toys) and for images, the library's default and a quick
variant for a live training in the explorer.

Why: `flowscope train` and the Train page each chose their own steps and width without saying why, so one data
set gave two different models. There is one recipe, the core's defaults (`TrainConfig()`, `MLPConfig`), and
one named variant that trades steps for time where a person watches the training; each caller says which it
uses. (The zoo pins its own recipe, `zoo.registry.recipe`, so that its files rebuild exactly.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..nets.models import MLPConfig
from ..nets.unet import UNetConfig
from .loop import TrainConfig

__all__ = ["DEFAULT", "IMAGES", "IMAGES_QUICK", "QUICK", "RECIPES", "ImageRecipe", "Recipe"]


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


@dataclass(frozen=True)
class ImageRecipe:
    """A training recipe for images: its name, the optimisation settings, the U-Net's base width, what it is for."""

    name: str
    config: TrainConfig
    base: int
    why: str

    def model(self, channels: int, height: int, width: int) -> UNetConfig:
        """The recipe's U-Net for images of that shape."""
        return UNetConfig(channels, height, width, base=self.base)


#: The image recipe (`flowscope train` on images, and the zoo's digits models): 4,000 steps of batch 128, AdamW lr
#: 1e-3 after 200 warm-up steps, a U-Net of base width 32.
IMAGES = ImageRecipe("images", replace(TrainConfig(), steps=4000, batch_size=128, lr=1e-3, warmup_steps=200),
                     UNetConfig.base, "the digits models' recipe: FD within 1.2x the held-out floor (issue 14)")
#: The quick image recipe (the Train page's): 600 steps of batch 64, the same network and rate, so that a live
#: training on one CPU thread takes a minute or two; its samples are rougher than the default's.
IMAGES_QUICK = ImageRecipe("images-quick", replace(IMAGES.config, steps=600, batch_size=64, warmup_steps=60),
                           IMAGES.base, "600 steps of batch 64 (about a thirteenth of the image recipe's work), for a "
                           "live training on one CPU thread; rougher samples")
#: The recipes by name.
RECIPES: dict[str, Recipe | ImageRecipe] = {recipe.name: recipe for recipe in (DEFAULT, QUICK, IMAGES, IMAGES_QUICK)}
