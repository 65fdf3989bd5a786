"""The WildActor model: Wan2.2 video DiT + AIPA + I-RoPE + reference-only LoRA."""

from wildactor.model.aipa import AIPAAttnProcessor, ReferenceCache, ReferenceLoRA
from wildactor.model.irope import IRoPEConfig, reference_coordinates, rotary_tables, video_coordinates
from wildactor.model.transformer import WildActorTransformer3DModel, reference_lora_parameter_count

__all__ = [
    "AIPAAttnProcessor",
    "IRoPEConfig",
    "ReferenceCache",
    "ReferenceLoRA",
    "WildActorTransformer3DModel",
    "reference_coordinates",
    "reference_lora_parameter_count",
    "rotary_tables",
    "video_coordinates",
]
