"""The stage contract shared by both executors, and the work item that flows between stages.

A work item is a JSON-ready dict keyed by ``clip_id``. Stages add their findings under their own key
(``probe``, ``detect``, ``identity``, ...). A stage that turns an item down sets ``reject`` to
``{"stage", "reason", "detail"}``; later stages pass rejected items through untouched. One input video
may become several items (shot splitting); every item ends in the manifest or in the rejects table.
"""

from __future__ import annotations

import traceback
from typing import Any

from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.reasons import check_reason

Item = dict[str, Any]


def reject(item: Item, stage: str, reason: str, detail: str = "") -> Item:
    """Mark an item as rejected (first rejection wins) and return it. `reason` must be one of
    reasons.CLIP_REASONS."""
    check_reason(reason, "clip")
    if not item.get("reject"):
        item["reject"] = {"stage": stage, "reason": reason, "detail": detail}
    return item


def drop_reference(item: Item, path: str, stage: str, reason: str, detail: str = "") -> None:
    """Record an augmented reference left out of a kept clip (a ``kind: reference`` rejects row).
    `reason` must be one of reasons.REFERENCE_REASONS."""
    check_reason(reason, "reference")
    item.setdefault("dropped_refs", []).append(
        {"path": path, "stage": stage, "reason": reason, "detail": detail}
    )


def is_rejected(item: Item) -> bool:
    return bool(item.get("reject"))


class Stage:
    """One step of the pipeline. Subclasses load models in `setup()` (once per worker) and implement
    `process(items)` for items not yet rejected. Resources are declared for the Ray executor."""

    name: str = "stage"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 4

    def __init__(self, config: CurateConfig, out_dir: str) -> None:
        self.config = config
        self.out_dir = out_dir
        self._ready = False

    def resources(self) -> dict[str, float]:
        """Ray resources of one actor of this stage (GPU back-ends override `num_gpus`)."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}

    def setup(self) -> None:
        """Load models; called once per worker before the first batch."""

    def process(self, items: list[Item]) -> list[Item]:
        raise NotImplementedError

    def __call__(self, items: list[Item]) -> list[Item]:
        """Run on a batch: rejected items pass through; an exception on one item becomes that item's
        reject (reason ``stage_error``) instead of failing the batch."""
        if not self._ready:
            self.setup()
            self._ready = True
        live = [it for it in items if not is_rejected(it)]
        done = [it for it in items if is_rejected(it)]
        if not live:
            return done
        try:
            return done + self.process(live)
        except Exception:  # isolate the failing item(s): rerun one by one
            pass
        for it in live:
            try:
                done.extend(self.process([it]))
            except Exception as exc:  # a bad input must never stop the run
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                done.append(reject(it, self.name, "stage_error", tb[:300]))
        return done
