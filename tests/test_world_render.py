"""ActorWorld actors, renderer, motions and clips: determinism, identity, labels, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from wildactor.world.actors import ATTRIBUTES, NUM_IDENTITIES, Actor, actor_id
from wildactor.world.body import BodyState
from wildactor.world.camera import Camera
from wildactor.world.clips import ClipSpec, render_clip, sample_clip_spec
from wildactor.world.motions import MOTION_KINDS, Motion
from wildactor.world.renderer import render_frame, render_scene
from wildactor.world.scenes import SCENE_KINDS, Scene, sample_scene


def test_identity_space_has_over_ten_thousand_distinct_actors():
    assert NUM_IDENTITIES >= 10_000
    assert len(ATTRIBUTES) >= 8
    tuples = {tuple(Actor.from_id(i).attributes().values()) for i in range(12_000)}
    assert len(tuples) == 12_000  # every pair of ids differs in at least one attribute


def test_actor_id_maps_to_attributes_deterministically():
    assert Actor.from_id("actor_000123") == Actor.from_id(123)
    assert Actor.from_id("someone") == Actor.from_id("someone")
    assert actor_id(7) == "actor_000007"
    with pytest.raises(ValueError):
        Actor.from_id(0).with_attributes(hair_colour="green")


def test_same_seed_gives_identical_pixels_and_other_seed_does_not():
    actor = Actor.from_id(5)
    a = render_clip(sample_clip_spec(actor, np.random.default_rng(3), num_frames=4))
    b = render_clip(sample_clip_spec(actor, np.random.default_rng(3), num_frames=4))
    c = render_clip(sample_clip_spec(actor, np.random.default_rng(4), num_frames=4))
    assert a.frames.dtype == np.uint8 and a.frames.shape == (4, 64, 64, 3)
    assert np.array_equal(a.frames, b.frames)
    assert a.label_dict() == b.label_dict()
    assert not np.array_equal(a.frames, c.frames)


def test_front_only_graphic_is_invisible_from_the_back():
    base = Actor.from_id(0).with_attributes(top_colour="red", top_graphic="none")
    for graphic in ("circle", "band", "stripe"):
        printed = base.with_attributes(top_graphic=graphic)
        back = [render_frame(x, yaw=180, size=96) for x in (base, printed)]
        front = [render_frame(x, yaw=0, size=96) for x in (base, printed)]
        assert np.array_equal(back[0], back[1]), graphic
        assert (np.abs(front[0].astype(int) - front[1].astype(int)).sum(-1) > 60).sum() >= 10, graphic


def test_yaw_turns_the_actor_silhouette():
    actor = Actor.from_id(11).with_attributes(build="broad", hair_style="short")
    widths = {}
    for yaw in (0, 90, 180, 270):
        _, (lab,) = render_scene([(actor, BodyState(yaw=yaw))], Scene(), Camera(elevation=0), 128)
        x0, _, x1, _ = lab.person_box
        widths[yaw] = x1 - x0
    assert widths[0] > 1.3 * widths[90] and widths[180] > 1.3 * widths[270]
    # Left and right profiles are mirror images up to a pixel of rounding.
    left = render_frame(actor, yaw=90, scene=Scene(), camera=Camera(elevation=0), size=128)
    right = render_frame(actor, yaw=270, scene=Scene(), camera=Camera(elevation=0), size=128)
    assert not np.array_equal(left, right)


def test_turn_around_sweeps_yaw_and_faces_camera_at_the_end():
    spec = ClipSpec(actor=Actor.from_id(2), motion=Motion("turn_around", yaw=180, sweep=180), num_frames=9)
    clip = render_clip(spec)
    yaws = [lb.yaw for lb in clip.labels]
    assert yaws[0] == pytest.approx(180) and yaws[-1] == pytest.approx(0, abs=1e-6)
    assert clip.labels[0].face_visibility == pytest.approx(0, abs=1e-6)
    assert clip.labels[-1].face_visibility > 0.9


def test_labels_boxes_are_consistent():
    actor = Actor.from_id(9)
    _, (lab,) = render_scene([(actor, BodyState(yaw=20))], Scene(), Camera(), 64)
    x0, y0, x1, y1 = lab.person_box
    fx0, fy0, fx1, fy1 = lab.face_box
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert x0 <= fx0 < fx1 <= x1 and y0 <= fy0 < fy1 <= y1
    assert fy1 < y0 + 0.45 * (y1 - y0)  # the head is in the top part of the body
    assert lab.visibility == pytest.approx(1.0)


def test_walk_across_moves_and_leaves_the_frame_partially():
    spec = ClipSpec(actor=Actor.from_id(4), motion=Motion("walk_across", yaw=90, distance=2.3), num_frames=5)
    clip = render_clip(spec)
    centres = [(lb.person_box[0] + lb.person_box[2]) / 2 for lb in clip.labels]
    assert all(b > a for a, b in zip(centres, centres[1:]))
    assert clip.labels[0].visibility < 0.95 and clip.labels[2].visibility == pytest.approx(1.0)


def test_two_actors_share_the_z_buffer():
    a, b = Actor.from_id(1), Actor.from_id(2)
    front = BodyState(yaw=0, position=(0.0, 0.0, 0.5))
    behind = BodyState(yaw=0, position=(0.15, 0.0, -0.5))
    img, (la, lb) = render_scene([(a, front), (b, behind)], Scene(), Camera(), 64)
    assert la.visibility == pytest.approx(1.0)
    assert lb.visibility < 0.7
    alone = render_frame(a, front, Scene(), Camera(), 64)
    assert not np.array_equal(img, alone)


@pytest.mark.parametrize("size", [32, (48, 80), 128, 256])
def test_renderer_works_at_other_sizes(size):
    img = render_frame(Actor.from_id(3), yaw=30, size=size)
    h, w = (size, size) if isinstance(size, int) else size
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert img.std() > 5


def test_every_scene_and_motion_renders_something_different():
    rng = np.random.default_rng(0)
    imgs = [render_frame(Actor.from_id(0), scene=sample_scene(k, rng)) for k in SCENE_KINDS]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i].astype(int) - imgs[j].astype(int)).mean() > 5
    assert len(SCENE_KINDS) >= 6 and len(MOTION_KINDS) >= 6
    with pytest.raises(ValueError):
        Scene(kind="moon")
    with pytest.raises(ValueError):
        Motion(kind="fly")


def test_render_clip_accepts_an_actor_and_keywords():
    actor = Actor.from_id(1)
    a = render_clip(actor, Motion("wave"), Scene("beach", "daylight"), Camera(), num_frames=4, size=32)
    b = render_clip(ClipSpec(actor, Motion("wave"), Scene("beach", "daylight"), Camera(), 4, (32, 32)))
    assert np.array_equal(a.frames, b.frames) and a.frames.shape == (4, 32, 32, 3)
    assert not np.array_equal(a.frames[0], a.frames[1])  # the arm waves
