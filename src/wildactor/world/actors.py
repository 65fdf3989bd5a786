"""Actors: identity attributes of an ActorWorld humanoid, mapped deterministically from an actor id.

The identity space is the product of the attribute vocabularies below (about half a million
identities). An integer index is sent through a fixed bijection of that space before it is decoded, so
consecutive ids look unrelated, and two different indices below `NUM_IDENTITIES` never share all
attributes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields, replace

# Attribute vocabularies. Order matters: a probe's class index is the position in its tuple.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "skin_tone": ("light", "tan", "dark"),
    "hair_colour": ("black", "brown", "blonde", "red", "grey", "blue"),
    "hair_style": ("short", "long", "ponytail"),
    "top_colour": ("red", "blue", "green", "yellow", "white", "black", "purple", "orange"),
    "top_graphic": ("none", "circle", "band", "stripe"),
    "bottom_colour": ("navy", "black", "khaki", "grey", "red", "green"),
    "shoe_colour": ("white", "black", "red", "blue"),
    "build": ("slim", "average", "broad"),
    "height": ("short", "average", "tall"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

# Linear RGB-ish albedos in [0, 1], chosen far apart so a small probe separates them under any scene light.
SKIN_RGB = {
    "light": (1.0, 0.86, 0.76),
    "tan": (0.78, 0.52, 0.31),
    "dark": (0.30, 0.18, 0.11),
}
HAIR_RGB = {
    "black": (0.06, 0.05, 0.05),
    "brown": (0.40, 0.24, 0.12),
    "blonde": (0.93, 0.80, 0.42),
    "red": (0.75, 0.22, 0.08),
    "grey": (0.68, 0.68, 0.70),
    "blue": (0.15, 0.35, 0.90),
}
TOP_RGB = {
    "red": (0.85, 0.10, 0.10),
    "blue": (0.12, 0.25, 0.85),
    "green": (0.12, 0.65, 0.20),
    "yellow": (0.95, 0.85, 0.15),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.09),
    "purple": (0.55, 0.15, 0.70),
    "orange": (0.98, 0.50, 0.05),
}
BOTTOM_RGB = {
    "navy": (0.10, 0.14, 0.40),
    "black": (0.07, 0.07, 0.07),
    "khaki": (0.76, 0.68, 0.47),
    "grey": (0.50, 0.50, 0.52),
    "red": (0.70, 0.08, 0.10),
    "green": (0.15, 0.45, 0.18),
}
SHOE_RGB = {
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
    "red": (0.90, 0.08, 0.08),
    "blue": (0.10, 0.30, 0.95),
}
# (width scale, height scale) of the body below the head; the head keeps one size, so build and height
# read as proportions and survive any camera distance.
BUILD_SCALE = {"slim": 0.74, "average": 1.0, "broad": 1.36}
HEIGHT_SCALE = {"short": 0.82, "average": 1.0, "tall": 1.18}

NUM_IDENTITIES: int = 1
for _vocab in ATTRIBUTES.values():
    NUM_IDENTITIES *= len(_vocab)

# Bijection index -> permuted index: multiplication by a unit of Z/N plus an offset.
_PERM_MUL = 1_000_003
_PERM_ADD = 271_828
_ID_RE = re.compile(r"^actor_(\d+)$")


def _check_unit() -> None:
    from math import gcd

    if gcd(_PERM_MUL, NUM_IDENTITIES) != 1:  # pragma: no cover - a constant-table bug
        raise RuntimeError("actor id permutation is not a bijection")


def _mix_digits(digits: list[int], radices: list[int]) -> list[int]:
    """Bijective mixing of mixed-radix digits: each digit is shifted by a hash of the ones before it,
    first forwards then backwards, so every attribute depends on the whole index."""
    out = list(digits)
    for order in (range(len(out)), range(len(out) - 1, -1, -1)):
        acc = 0x9E3779B1
        for k in order:
            out[k] = (out[k] + (acc >> 7)) % radices[k]
            acc = ((acc ^ (out[k] + 1)) * 0x01000193) & 0xFFFFFFFF
    return out


def actor_id(index: int) -> str:
    """The canonical actor id string of an integer index (``actor_000042``)."""
    if index < 0:
        raise ValueError(f"actor index must be >= 0, got {index}")
    return f"actor_{index:06d}"


def actor_index(actor_id_or_index: str | int) -> int:
    """Integer index of an actor id; arbitrary strings hash into the identity space."""
    if isinstance(actor_id_or_index, int):
        if actor_id_or_index < 0:
            raise ValueError(f"actor index must be >= 0, got {actor_id_or_index}")
        return actor_id_or_index
    m = _ID_RE.match(actor_id_or_index)
    if m:
        return int(m.group(1))
    digest = hashlib.sha256(actor_id_or_index.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % NUM_IDENTITIES


@dataclass(frozen=True)
class Actor:
    """One identity: the attributes a probe can read back, plus the id they came from."""

    actor_id: str
    skin_tone: str
    hair_colour: str
    hair_style: str
    top_colour: str
    top_graphic: str
    bottom_colour: str
    shoe_colour: str
    build: str
    height: str

    def __post_init__(self) -> None:
        for name in ATTRIBUTE_NAMES:
            value = getattr(self, name)
            if value not in ATTRIBUTES[name]:
                raise ValueError(f"{name}={value!r} is not one of {ATTRIBUTES[name]}")

    @classmethod
    def from_id(cls, actor_id_or_index: str | int) -> Actor:
        """Deterministic attributes of an actor id (``actor_000042``, an int, or any string)."""
        _check_unit()
        index = actor_index(actor_id_or_index)
        code = (index * _PERM_MUL + _PERM_ADD) % NUM_IDENTITIES
        radices = [len(vocab) for vocab in ATTRIBUTES.values()]
        digits = []
        for n in radices:
            code, digit = divmod(code, n)
            digits.append(digit)
        digits = _mix_digits(digits, radices)
        values = {name: vocab[d] for (name, vocab), d in zip(ATTRIBUTES.items(), digits)}
        name = actor_id_or_index if isinstance(actor_id_or_index, str) else actor_id(index)
        return cls(actor_id=name, **values)

    def attributes(self) -> dict[str, str]:
        """The identity attributes as a plain dict (no id)."""
        return {name: getattr(self, name) for name in ATTRIBUTE_NAMES}

    def attribute_indices(self) -> dict[str, int]:
        """Class index of each attribute (the probes' targets)."""
        return {name: ATTRIBUTES[name].index(getattr(self, name)) for name in ATTRIBUTE_NAMES}

    def with_attributes(self, **changes: str) -> Actor:
        """A copy with some attributes changed (the id gets a ``+edit`` suffix: it is another person)."""
        unknown = set(changes) - set(ATTRIBUTE_NAMES)
        if unknown:
            raise ValueError(f"unknown actor attributes: {sorted(unknown)}")
        return replace(self, actor_id=self.actor_id + "+edit", **changes)


def attribute_fields() -> tuple[str, ...]:
    """Field names of `Actor` that are identity attributes (everything but the id)."""
    return tuple(f.name for f in fields(Actor) if f.name != "actor_id")
