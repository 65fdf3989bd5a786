"""Prompts from labels: natural sentences for clips, and 3-shot storylines for one actor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildactor.data.schema import angular_distance, view_bin
from wildactor.world.actors import Actor
from wildactor.world.clips import ClipSpec, sample_clip_spec
from wildactor.world.motions import MOTION_KINDS, Motion
from wildactor.world.scenes import SCENE_KINDS, Scene

_SKIN = {"light": "light-skinned", "tan": "tan-skinned", "dark": "dark-skinned"}
_BUILD = {"slim": "slim", "average": "", "broad": "broad-shouldered"}
_HEIGHT = {"short": "short", "average": "", "tall": "tall"}
_HAIR = {"short": "short {c} hair", "long": "long {c} hair", "ponytail": "a {c} ponytail"}
_BOTTOM = {
    "navy": "navy trousers",
    "black": "black trousers",
    "khaki": "khaki trousers",
    "grey": "grey trousers",
    "red": "red trousers",
    "green": "green trousers",
}
_GRAPHIC = {
    "none": "",
    "circle": " with a {c} circle on the front",
    "band": " with a {c} band across the chest",
    "stripe": " with a {c} vertical stripe on the front",
}
_MOTION = {
    "idle": "stands still",
    "walk_in_place": "walks in place",
    "walk_across": "walks across",
    "turn_around": "turns around",
    "wave": "waves",
    "jump": "jumps up",
}
_SCENE = {
    "studio": "in a photo studio",
    "beach": "on a sandy beach",
    "forest": "in a forest",
    "city_street": "on a city street",
    "snow": "in a snowy field",
    "night": "in a park",
}
_SCENE_ACROSS = {
    "studio": "a photo studio",
    "beach": "a sandy beach",
    "forest": "a forest clearing",
    "city_street": "a city street",
    "snow": "a snowy field",
    "night": "a park",
}
_LIGHT = {
    "softbox": "under soft studio light",
    "spotlight": "under a spotlight",
    "daylight": "in bright daylight",
    "overcast": "on an overcast day",
    "sunset": "at sunset",
    "lamplight": "at night under street lamps",
    "moonlight": "at night in the moonlight",
}
_VIEW_START = {
    "front": "facing the camera",
    "side": "seen from the side",
    "back": "with their back to the camera",
}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def describe_actor(actor: Actor) -> str:
    """Noun phrase naming every identity attribute: 'a tall slim dark-skinned person with ...'."""
    adjectives = " ".join(
        w for w in (_HEIGHT[actor.height], _BUILD[actor.build], _SKIN[actor.skin_tone]) if w
    )
    hair = _HAIR[actor.hair_style].format(c=actor.hair_colour)
    print_colour = "black" if actor.top_colour in ("white", "yellow", "orange") else "white"
    graphic = _GRAPHIC[actor.top_graphic].format(c=print_colour)
    return (
        f"a {adjectives} person with {hair}, wearing {_article(actor.top_colour)} {actor.top_colour} t-shirt{graphic}, "
        f"{_BOTTOM[actor.bottom_colour]} and {actor.shoe_colour} shoes"
    )


def _motion_phrase(spec: ClipSpec) -> str:
    m = spec.motion
    if m.kind == "walk_across":
        return f"walks across {_SCENE_ACROSS[spec.scene.kind]}"
    if m.kind == "wave":
        return f"waves their {m.arm} hand {_SCENE[spec.scene.kind]}"
    if m.kind == "turn_around":
        end = m.yaw_at(1.0)
        start_view = view_bin(m.yaw_at(0.0))
        if angular_distance(end, 0.0) <= 45.0:
            tail = "turns around to face the camera"
        elif angular_distance(end, 180.0) <= 45.0:
            tail = "turns away from the camera"
        else:
            tail = "turns to the side"
        light = _LIGHT[spec.scene.lighting]
        return f"stands {_SCENE[spec.scene.kind]} {light}, {_VIEW_START[start_view]}, then {tail}"
    return f"{_MOTION[m.kind]} {_SCENE[spec.scene.kind]}"


def clip_prompt(spec: ClipSpec, describe: bool = True) -> str:
    """One sentence for a clip, from its labels only. With describe=False the actor is 'a person'."""
    who = describe_actor(spec.actor) if describe else "a person"
    sentence = f"{who} {_motion_phrase(spec)}"
    if spec.motion.kind != "turn_around":
        sentence += f" {_LIGHT[spec.scene.lighting]}, {_VIEW_START[view_bin(spec.motion.yaw_at(0.0))]}"
    return sentence[0].upper() + sentence[1:] + "."


def prompt_from_labels(labels: dict, describe: bool = True) -> str:
    """`clip_prompt` of a rendered clip, rebuilt from its label file (`Clip.label_dict`): the same world can
    be given either kind of prompt without rendering it again."""
    spec = ClipSpec(
        actor=Actor.from_id(labels["actor_id"]),
        motion=Motion(**labels["motion_params"]),
        scene=Scene(kind=labels["scene"], lighting=labels["lighting"]),
    )
    return clip_prompt(spec, describe=describe)


@dataclass(frozen=True)
class Storyline:
    """Three shots of one actor (the Sequential Narrative axis): specs and their prompts."""

    actor: Actor
    shots: tuple[ClipSpec, ...]
    prompts: tuple[str, ...]


def make_storyline(actor: Actor, rng: np.random.Generator, num_shots: int = 3, **clip_kwargs) -> Storyline:
    """A storyline: distinct scenes and motions; the first prompt describes the actor, later ones say
    'the same person'."""
    if not 1 <= num_shots <= min(len(SCENE_KINDS), len(MOTION_KINDS)):
        raise ValueError(
            f"num_shots must be in [1, {min(len(SCENE_KINDS), len(MOTION_KINDS))}], got {num_shots}"
        )
    scenes = rng.permutation(SCENE_KINDS)[:num_shots]
    motions = rng.permutation(MOTION_KINDS)[:num_shots]
    shots, prompts = [], []
    for k, (scene, motion) in enumerate(zip(scenes, motions)):
        spec = sample_clip_spec(actor, rng, motion=str(motion), scene=str(scene), **clip_kwargs)
        text = clip_prompt(spec, describe=(k == 0))
        if k > 0:
            text = ("Then the same person " if k == 1 else "Finally the same person ") + text[
                len("A person ") :
            ]
        shots.append(spec)
        prompts.append(text)
    return Storyline(actor=actor, shots=tuple(shots), prompts=tuple(prompts))
