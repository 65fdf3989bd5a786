"""WildActor: identity-preserving human video generation (AIPA + I-RoPE on Wan2.2)."""

__version__ = "0.1.0"
