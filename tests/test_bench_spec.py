"""Actor-Bench suite files: the shipped suites validate; mistakes are reported with their location."""

from __future__ import annotations

from pathlib import Path

import pytest

from wildactor.bench.spec import AXES, SETTINGS, load_suite, suite_from_dict
from wildactor.errors import WildActorError


def test_actorworld_suite_has_75_heldout_actors_three_settings_two_axes():
    pytest.importorskip("wildactor.world")
    from wildactor.world.probe_training import TRAIN_ACTORS

    suite = load_suite("actorworld")
    assert len(suite.subjects) == 75
    for s in suite.subjects:
        assert not TRAIN_ACTORS[0] <= int(s.actor.split("_")[1]) < TRAIN_ACTORS[1]  # never seen by the probes
        assert set(s.references) == set(SETTINGS)
        assert all(len(story) == 3 for story in s.narrative)
        assert all({"scene", "motion", "clip"} <= set(p.labels) for p in s.contextual)
    items = suite.items()
    assert {(it.setting, it.axis) for it in items} == {(s, a) for s in SETTINGS for a in AXES}
    assert len({it.item_id for it in items}) == len(items)
    assert (suite.video.num_frames - 1) % 4 == 0  # a Wan-valid frame count


def test_actorworld_suite_prompts_describe_the_actors_and_its_clips_render():
    """The shipped suite is frozen (a benchmark must not move); it must still agree with ActorWorld: each
    subject's prompts describe that actor's attributes, and each prompt's stored clip renders."""
    w = pytest.importorskip("wildactor.world")
    from wildactor.bench.actorworld import render_item_clip

    suite = load_suite("actorworld")
    for s in suite.subjects:
        description = w.describe_actor(w.Actor.from_id(s.actor))
        assert description.lower() in s.contextual[0].text.lower()
    items = suite.items()
    for it in items[:: len(items) // 5]:
        clip = render_item_clip(it, num_frames=3)
        assert clip.shape == (3, suite.video.height, suite.video.width, 3)


def test_make_suite_is_deterministic(tmp_path):
    pytest.importorskip("wildactor.world")
    from wildactor.bench.actorworld import make_actorworld_suite

    a = make_actorworld_suite(num_subjects=3, seed=5)
    assert a == make_actorworld_suite(num_subjects=3, seed=5)
    assert a != make_actorworld_suite(num_subjects=3, seed=6)
    assert len(a["subjects"]) == 3 and all(len(s["contextual"]) == 4 for s in a["subjects"])


def test_template_suite_validates_and_names_its_items():
    suite = load_suite("template")
    ids = [it.item_id for it in suite.items()]
    assert "example_person__arbitrary__ctx0" in ids and "example_person__in_the_wild__nar0-2" in ids
    story = [it for it in suite.items() if it.group == "example_person__three_view__nar0"]
    assert [it.shot for it in story] == [0, 1, 2] and len({it.seed for it in story}) == 1


def _good(tmp_path: Path) -> dict:
    (tmp_path / "a.png").write_bytes(b"x")
    return {
        "name": "t",
        "subjects": [
            {
                "id": "s1",
                "references": {"arbitrary": [{"path": "a.png", "region": "body"}]},
                "contextual": ["p"],
            }
        ],
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["subjects"][0]["references"]["arbitrary"][0].update(region="bdy"),
            "subjects[0].references.arbitrary[0]: unknown region 'bdy'",
        ),
        (
            lambda d: d["subjects"][0]["references"]["arbitrary"][0].update(path="missing.png"),
            "subjects[0].references.arbitrary[0].path: file not found",
        ),
        (
            lambda d: d["subjects"][0]["references"].update(sideways=[{"path": "a.png"}]),
            "unknown setting 'sideways'",
        ),
        (lambda d: d["subjects"].append(dict(d["subjects"][0])), "duplicate subject ids: s1"),
        (
            lambda d: d["subjects"][0].update(contextual=[""]),
            "subjects[0].contextual[0]: prompt text must be a non-empty string",
        ),
        (lambda d: d["subjects"][0].pop("contextual"), "subject has no prompts"),
        (lambda d: d.update(video={"num_frames": 0}), "video: num_frames must be a positive integer"),
        (lambda d: d["subjects"][0].update(id="a__b"), "no '__'"),
    ],
)
def test_suite_errors_name_the_field(tmp_path, edit, message):
    data = _good(tmp_path)
    suite_from_dict(data, tmp_path)  # the unedited suite is valid
    edit(data)
    with pytest.raises(WildActorError) as exc:
        suite_from_dict(data, tmp_path)
    assert message in str(exc.value)


def test_unknown_suite_name_lists_the_shipped_ones():
    with pytest.raises(WildActorError, match="actorworld"):
        load_suite("no-such-suite")
