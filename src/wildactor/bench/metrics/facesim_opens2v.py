"""FaceSim-Cur and FaceSim-Arc as OpenS2V-Eval computes them (its `get_facesim.py`), and corrected.

Protocol, per clip: 32 frames (OpenS2V's floored sampling); in each, the largest face (if none is found the
image is padded by a quarter of its size on every side with grey 128 and searched again); the face is aligned
to the ArcFace 5-point template at 224 px, resized to 112 and embedded by CurricularFace IR-101; the cosine
to the reference face's embedding is clipped at 0. The reference is the first image of the case.

The quirk: OpenS2V drops frames whose clipped Cur similarity is 0 before averaging, and meant to do the same
for ArcFace, but its test compares the list of Arc scores with 0.0, which is always true, so ArcFace keeps
those frames. Both rules are reported for both embedders, labelled: `facesim_cur` (zero frames dropped; the
leaderboard's FaceSim column), `facesim_arc` (zero frames kept: OpenS2V as coded), and the corrected
`facesim_arc_drop0` (zero frames dropped, the rule applied to Cur) and `facesim_cur_keep0`. A clip in which
no frame keeps a score scores 0, as in OpenS2V.

Detector / ArcFace back-ends
- `insightface:DIR` (OpenS2V's): insightface's FaceAnalysis from a local pack (ROOT/models/NAME with *.onnx):
  SCRFD boxes and 5 key points, ArcFace embeddings for FaceSim-Arc.
- `dlib` (offline): dlib's HOG detector and 68-point landmarks reduced to the same 5 points (eye centres,
  nose tip, mouth corners). It gives no ArcFace embedding, so FaceSim-Arc is n/a; FaceSim-Cur from it is not
  the leaderboard's detector and is labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from wildactor.bench.metrics.base import MetricResult
from wildactor.bench.metrics.face import BackendUnavailable, face_recognition_models_dir
from wildactor.bench.metrics.opens2v_common import opens2v_indices

# insightface's ArcFace alignment template for 112x112 faces (x, y) of: eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
NAMES = ("facesim_cur", "facesim_arc", "facesim_arc_drop0", "facesim_cur_keep0")


@dataclass
class FaceInfo:
    """The largest face of an image: box (x1, y1, x2, y2), 5 key points (5, 2), ArcFace embedding or None."""

    bbox: np.ndarray
    kps: np.ndarray
    arc_embedding: np.ndarray | None = None


class FaceAnalyzer(Protocol):
    name: str

    def largest_face(self, image_rgb: np.ndarray) -> FaceInfo | None:
        """The largest face found in an RGB uint8 image, or None."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping points src (N, 2) onto dst (N, 2): (2, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)  # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / s.var(0).sum())
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def align_face(image_rgb: np.ndarray, kps: np.ndarray, size: int = 224) -> np.ndarray:
    """The face warped onto the ArcFace template scaled to `size` (insightface's `norm_crop`): (size, size, 3)."""
    import cv2

    m = similarity_transform(np.asarray(kps, dtype=np.float64), ARCFACE_TEMPLATE * (size / 112.0))
    return cv2.warpAffine(np.ascontiguousarray(image_rgb), m, (size, size), borderValue=0.0)


def find_face(analyzer: FaceAnalyzer, image_rgb: np.ndarray) -> FaceInfo | None:
    """Largest face; when none is found, retry on the image padded with grey by 25% per side (OpenS2V)."""
    import cv2

    face = analyzer.largest_face(image_rgb)
    if face is not None:
        return face
    h, w = image_rgb.shape[:2]
    top, left = int(h * 0.25), int(w * 0.25)
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(image_rgb), top, top, left, left, cv2.BORDER_CONSTANT, value=(128, 128, 128)
    )
    face = analyzer.largest_face(padded)
    if face is None:
        return None
    face.kps = face.kps - np.array([left, top])
    return face


