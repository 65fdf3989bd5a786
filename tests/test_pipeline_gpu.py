"""WildActorPipeline on CUDA in bf16 (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from wildactor.default_model import build_tiny_pipeline, synthetic_example_actor

pytestmark = pytest.mark.gpu

CALL = dict(height=64, width=64, num_frames=5, num_inference_steps=3, max_sequence_length=16, seed=3)


def _cuda_bf16_pipeline():
    pipe = build_tiny_pipeline(0)
    pipe.transformer.to(torch.bfloat16)
    pipe.to("cuda")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_bf16_cuda_cache_matches_recomputed_references():
    pipe = _cuda_bf16_pipeline()
    refs = synthetic_example_actor()
    cached = pipe(["a walk"], refs, output_type="latent", **CALL).frames[0]
    recomputed = pipe(["a walk"], refs, output_type="latent", use_reference_cache=False, **CALL).frames[0]
    assert cached.device.type == "cuda" and cached.dtype == torch.float32
    torch.testing.assert_close(cached, recomputed, rtol=0, atol=1e-2)


def test_cuda_frames_are_reproducible_and_decoded_in_float32():
    pipe = _cuda_bf16_pipeline()
    assert pipe.vae.dtype == torch.float32
    a = pipe(["a walk"], synthetic_example_actor(), **CALL).frames[0]
    b = pipe(["a walk"], synthetic_example_actor(), **CALL).frames[0]
    assert a.shape == (5, 64, 64, 3)
    assert (a == b).all()
