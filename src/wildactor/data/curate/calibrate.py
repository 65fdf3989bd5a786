"""Calibration of the dlib face-similarity threshold on the real faces that ship in packages.

dlib publishes its ResNet descriptor's operating point as a Euclidean distance of 0.6 between raw
(unnormalised) descriptors. The pipeline compares unit vectors by cosine, so the equivalent cosine is
1 - 0.6^2 / (2 n^2) at the typical descriptor norm n, measured here. The threshold is then checked on
positives (scikit-image's astronaut under random scale, rotation, brightness, blur, JPEG and flips:
the same person) and negatives (the faces of scikit-image's LFW subset, 25 px, upscaled: many
people; being blurry they look alike, so their false-accept rate is pessimistic).
"""

from __future__ import annotations

import numpy as np


def _descriptors(images: list[np.ndarray]) -> np.ndarray:
    import dlib

    from wildactor.data.curate.faces import dlib_model_dir

    det = dlib.get_frontal_face_detector()
    folder = dlib_model_dir()
    sp = dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    out = []
    for im in images:
        rects, _, _ = det.run(im, 1, 0.3)
        if len(rects):
            r = max(rects, key=lambda r: r.area())
            out.append(np.asarray(rec.compute_face_descriptor(im, sp(im, r))))
    return np.asarray(out)


def astronaut_variants(n: int = 40, seed: int = 0) -> list[np.ndarray]:
    import cv2
    from skimage import data

    img = data.astronaut()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = cv2.getRotationMatrix2D((220, 120), rng.uniform(-12, 12), rng.uniform(0.35, 1.0))
        m[:, 2] += rng.uniform(-20, 20, 2)
        im = cv2.warpAffine(img, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
        im = np.clip(im.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(
            np.uint8
        )
        if rng.random() < 0.5:
            im = cv2.GaussianBlur(im, (0, 0), rng.uniform(0.5, 1.5))
        _, enc = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        im = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        out.append(np.ascontiguousarray(im))
    return out


def lfw_faces() -> list[np.ndarray]:
    import cv2
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 of the subset are faces, (25, 25) floats
    out = []
    for f in faces:
        g = cv2.resize((f * 255).astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC)
        g = cv2.copyMakeBorder(np.stack([g] * 3, axis=-1), 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        out.append(g)
    return out


def calibrate_dlib(dlib_distance: float = 0.6) -> dict:
    """Threshold and its measured pass rates (see module docstring)."""
    try:
        import skimage  # noqa: F401  (its data folder holds the faces)
    except ImportError:
        from wildactor.errors import WildActorError

        raise WildActorError(
            "calibration needs scikit-image (its bundled faces): pip install scikit-image"
        ) from None
    pos, neg = _descriptors(astronaut_variants()), _descriptors(lfw_faces())
    norm = float(np.median(np.linalg.norm(np.concatenate([pos, neg]), axis=1)))
    thr = 1.0 - dlib_distance**2 / (2.0 * norm**2)

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    p, q = unit(pos), unit(neg)
    iu_p, iu_q = np.triu_indices(len(p), 1), np.triu_indices(len(q), 1)
    pos_sims = (p @ p.T)[iu_p]
    cross = (p @ q.T).ravel()
    neg_sims = (q @ q.T)[iu_q]
    m = int(np.argmax((p @ p.T).mean(axis=1)))
    to_medoid = p @ p[m]
    return {
        "descriptor_norm_median": round(norm, 4),
        "cosine_threshold": round(thr, 4),
        "positives": len(pos),
        "negatives": len(neg),
        "same_face_pairs_pass": round(float((pos_sims >= thr).mean()), 4),
        "same_face_to_medoid_pass": round(float((to_medoid >= thr).mean()), 4),
        "astronaut_vs_lfw_false_accept": round(float((cross >= thr).mean()), 4),
        "lfw_vs_lfw_false_accept": round(float((neg_sims >= thr).mean()), 4),
    }