class InsightFaceAnalyzer:
    """insightface FaceAnalysis from a local pack folder (never downloads)."""

    def __init__(self, model_dir: str | Path, det_size: int = 320) -> None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir() or not list(model_dir.glob("*.onnx")):
            raise FileNotFoundError(f"no *.onnx files in insightface model folder {model_dir}")
        if model_dir.parent.name != "models":
            raise FileNotFoundError(f"insightface expects ROOT/models/<pack>; {model_dir} is not in 'models'")
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise FileNotFoundError(
                "insightface is not installed (pip install insightface onnxruntime)"
            ) from exc
        self.name = f"insightface:{model_dir.name}"
        self._app = FaceAnalysis(
            name=model_dir.name, root=str(model_dir.parent.parent), providers=["CPUExecutionProvider"]
        )
        self._app.prepare(ctx_id=-1, det_size=(det_size, det_size))

    def largest_face(self, image_rgb: np.ndarray) -> FaceInfo | None:
        faces = self._app.get(np.ascontiguousarray(image_rgb[..., ::-1]))  # insightface wants BGR
        if not faces:
            return None
        f = max(faces, key=lambda x: (x.bbox[2] - x.bbox[0]) * (x.bbox[3] - x.bbox[1]))
        return FaceInfo(np.asarray(f.bbox), np.asarray(f.kps, dtype=np.float64), np.asarray(f.embedding))


class DlibFaceAnalyzer:
    """dlib HOG detector + 68 landmarks reduced to ArcFace's 5 points; no ArcFace embedding."""

    name = "dlib-hog-68pt"

    def __init__(self, models_dir: str | Path | None = None, upsample: int = 1) -> None:
        import dlib

        root = Path(models_dir) if models_dir is not None else face_recognition_models_dir()
        if root is None or not (root / "shape_predictor_68_face_landmarks.dat").is_file():
            raise FileNotFoundError("dlib 68-point landmarks not found (pip install wildactor[faces])")
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(root / "shape_predictor_68_face_landmarks.dat"))
        self._upsample = upsample

    def largest_face(self, image_rgb: np.ndarray) -> FaceInfo | None:
        image = np.ascontiguousarray(image_rgb)
        dets = self._detector(image, self._upsample)
        if len(dets) == 0:
            return None
        d = max(dets, key=lambda r: r.area())
        pts = np.array([(p.x, p.y) for p in self._shape(image, d).parts()], dtype=np.float64)  # (68, 2)
        kps = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])  # (5, 2)
        return FaceInfo(np.array([d.left(), d.top(), d.right(), d.bottom()], dtype=np.float64), kps)


class OpenS2VFaceSim:
    """A face analyzer plus CurricularFace IR-101 (either may be missing: those columns are n/a)."""

    def __init__(self, analyzer: Any, cur_model: Any, cur_reason: str = "", device: str = "cpu") -> None:
        self.analyzer = analyzer
        self.cur = cur_model
        self.cur_reason = cur_reason
        self.device = device

    @property
    def name(self) -> str:
        cur = "curricularface-ir101" if self.cur is not None else "no CurricularFace"
        return f"{getattr(self.analyzer, 'name', 'none')}+{cur}"

    def cur_embedding(self, aligned_224: np.ndarray) -> np.ndarray:
        """Unit CurricularFace embedding of an aligned 224-px RGB face (resized to 112, scaled to [-1, 1])."""
        import cv2
        import torch

        x = cv2.resize(aligned_224, (112, 112)).astype(np.float32) / 127.5 - 1.0
        t = torch.from_numpy(x.transpose(2, 0, 1)[None]).to(self.device)  # (1, 3, 112, 112)
        with torch.no_grad():
            e = self.cur(t)[0].float().cpu().numpy()
        return e / (np.linalg.norm(e) + 1e-12)


