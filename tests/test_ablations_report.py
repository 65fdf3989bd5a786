"""The ablation comparison (benchmarks/ablations.py): paired differences per actor, by view, refusing mismatches."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ablations(import_benchmark):
    return import_benchmark("ablations")


def _result(scores: list[float], back: list[float | None]) -> dict:
    rows = [
        {
            "actor_id": f"actor_{i}",
            "wildactor": s,
            "no_reference": 0.25,
            "wildactor_by_view": {"front": s, "side": s, "back": b},
        }
        for i, (s, b) in enumerate(zip(scores, back))
    ]
    return {"model": "m", "per_actor": rows}


def test_paired_differences_follow_the_actors_and_skip_missing_views(ablations):
    base = _result([0.5, 0.6, 0.7], [0.4, None, 0.6])
    variant = _result([0.4, 0.6, 0.5], [0.3, 0.2, None])
    table = ablations.compare({"main": base, "variant": variant})
    diff = table["variant"]["minus_main"]
    assert diff["mean"] == pytest.approx(-0.1) and diff["actors"] == 3
    back = table["variant"]["minus_by_view"]["back"]
    assert back["actors"] == 1 and back["mean"] == pytest.approx(-0.1)  # only actor_0 has both back views
    assert table["main"]["by_view"]["back"]["actors"] == 2
    md = ablations.markdown(table)
    assert md.count("\n") == 3 and "| variant |" in md


def test_other_actors_are_refused(ablations):
    base = _result([0.5, 0.6], [None, None])
    other = _result([0.5], [None])
    with pytest.raises(SystemExit, match="other actors"):
        ablations.compare({"main": base, "variant": other})
