"""OpenS2V-Eval's metrics for `wildactor bench run`: which back-ends, built once, scoring one clip.

Every back-end loads from a local path; one that is not given (or cannot load) makes its metric
"n/a: <why>". `weights` may name a copy of OpenS2V-Weight, from which the files it holds are taken:
`glint360k_curricular_face_r101_backbone.bin` (FaceSim-Cur), `aesthetic-model.pth` (Aesthetics) and an
insightface pack under `face_extractor/models/<pack>` (detector + FaceSim-Arc).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult, RefImage

CUR_FILE = "glint360k_curricular_face_r101_backbone.bin"
AES_FILE = "aesthetic-model.pth"
# OpenS2V scores FaceSim only on these case families; other suites' items always get it.
FACE_KINDS = ("singlehuman", "singleface", "faceobj", "humanobj")


@dataclass(frozen=True)
class OpenS2VConfig:
    """Local paths of OpenS2V-Eval's metric models (None = taken from `weights` if there, else n/a)."""

    weights: str | None = None
    face_detector: str | None = None  # insightface:DIR | dlib | dlib:DIR
    curricularface: str | None = None
    aes_clip: str | None = None
    aes_mlp: str | None = None
    gme: str | None = None
    judge: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.weights is not None and not Path(self.weights).is_dir():
            raise ValueError(f"OpenS2V weights folder not found: {self.weights}")
        if self.face_detector is not None and self.face_detector.partition(":")[0] not in (
            "insightface",
            "dlib",
        ):
            raise ValueError(
                f"face detector must be insightface:DIR, dlib or dlib:DIR, got {self.face_detector!r}"
            )

    def resolved(self) -> OpenS2VConfig:
        """Fill unset paths from the `weights` folder where it holds the file."""
        if self.weights is None:
            return self
        w = Path(self.weights)
        packs = sorted(p for p in (w / "face_extractor" / "models").glob("*") if p.is_dir())
        detector = self.face_detector or (f"insightface:{packs[0]}" if packs else None)
        return OpenS2VConfig(
            weights=self.weights,
            face_detector=detector,
            curricularface=self.curricularface or (str(w / CUR_FILE) if (w / CUR_FILE).is_file() else None),
            aes_clip=self.aes_clip,
            aes_mlp=self.aes_mlp or (str(w / AES_FILE) if (w / AES_FILE).is_file() else None),
            gme=self.gme,
            judge=self.judge,
            device=self.device,
        )


class OpenS2VScorer:
    """The OpenS2V metric back-ends of one run."""

    def __init__(self, cfg: OpenS2VConfig) -> None:
        from wildactor.bench.metrics.aesthetics import build_aesthetic_backend
        from wildactor.bench.metrics.facesim_opens2v import build_facesim_backend
        from wildactor.bench.metrics.gme import build_gme_backend
        from wildactor.bench.metrics.vlm_rater import build_rater_backend

        cfg = cfg.resolved()
        self.cfg = cfg
        self.facesim = build_facesim_backend(cfg.face_detector, cfg.curricularface, cfg.device)
        self.aes = build_aesthetic_backend(cfg.aes_clip, cfg.aes_mlp, cfg.device)
        self.gme = build_gme_backend(cfg.gme, cfg.device)
        self.rater = build_rater_backend(cfg.judge, cfg.device)

    def describe(self) -> dict[str, str]:
        def name(b: Any) -> str:
            reason = getattr(b, "reason", None)
            return f"{b.name} (n/a: {reason})" if reason else b.name

        fs = self.facesim
        cur_reason = getattr(fs, "cur_reason", "")
        return {
            "opens2v_facesim": name(fs) + (f" (FaceSim-Cur n/a: {cur_reason})" if cur_reason else ""),
            "opens2v_aesthetics": name(self.aes),
            "opens2v_gme": name(self.gme),
            "opens2v_judge": name(self.rater),
            "opens2v_motion_amplitude": "opencv-farneback",
            "opens2v_nexus": "n/a (YOLO-World not available)",
        }

    def score(self, item: Any, frames: np.ndarray, refs: list[RefImage]) -> dict[str, MetricResult]:
        """Every OpenS2V metric of one clip (T, H, W, 3) of a suite item."""
        from wildactor.bench.metrics import (
            aesthetics,
            amplitude,
            facesim_opens2v,
            gme,
            natural,
            nexus,
            smoothness,
        )

        out: dict[str, MetricResult] = {}
        kind = item.prompt.labels.get("opens2v_kind")
        if kind is None or kind in FACE_KINDS:
            ordered = [r for r in refs if r.region == "face"] + [r for r in refs if r.region != "face"]
            out.update(facesim_opens2v.facesim_opens2v(frames, ordered[0].image, self.facesim))
        out["aes_score"] = aesthetics.aesthetics(frames, self.aes)
        out["gme_score"] = gme.gme_score(frames, item.prompt.text, self.gme)
        out["natural_score"] = natural.natural_score(frames, self.rater)
        out["motion_smoothness"] = smoothness.motion_smoothness(frames, self.rater)
        out["motion_amplitude"] = amplitude.motion_amplitude_opens2v(frames)
        out["nexus_score"] = nexus.nexus_score()
        return out
