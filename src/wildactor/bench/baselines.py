"""Reference baselines that show the metrics rank sensibly.

- `pasted`: the first reference image, fitted into the frame, copied into every frame. Perfect pixels of the
  reference, no motion, no prompt following: copy-paste ~1 and motion ~0 expose it.
- `no-reference`: follows the prompt but ignores the references. On ActorWorld it is exact: the prompt's clip
  rendered with a different (deterministic) held-out actor; elsewhere it is the model run with no references
  (`wildactor bench run --model DIR --no-references`).
- `oracle` (ActorWorld only): the prompt's clip rendered with the true actor: the ceiling of body and semantic
  scores and, as a re-posed actor, low copy-paste.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import RefImage
from wildactor.bench.spec import BenchItem
from wildactor.errors import WildActorError

BASELINES: tuple[str, ...] = ("pasted", "no-reference", "oracle")


def pasted_video(references: list[RefImage], num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3): the first body/three-view reference (else the first one) fitted on white, every frame."""
    from PIL import Image

    from wildactor.media import fit_and_pad

    if not references:
        raise WildActorError("pasted baseline needs at least one reference image")
    ref = next((r for r in references if r.region != "face"), references[0])
    frame = np.asarray(fit_and_pad(Image.fromarray(ref.image), width, height))
    return np.repeat(frame[None], num_frames, axis=0)  # (T, H, W, 3)


def baseline_video(
    name: str, item: BenchItem, references: list[RefImage], num_frames: int, height: int, width: int
) -> np.ndarray:
    """The baseline's video for one item."""
    if name == "pasted":
        return pasted_video(references, num_frames, height, width)
    if name in ("no-reference", "oracle"):
        if item.actor is None:
            raise WildActorError(
                f"the {name} baseline renders ActorWorld clips; this suite has no ActorWorld actors "
                "(for no-reference on your own subjects use --model DIR --no-references)"
            )
        from wildactor.bench.actorworld import other_actor, render_item_clip

        if height != width:
            raise WildActorError(f"ActorWorld renders square clips; got {width}x{height}")
        actor = other_actor(item) if name == "no-reference" else item.actor
        return render_item_clip(item, actor, num_frames=num_frames, size=height)
    raise WildActorError(f"unknown baseline {name!r} (use one of {', '.join(BASELINES)})")
