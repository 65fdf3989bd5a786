"""Face identity (OpenS2V FaceSim protocol) with pluggable embedders.

Protocol: 32 frames sampled uniformly; in each, the largest detected face; its similarity to the reference
face, clipped at 0; frames without a face are skipped; the mean over frames (a clip in which no sampled frame
shows a face scores 0: the identity is lost; references without any face make the metric n/a). With several face references
each frame takes its best-matching reference (an any-view reference set should reward the frame that matches
its own viewpoint). The result names the back-end: numbers from different back-ends are not comparable.

Back-ends
- `dlib` (offline default): dlib's HOG face detector, 5-point alignment and ResNet face encoder, with the
  weights that ship in the `face_recognition_models` package. dlib descriptors are compared by Euclidean
  distance d (same person when d < 0.6); we report s = max(0, 1 - d), which puts dlib's own decision
  threshold (0.6) at s = 0.4, ArcFace's usual same-person cosine threshold.
- `insightface`: ArcFace from a local insightface model folder (buffalo_l / antelopev2), cosine similarity.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices

NAME = "face"


class FaceEmbedder(Protocol):
    name: str

    def embed_largest(self, image: np.ndarray) -> np.ndarray | None:
        """Embedding of the largest face in an RGB uint8 image, or None when no face is found."""

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity in [0, 1] (clipped at 0)."""


@dataclass
class BackendUnavailable:
    """A back-end that could not be built; every score it gives is n/a with this reason."""

    name: str
    reason: str


def face_recognition_models_dir() -> Path | None:
    """The folder holding dlib's .dat weights, found without importing the package (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceEmbedder:
    """dlib ResNet face descriptors (128-D), HOG detector, 5-point alignment."""

    name = "dlib-resnet"

    def __init__(self, models_dir: str | Path | None = None, upsample: int = 1) -> None:
        import dlib

        root = Path(models_dir) if models_dir is not None else face_recognition_models_dir()
        if root is None:
            raise FileNotFoundError(
                "package face_recognition_models is not installed (pip install wildactor[faces])"
            )
        shape_path = root / "shape_predictor_5_face_landmarks.dat"
        rec_path = root / "dlib_face_recognition_resnet_model_v1.dat"
        for p in (shape_path, rec_path):
            if not p.is_file():
                raise FileNotFoundError(f"dlib weights missing: {p}")
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(shape_path))
        self._rec = dlib.face_recognition_model_v1(str(rec_path))
        self._upsample = upsample

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """Face boxes (left, top, right, bottom, score)."""
        dets, scores, _ = self._detector.run(np.ascontiguousarray(image), self._upsample, 0.0)
        return [(d.left(), d.top(), d.right(), d.bottom(), float(s)) for d, s in zip(dets, scores)]

    def embed_largest(self, image: np.ndarray) -> np.ndarray | None:
        import dlib

        image = np.ascontiguousarray(image)
        dets, scores, _ = self._detector.run(image, self._upsample, 0.0)
        if len(dets) == 0:
            return None
        # Largest face; the detection score breaks (near) ties of area.
        i = max(range(len(dets)), key=lambda j: (dets[j].area(), scores[j]))
        rect = dlib.rectangle(dets[i].left(), dets[i].top(), dets[i].right(), dets[i].bottom())
        shape = self._shape(image, rect)
        return np.asarray(self._rec.compute_face_descriptor(image, shape), dtype=np.float64)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(max(0.0, 1.0 - np.linalg.norm(a - b)))


class InsightFaceEmbedder:
    """ArcFace through insightface, from a local model-pack folder (e.g. ~/models/buffalo_l)."""

    name = "insightface-arcface"

    def __init__(
        self, model_dir: str | Path, det_size: int = 640, providers: list[str] | None = None
    ) -> None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"insightface model folder not found: {model_dir}")
        if not list(model_dir.glob("*.onnx")):
            # FaceAnalysis would try to download the pack: refuse instead.
            raise FileNotFoundError(f"no *.onnx files in insightface model folder {model_dir}")
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise FileNotFoundError(
                "insightface is not installed (pip install insightface onnxruntime)"
            ) from exc
        if model_dir.parent.name != "models":
            # FaceAnalysis looks in ROOT/models/NAME and downloads when it is not there.
            raise FileNotFoundError(
                f"insightface expects ROOT/models/<pack>; {model_dir} is not inside a 'models' folder"
            )
        self.name = f"insightface-arcface:{model_dir.name}"
        self._app = FaceAnalysis(
            name=model_dir.name,
            root=str(model_dir.parent.parent),
            providers=providers or ["CPUExecutionProvider"],
        )
        self._app.prepare(ctx_id=-1, det_size=(det_size, det_size))

    def embed_largest(self, image: np.ndarray) -> np.ndarray | None:
        faces = self._app.get(np.ascontiguousarray(image[..., ::-1]))  # insightface wants BGR
        if not faces:
            return None
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        return np.asarray(face.normed_embedding, dtype=np.float64)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        return max(0.0, cos)


def build_face_backend(spec: str = "dlib") -> FaceEmbedder | BackendUnavailable:
    """`dlib` (default), `dlib:DIR`, or `insightface:DIR`. A back-end that cannot load comes back unavailable."""
    kind, _, path = spec.partition(":")
    path = str(Path(path).expanduser()) if path else ""  # "insightface:~/models/x" escapes shell expansion
    try:
        if kind == "dlib":
            return DlibFaceEmbedder(path or None)
        if kind in ("insightface", "arcface"):
            if not path:
                return BackendUnavailable(
                    "insightface-arcface", "no model folder given (use insightface:DIR)"
                )
            return InsightFaceEmbedder(path)
    except (FileNotFoundError, ImportError, OSError, RuntimeError) as exc:
        return BackendUnavailable(kind, str(exc).splitlines()[0])
    raise ValueError(f"unknown face back-end {spec!r} (dlib | dlib:DIR | insightface:DIR)")


def face_identity(
    frames: np.ndarray,
    references: list[RefImage],
    backend: FaceEmbedder | BackendUnavailable,
    num_samples: int = 32,
) -> MetricResult:
    """FaceSim of a clip (T, H, W, 3) against the faces found in the reference images."""
    if isinstance(backend, BackendUnavailable):
        return MetricResult.na(NAME, backend.name, f"{backend.name} back-end unavailable: {backend.reason}")
    # Face references first; body / three-view images also count when a face is visible in them.
    ordered = [r for r in references if r.region == "face"] + [r for r in references if r.region != "face"]
    ref_embs = [e for e in (backend.embed_largest(r.image) for r in ordered) if e is not None]
    if not ref_embs:
        return MetricResult.na(NAME, backend.name, "no face found in any reference image")
    idx = sample_indices(len(frames), num_samples)
    per_frame: list[float] = []
    for i in idx:
        emb = backend.embed_largest(frames[i])
        if emb is None:
            continue
        per_frame.append(max(backend.similarity(emb, r) for r in ref_embs))
    extra = {"frames_sampled": len(idx), "frames_with_face": len(per_frame), "reference_faces": len(ref_embs)}
    if not per_frame:
        # Protocol: frames without a face are skipped; a clip with no face at all scores 0 (identity lost).
        return MetricResult(
            NAME, backend.name, value=0.0, extra=extra | {"note": "no face in any sampled frame"}
        )
    return MetricResult(NAME, backend.name, value=float(np.mean(per_frame)), per_frame=per_frame, extra=extra)
