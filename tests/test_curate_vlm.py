"""The curation's `vlm` viewpoint labeller on a tiny random Qwen2-VL checkpoint (no torchvision needed)."""

from __future__ import annotations

import numpy as np
import pytest

from _qwen import make_tiny_qwen
from wildactor.data.curate.viewpoint import VlmViews
from wildactor.errors import WildActorError

VIEWS = ["front", "left", "right", "back"]


def test_the_view_is_the_most_likely_of_the_four_answers(tmp_path):
    views = VlmViews(str(make_tiny_qwen(tmp_path / "qwen", VIEWS)))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    person = (20.0, 10.0, 80.0, 90.0)
    angle, backend = views(frame, person, None)
    probs = views.rater.option_probs([frame[10:90, 20:80]], VlmViews.QUESTION, VIEWS)
    assert backend == "vlm" and angle == VlmViews.ANGLES[VIEWS[int(np.argmax(probs))]]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5) and np.ptp(probs) > 0  # read from logits, not constant
    assert views(frame, None, None) == (None, "none")


def test_a_folder_that_is_not_a_qwen2vl_model_is_refused_by_name(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(WildActorError, match="viewpoint.vlm_path"):
        VlmViews(str(tmp_path))
