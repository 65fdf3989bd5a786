"""Face tools shared by the identity, viewpoint and identity-check stages.

Embedders map (image, box) to a unit vector; similarity is the cosine. Back-ends:

- ``dlib`` (default): dlib's ResNet face descriptor with 68-point alignment; weights read from the
  ``face_recognition_models`` package folder (the package itself is not imported: it needs
  pkg_resources). Threshold 0.90: dlib's published operating point (Euclidean distance 0.6 between
  raw descriptors) expressed as a cosine at the descriptor norm measured here (median 1.40), checked
  on augmented real faces; see docs/curate.md and ``wildactor data calibrate``.
- ``arcface``: an insightface recognition model (``*.onnx``, e.g. ``w600k_r50.onnx``) from a local
  folder; threshold 0.40 as released with Actor-18M. Alignment uses five points from dlib's landmarks.
- ``appearance``: a hue/saturation histogram of the person box. It is NOT a face identity: it compares
  clothing/skin/hair colours and is meant for ActorWorld renders, whose faces are too stylised for a
  face model. Threshold 0.70 (see docs/curate.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.errors import WildActorError

DEFAULT_THRESHOLDS = {"dlib": 0.90, "arcface": 0.40, "appearance": 0.70}
# dlib 68-point indices used for 5-point alignment and head pose
_LEFT_EYE = list(range(36, 42))
_RIGHT_EYE = list(range(42, 48))


def dlib_model_dir() -> Path:
    """The folder holding dlib's .dat files (the benchmark's lookup), or a one-line error."""
    from wildactor.bench.metrics.face import face_recognition_models_dir

    folder = face_recognition_models_dir()
    if folder is None:
        raise WildActorError(
            "dlib face models not found: pip install face_recognition_models (it ships the .dat weights)"
        )
    if not (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        raise WildActorError(f"dlib face models missing from {folder}")
    return folder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def medoid_similarities(embeddings: list[np.ndarray]) -> tuple[int, np.ndarray]:
    """Index of the medoid (highest mean cosine to the others) and every embedding's cosine to it."""
    e = np.stack([v / (np.linalg.norm(v) + 1e-12) for v in embeddings])  # (N, D)
    sims = e @ e.T  # (N, N)
    m = int(np.argmax(sims.mean(axis=1)))
    return m, sims[m]


class Landmarker:
    """dlib's 68-point shape predictor."""

    def __init__(self) -> None:
        import dlib

        self.predictor = dlib.shape_predictor(str(dlib_model_dir() / "shape_predictor_68_face_landmarks.dat"))

    def __call__(self, rgb: np.ndarray, box: list[float]) -> np.ndarray:
        """(68, 2) landmark pixels of the face in `box`."""
        import dlib

        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
        shape = self.predictor(np.ascontiguousarray(rgb), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class Embedder:
    """Interface: `embed(rgb, face_box, person_box) -> unit vector or None`."""

    backend = ""
    uses_faces = True

    @property
    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.backend]

    def embed(
        self, rgb: np.ndarray, face_box: list[float] | None, person_box: list[float] | None
    ) -> np.ndarray | None:
        raise NotImplementedError


class DlibEmbedder(Embedder):
    backend = "dlib"

    def __init__(self) -> None:
        import dlib

        self.landmarks = Landmarker()
        self.model = dlib.face_recognition_model_v1(
            str(dlib_model_dir() / "dlib_face_recognition_resnet_model_v1.dat")
        )

    def embed(self, rgb, face_box, person_box):
        import dlib

        if face_box is None:
            return None
        rect = dlib.rectangle(int(face_box[0]), int(face_box[1]), int(face_box[2]), int(face_box[3]))
        img = np.ascontiguousarray(rgb)
        shape = self.landmarks.predictor(img, rect)
        v = np.asarray(self.model.compute_face_descriptor(img, shape), dtype=np.float64)
        return v / (np.linalg.norm(v) + 1e-12)


def check_arcface_path(path: str) -> Path:
    if not path:
        raise WildActorError(
            "identity.backend=arcface needs identity.arcface_path: a local folder with *.onnx"
        )
    folder = Path(path)
    if not folder.is_dir():
        raise WildActorError(f"ArcFace model folder not found: {folder}")
    onnx = sorted(folder.glob("*.onnx"))
    rec = [p for p in onnx if "w600k" in p.name or "arcface" in p.name.lower() or "glint" in p.name]
    if not (rec or onnx):
        raise WildActorError(f"ArcFace model folder {folder} holds no *.onnx recognition model")
    return (rec or onnx)[0]


class ArcFaceEmbedder(Embedder):
    backend = "arcface"

    def __init__(self, path: str) -> None:
        model_file = check_arcface_path(path)
        try:
            from insightface.model_zoo import get_model
        except ImportError:
            raise WildActorError(
                "identity.backend=arcface needs: pip install insightface onnxruntime"
            ) from None
        self.model = get_model(str(model_file), providers=["CPUExecutionProvider"])
        self.model.prepare(ctx_id=-1)
        self.landmarks = Landmarker()

    def embed(self, rgb, face_box, person_box):
        from insightface.utils import face_align

        if face_box is None:
            return None
        lm = self.landmarks(rgb, face_box)
        kps = np.stack([lm[_LEFT_EYE].mean(0), lm[_RIGHT_EYE].mean(0), lm[30], lm[48], lm[54]]).astype(
            np.float32
        )  # (5, 2): eyes, nose tip, mouth corners
        aligned = face_align.norm_crop(np.ascontiguousarray(rgb[..., ::-1]), landmark=kps)
        v = np.asarray(self.model.get_feat(aligned)).reshape(-1).astype(np.float64)
        return v / (np.linalg.norm(v) + 1e-12)


class AppearanceEmbedder(Embedder):
    """Hue/saturation histogram of the person box's foreground (not a face identity)."""

    backend = "appearance"
    uses_faces = False

    def embed(self, rgb, face_box, person_box):
        import cv2

        if person_box is None:
            return None
        x0, y0, x1, y1 = (int(round(v)) for v in person_box)
        crop = rgb[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
        if crop.size == 0 or min(crop.shape[:2]) < 4:
            return None
        # pixels that differ from the crop's border colour = the person
        border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]]).astype(np.float32)
        bg = np.median(border, axis=0)
        fg = (np.abs(crop.astype(np.float32) - bg).max(axis=2) > 30).astype(np.uint8)
        if fg.sum() < 8:
            return None
        hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], fg, [12, 4], [0, 180, 0, 256]).reshape(-1)  # (48,)
        hist = np.sqrt(hist / (hist.sum() + 1e-12))  # Hellinger: cosine of sqrt-histograms
        return hist / (np.linalg.norm(hist) + 1e-12)


def make_embedder(backend: str, arcface_path: str = "") -> Embedder:
    if backend == "dlib":
        return DlibEmbedder()
    if backend == "arcface":
        return ArcFaceEmbedder(arcface_path)
    if backend == "appearance":
        return AppearanceEmbedder()
    raise WildActorError(f"unknown face embedding back-end {backend!r}")
