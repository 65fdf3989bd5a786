"""benchmarks/reference_use.py and benchmarks/denoising.py run end to end on a tiny model and a tiny world."""

from __future__ import annotations

import json
import sys

import pytest

from wildactor.default_model import build_tiny_pipeline
from wildactor.world.make import WorldConfig, make_world


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    cfg = WorldConfig(actors=3, clips_per_actor=1, num_frames=5, size=32, ref_size=32, heldout_fraction=0.67)
    make_world(cfg, root / "data", progress=False)
    build_tiny_pipeline(0, max_sequence_length=16).save_pretrained(root / "model")
    return root


def _run(import_benchmark, monkeypatch, name: str, root, *extra: str) -> dict:
    out = root / f"{name}.json"
    argv = [name, "--model", str(root / "model"), "--data", str(root / "data"), "--threads", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, *extra, "--out", str(out)])
    import_benchmark(name).main()
    return json.loads(out.read_text())


def test_denoising_reports_the_do_nothing_baseline_exactly(tiny, import_benchmark, monkeypatch):
    result = _run(import_benchmark, monkeypatch, "denoising", tiny, "--clips", "2", "--steps", "2")
    summary = result["summary"]
    assert result["clips"] == 2
    # z_t / (1 - t) - z_0 = t / (1 - t) * noise: its mean square is (t / (1 - t))^2 up to sampling noise
    assert summary["input_mse@0.5"]["mean"] == pytest.approx(1.0, rel=0.2)
    assert summary["input_mse@0.2"]["mean"] == pytest.approx(0.0625, rel=0.2)
    assert all(s["mean"] >= 0 for s in summary.values())


def test_reference_use_compares_own_and_other_actors_references(tiny, import_benchmark, monkeypatch):
    result = _run(import_benchmark, monkeypatch, "reference_use", tiny, "--clips", "2")
    assert result["actors"] == 2 and result["clips"] == 2
    gains = {k for k in result["summary"] if k.startswith("identity_gain@")}
    assert gains == {"identity_gain@0.95", "identity_gain@0.8", "identity_gain@0.5"}