def build_facesim_backend(
    detector: str | None, cur_weights: str | None, device: str = "cpu"
) -> OpenS2VFaceSim | BackendUnavailable:
    """`detector`: `insightface:DIR` | `dlib` | `dlib:DIR`; `cur_weights`: the CurricularFace IR-101 .bin."""
    kind, _, path = (detector or "dlib").partition(":")
    path = str(Path(path).expanduser()) if path else ""
    try:
        if kind == "insightface":
            analyzer: Any = InsightFaceAnalyzer(path) if path else None
            if analyzer is None:
                return BackendUnavailable("facesim", "no insightface folder given (insightface:DIR)")
        elif kind == "dlib":
            analyzer = DlibFaceAnalyzer(path or None)
        else:
            raise ValueError(f"unknown face detector {detector!r} (insightface:DIR | dlib | dlib:DIR)")
    except (FileNotFoundError, ImportError, OSError, RuntimeError) as exc:
        return BackendUnavailable("facesim", str(exc).splitlines()[0])
    if not cur_weights:
        return OpenS2VFaceSim(analyzer, None, "no CurricularFace IR-101 weights given", device)
    if not Path(cur_weights).is_file():
        return OpenS2VFaceSim(analyzer, None, f"CurricularFace weights not found: {cur_weights}", device)
    from wildactor.bench.metrics.curricularface import load_ir101

    try:
        return OpenS2VFaceSim(analyzer, load_ir101(cur_weights, device), "", device)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        return OpenS2VFaceSim(
            analyzer, None, f"cannot load {cur_weights}: {str(exc).splitlines()[0]}", device
        )


def _mean(scores: list[float], drop_zeros: bool) -> float:
    kept = [s for s in scores if s != 0.0] if drop_zeros else scores
    return float(np.mean(kept)) if kept else 0.0


def _frame_scores(
    backend: OpenS2VFaceSim, frame: np.ndarray, ref: FaceInfo, ref_cur: np.ndarray | None
) -> tuple[float | None, float | None] | None:
    """(clipped Cur cosine, clipped Arc cosine) of one frame's largest face, None when it has no face."""
    face = find_face(backend.analyzer, frame)
    if face is None:
        return None
    cur = None
    if ref_cur is not None:
        cur = max(0.0, float(ref_cur @ backend.cur_embedding(align_face(frame, face.kps))))
    arc = None
    if ref.arc_embedding is not None and face.arc_embedding is not None:
        a, b = ref.arc_embedding, face.arc_embedding
        arc = max(0.0, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    return cur, arc


def facesim_opens2v(
    frames: np.ndarray,
    reference: np.ndarray,
    backend: OpenS2VFaceSim | BackendUnavailable,
    num_frames: int = 32,
) -> dict[str, MetricResult]:
    """The four FaceSim variants of a clip (T, H, W, 3) against one reference image (H, W, 3)."""
    if isinstance(backend, BackendUnavailable):
        return {n: MetricResult.na(n, backend.name, backend.reason) for n in NAMES}
    ref = find_face(backend.analyzer, reference)
    if ref is None:
        return {n: MetricResult.na(n, backend.name, "no face found in the reference image") for n in NAMES}
    ref_cur = backend.cur_embedding(align_face(reference, ref.kps)) if backend.cur is not None else None
    per_index: dict[int, tuple[float | None, float | None] | None] = {}  # a repeated index repeats its scores
    cur, arc, n_face = [], [], 0
    for i in opens2v_indices(len(frames), num_frames):
        if i not in per_index:
            per_index[i] = _frame_scores(backend, frames[i], ref, ref_cur)
        if per_index[i] is None:
            continue
        n_face += 1
        c, a = per_index[i]
        if c is not None:
            cur.append(c)
        if a is not None:
            arc.append(a)
    extra = {"frames_sampled": num_frames, "frames_with_face": n_face}
    out: dict[str, MetricResult] = {}
    for name, scores, drop, ok, why in (
        ("facesim_cur", cur, True, ref_cur is not None, backend.cur_reason),
        ("facesim_cur_keep0", cur, False, ref_cur is not None, backend.cur_reason),
        (
            "facesim_arc",
            arc,
            False,
            ref.arc_embedding is not None,
            "the face back-end gives no ArcFace embedding",
        ),
        (
            "facesim_arc_drop0",
            arc,
            True,
            ref.arc_embedding is not None,
            "the face back-end gives no ArcFace embedding",
        ),
    ):
        if not ok:
            out[name] = MetricResult.na(name, backend.name, why)
            continue
        rule = "zero frames dropped" if drop else "zero frames kept"
        out[name] = MetricResult(
            name, backend.name, value=_mean(scores, drop), per_frame=scores, extra=extra | {"rule": rule}
        )
    return out
