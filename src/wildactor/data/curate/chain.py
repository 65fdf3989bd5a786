"""The stage chain: which stages run, in which order, and one input through all of them.

Both executors and the pipeline import this module; it imports neither, so there is no import circle.
Stage order: probe -> shots -> detect -> identity -> tracking -> viewpoint -> crops -> augment ->
idcheck -> export. (Viewpoint runs before the self-crops so that crops can be spread over views.)
"""

from __future__ import annotations

from wildactor.data.curate.augment import AugmentStage
from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.crops import CropStage
from wildactor.data.curate.detect import DetectStage
from wildactor.data.curate.export import ExportStage
from wildactor.data.curate.idcheck import IdCheckStage
from wildactor.data.curate.identity import IdentityStage
from wildactor.data.curate.probe import ProbeStage
from wildactor.data.curate.shots import ShotSplitStage
from wildactor.data.curate.stage import Item, Stage
from wildactor.data.curate.tracking import TrackStage
from wildactor.data.curate.viewpoint import ViewpointStage

STAGE_CLASSES: tuple[type[Stage], ...] = (
    ProbeStage,
    ShotSplitStage,
    DetectStage,
    IdentityStage,
    TrackStage,
    ViewpointStage,
    CropStage,
    AugmentStage,
    IdCheckStage,
    ExportStage,
)
STAGE_NAMES = tuple(c.name for c in STAGE_CLASSES)


def make_stages(config: CurateConfig, out_dir: str) -> list[Stage]:
    return [cls(config, out_dir) for cls in STAGE_CLASSES]


def check_stages(stages: list[Stage]) -> None:
    """Fail fast, before any work, on missing local model paths of the chosen back-ends."""
    for st in stages:
        check = getattr(st, "check", None)
        if check is not None:
            check()


def run_chain(stages: list[Stage], item: Item) -> tuple[list[Item], dict[str, int]]:
    """One input through every stage. Returns its final items and how many items each stage saw."""
    items = [item]
    seen: dict[str, int] = {}
    for st in stages:
        seen[st.name] = sum(1 for it in items if not it.get("reject"))
        items = st(items)
    return items, seen
