"""The ActorWorld probe back-end shared by the exact metrics (body consistency, semantic alignment, pose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wildactor.bench.metrics.face import BackendUnavailable


def build_probe_backend(folder: str | Path | None = None) -> Any:
    """The trained ActorWorld probes (default: the ones shipped in the package), or an unavailable back-end
    that says why (weights missing, ActorWorld not installed)."""
    from wildactor.errors import WildActorError

    try:
        from wildactor.world.probes import load_probes
    except ImportError as exc:
        return BackendUnavailable("actorworld-probes", f"ActorWorld is not available: {exc}")
    try:
        return load_probes(folder)
    except WildActorError as exc:
        return BackendUnavailable("actorworld-probes", str(exc))


def chance_attribute_agreement() -> float:
    """Expected share of attributes a uniformly random other actor shares with the true one."""
    from wildactor.world.actors import ATTRIBUTES

    return sum(1.0 / len(v) for v in ATTRIBUTES.values()) / len(ATTRIBUTES)
