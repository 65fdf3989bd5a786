"""ActorWorld: a procedural world of synthetic actors with exact labels.

    from wildactor.world import Actor, Motion, Scene, Camera, ClipSpec, render_clip, render_frame
    actor = Actor.from_id("actor_000042")
    clip = render_clip(ClipSpec(actor, Motion("turn_around", yaw=180), Scene("snow", "sunset")))
    clip.frames    # (T, 64, 64, 3) uint8
    clip.labels    # per frame: yaw, person box, face box, visibility

Probes (torch) load on first use: ``from wildactor.world.probes import load_probes``.

The modules read bottom-up, each importing only modules above it in this list (tests/test_world_imports.py):
actors, camera, scenes; body; motions; renderer; clips; prompts, references; probes, probe_training; make; cli.
"""

from wildactor.world.actors import ATTRIBUTES, NUM_IDENTITIES, Actor, actor_id
from wildactor.world.body import BodyState, Pose
from wildactor.world.camera import Camera
from wildactor.world.clips import Clip, ClipSpec, render_clip, sample_clip_spec
from wildactor.world.motions import MOTION_KINDS, Motion, sample_motion
from wildactor.world.prompts import Storyline, clip_prompt, describe_actor, make_storyline
from wildactor.world.references import VIEW_AUG_ANGLES, ActorWorldEditor, Reference, self_crop
from wildactor.world.renderer import FrameLabels, render_frame, render_scene
from wildactor.world.scenes import LIGHTINGS, SCENE_KINDS, Scene, sample_scene

__all__ = [
    "ATTRIBUTES",
    "LIGHTINGS",
    "MOTION_KINDS",
    "NUM_IDENTITIES",
    "SCENE_KINDS",
    "VIEW_AUG_ANGLES",
    "Actor",
    "ActorWorldEditor",
    "BodyState",
    "Camera",
    "Clip",
    "ClipSpec",
    "FrameLabels",
    "Motion",
    "Pose",
    "Reference",
    "Scene",
    "Storyline",
    "actor_id",
    "clip_prompt",
    "describe_actor",
    "make_storyline",
    "render_clip",
    "render_frame",
    "render_scene",
    "sample_clip_spec",
    "sample_motion",
    "sample_scene",
    "self_crop",
]
