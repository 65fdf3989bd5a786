"""The module a saved WildActor folder's model_index.json names for its own components.

`diffusers.DiffusionPipeline.from_pretrained` imports a component's library module and looks up in it both the
component class and the base classes it knows how to load (``ModelMixin``); this module holds both, so that
diffusers' generic loader reads a folder written by `WildActorPipeline.save_pretrained`.
"""

from diffusers import ModelMixin

from wildactor.model.pixel_vae import PixelShuffleVAE
from wildactor.model.transformer import WildActorTransformer3DModel

__all__ = ["ModelMixin", "PixelShuffleVAE", "WildActorTransformer3DModel"]
