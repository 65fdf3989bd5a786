"""Lets `diffusers.DiffusionPipeline.from_pretrained` load this folder (needs the wildactor package)."""

import wildactor.diffusers_loading  # noqa: F401  (the components' library, imported before they load)
from wildactor.pipeline import WildActorPipeline

__all__ = ["WildActorPipeline"]
