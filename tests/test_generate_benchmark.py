"""The generation benchmark script: its tiny CPU run and its 5B cost estimate."""

from __future__ import annotations

import argparse
import sys

import pytest


@pytest.fixture(scope="module")
def bench(import_benchmark):
    return import_benchmark("generate")


def test_tiny_run_times_every_variant_against_the_same_baseline(bench, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["generate.py"])
    args = argparse.Namespace(
        config="tiny",
        size="64x64",
        frames=5,
        steps=3,
        repeats=1,
        threads=1,
        clock="cpu",
        max_sequence_length=16,
    )
    result = bench.run(args)
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == set(bench.VARIANTS)
    assert rows["no_refs"]["step_ratio_to_no_refs"] == 1.0
    assert all(r["ms_per_step"] > 0 and r["s_end_to_end"] >= r["s_vae_decode"] > 0 for r in rows.values())
    assert (
        result["video_tokens"] == 2 * 4 and result["reference_tokens"] == 3 * 4
    )  # 64x64: 2x2 tokens a frame


def test_5b_estimate_grows_with_reference_tokens_and_shrinks_with_half_size_references(bench):
    est = {row["name"]: row for row in bench.flop_estimates()}
    assert est["480p"]["video_tokens"] == 21 * 15 * 26
    assert est["720p"]["video_tokens"] == 31 * 22 * 40
    for row in est.values():
        half, full = row["macs_ratio_3_refs_half_size"], row["macs_ratio_3_refs_video_size"]
        assert half > 1.0  # references always add work
        assert half < full  # half-size references add less than video-size ones
        assert full < 1.1


def test_gpu_block_benchmark_runs_at_a_tiny_width_on_the_cpu(import_benchmark):
    gpu_block = import_benchmark("gpu_block")
    import torch

    result = gpu_block.run(torch.device("cpu"), layers=2, tiny=True, latent=(3, 8, 8), repeats=1)
    assert set(result["median_ms"]) == {"video", "refs_cached", "encode", "train", "train_video"}
    assert result["reference_tokens"] == 6 * 4 * 4 and result["video_tokens"] == 3 * 4 * 4
    assert result["peak_memory_GiB"].startswith("n/a")  # no made-up memory figure without CUDA
