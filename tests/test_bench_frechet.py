"""Realism metric: the Fréchet distance's closed form, and its reading of ActorWorld clips with the probes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg

from wildactor.bench.metrics.face import BackendUnavailable
from wildactor.bench.metrics.frechet import frechet_actorworld, frechet_distance, gaussian_statistics


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("d", [1, 3, 8, 32])
def test_matches_the_scipy_closed_form_on_small_gaussians(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-7)


def test_one_dimensional_gaussians_give_the_textbook_value():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == (
        pytest.approx(9.0 + 1.0)
    )


def test_identical_sets_are_at_zero_and_a_mean_shift_adds_its_squared_length():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16))
    stats = gaussian_statistics(x)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-9)
    shift = np.zeros(16)
    shift[3] = 2.0
    shifted = gaussian_statistics(x + shift)
    assert frechet_distance(*stats, *shifted) == pytest.approx(4.0, rel=1e-9)
    farther = gaussian_statistics(x + 2 * shift)
    assert frechet_distance(*stats, *farther) > frechet_distance(*stats, *shifted)


def test_a_wider_spread_at_the_same_mean_is_a_distance_too():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    d = frechet_distance(*gaussian_statistics(x), *gaussian_statistics(3 * x))
    assert d == pytest.approx(4 * (3 - 1) ** 2, rel=0.1)  # 4 dims, std 1 vs 3


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError):
        gaussian_statistics(np.zeros((1, 4)))


def _real_clips(first: int, n: int) -> list[np.ndarray]:
    from wildactor.world import Actor, render_clip, sample_clip_spec

    rng = np.random.default_rng(first)
    return [
        render_clip(sample_clip_spec(Actor.from_id(first + k), rng, num_frames=5, size=(64, 64))).frames
        for k in range(n)
    ]


def _block_noise(clips: list[np.ndarray], std: float = 60.0, seed: int = 0) -> list[np.ndarray]:
    """Real clips with 4x4-block noise, the artefact of the linear codec."""
    rng = np.random.default_rng(seed)
    out = []
    for c in clips:
        t, h, w, _ = c.shape
        noise = rng.normal(0, std, size=(t, h // 4, w // 4, 3)).repeat(4, axis=1).repeat(4, axis=2)
        out.append(np.clip(c.astype(np.float64) + noise, 0, 255).astype(np.uint8))
    return out


def test_probe_distance_sees_block_noise_beyond_the_gap_between_two_real_sets():
    from wildactor.world.probes import load_probes

    probes = load_probes()
    real_a = _real_clips(
        300_000, 24
    )  # the floor (two real sets) shrinks as the sets grow, like any FID's bias
    real_b = _real_clips(310_000, 24)
    same = frechet_actorworld(real_a, real_a, probes)
    floor = frechet_actorworld(real_a, real_b, probes)
    noisy = frechet_actorworld(_block_noise(real_b), real_a, probes)
    assert same.value == pytest.approx(0.0, abs=1e-6)
    assert floor.value > 0
    assert noisy.value > 2 * floor.value
    assert noisy.extra["generated_clips"] == 24 and noisy.extra["feature_dim"] == 256


def test_no_probes_reports_na_not_a_number():
    result = frechet_actorworld([np.zeros((5, 64, 64, 3), np.uint8)] * 2, [np.zeros((5, 64, 64, 3), np.uint8)] * 2,
                                BackendUnavailable("actorworld-probes", "weights missing"))  # fmt: skip
    assert result.is_na and "weights missing" in result.na_reason


@pytest.mark.slow
def test_bench_run_writes_realism_oracle_near_zero_and_no_reference_at_the_floor(tmp_path):
    from wildactor.cli import main as cli

    realism = {}
    for name in ("oracle", "no-reference"):
        out = tmp_path / name
        assert (
            cli(["bench", "run", "--baseline", name, "-o", str(out), "--subjects", "1", "--no-progress"]) == 0
        )
        realism[name] = json.loads((out / "realism.json").read_text())
    oracle, noref = realism["oracle"], realism["no-reference"]
    assert oracle["clips"] == noref["clips"] >= 2
    print({k: (v["frechet_distance"]["value"], v["floor"]["value"]) for k, v in realism.items()})
    # the exact clips, apart from H.264 (the runner stores MP4): far below the floor
    assert oracle["frechet_distance"]["value"] < 0.5 * oracle["floor"]["value"]
    # the floor's own clips, through H.264
    assert noref["frechet_distance"]["value"] == pytest.approx(noref["floor"]["value"], rel=0.25)
    assert noref["floor"]["value"] == oracle["floor"]["value"]  # the floor does not depend on the run


def _run_folder(root, method: str, realism: dict | None):
    folder = root / method
    (folder / "items").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"method": method, "backends": {}}))
    for k, subject in enumerate(["s0", "s1"]):
        record = {
            "item": {"axis": "contextual", "setting": "single", "subject": subject},
            "metrics": {
                "body": {"backend": "actorworld-probes", "value": 0.5 + 0.1 * k, "by_view": {"front": 0.6}}
            },
        }
        (folder / "items" / f"{subject}.json").write_text(json.dumps(record))
    if realism is not None:
        (folder / "realism.json").write_text(json.dumps(realism))
    return folder


def test_the_bench_report_shows_each_runs_realism_and_says_na_without_it(tmp_path):
    from wildactor.bench.metrics.base import MetricResult
    from wildactor.bench.report import write_report

    fd = MetricResult("frechet_distance", "actorworld-probe-penultimate", 123.456, unit="distance")
    floor = MetricResult("frechet_distance", "actorworld-probe-penultimate", 210.5, unit="distance")
    realism = {"frechet_distance": fd.to_json(), "floor": floor.to_json(), "clips": 24}
    runs = [_run_folder(tmp_path, "ours", realism), _run_folder(tmp_path, "other", None)]
    rep = write_report(runs, tmp_path / "report")
    assert (
        rep["runs"][0]["realism"]["frechet_distance"]["value"] == 123.456
        and rep["runs"][1]["realism"] is None
    )
    md = (tmp_path / "report" / "report.md").read_text()
    table = md[md.index("## Realism") :].splitlines()
    ours = next(line for line in table if line.startswith("| ours |"))
    assert fd.format() in ours and floor.format() in ours and "| 24 |" in ours
    assert "n/a: no realism.json" in next(line for line in table if line.startswith("| other |"))
