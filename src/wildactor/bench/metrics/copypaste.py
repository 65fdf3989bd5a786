"""Copy-paste / pose-locking: how close generated frames are to a reference image in pose and pixels.

For each sampled frame and each reference, the reference's person crop (its non-white content; a three-view
sheet is split into its three panels) is searched over the frame at several scales by normalised
cross-correlation; the SSIM between the crop and the best-aligned window is the frame's score against that
reference. The clip's score is the mean over frames of the best reference: ~1 when a reference is pasted, low
when the actor is re-posed. Lower copy-paste with high identity is the goal.

On ActorWorld, `pose_spread` adds the circular spread of the yaw the probes read across the clip: a
pose-locked clip shows the same viewpoint in every frame.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices

NAME = "copy_paste"
BACKEND = "ssim-best-aligned-crop"
SCALES = (1.0, 0.85, 0.7, 0.55, 0.4, 0.3)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-size grayscale images (uint8 or float in [0, 255]); Gaussian window, sigma 1.5."""
    import cv2

    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (7, 7), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def person_crops(ref: RefImage, white: int = 245) -> list[np.ndarray]:
    """The reference's content crop(s), RGB: non-white bounding box; a three-view sheet gives three panels."""
    img = ref.image
    panels = [img]
    if ref.region == "three_view":
        w = img.shape[1] // 3
        panels = [img[:, k * w : (k + 1) * w] for k in range(3)]
    crops = []
    for p in panels:
        mask = (p < white).any(axis=2)
        if mask.any():
            ys, xs = np.nonzero(mask)
            p = p[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        if p.shape[0] >= 8 and p.shape[1] >= 8:
            crops.append(p)
    return crops


def _to_gray(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def best_aligned_ssim(frame_gray: np.ndarray, crop_rgb: np.ndarray) -> float:
    """Max over scales of SSIM between the crop and the frame window where it correlates best."""
    import cv2

    fh, fw = frame_gray.shape
    ch, cw = crop_rgb.shape[:2]
    crop_gray = _to_gray(crop_rgb)
    best = 0.0
    for s in SCALES:
        k = s * min(fh / ch, fw / cw)  # largest size that fits, then shrink
        th, tw = int(round(ch * k)), int(round(cw * k))
        if th < 8 or tw < 8:
            continue
        tmpl = cv2.resize(crop_gray, (tw, th), interpolation=cv2.INTER_AREA)
        if tmpl.std() < 1e-6:
            continue
        res = cv2.matchTemplate(frame_gray, tmpl, cv2.TM_CCOEFF_NORMED)  # (fh - th + 1, fw - tw + 1)
        _, _, _, (x, y) = cv2.minMaxLoc(res)
        best = max(best, ssim(tmpl, frame_gray[y : y + th, x : x + tw]))
    return best


def copy_paste(
    frames: np.ndarray, references: list[RefImage], num_samples: int = 8, short_side: int = 128
) -> MetricResult:
    """Copy-paste score of a clip (T, H, W, 3) against its references, in [0, 1] (higher = more pasted)."""
    import cv2

    crops = [c for r in references for c in person_crops(r)]
    if not crops:
        return MetricResult.na(NAME, BACKEND, "no usable reference image (empty or smaller than 8 px)")
    idx = sample_indices(len(frames), num_samples)
    h, w = frames.shape[1:3]
    scale = min(1.0, short_side / min(h, w))
    per_frame = []
    for i in idx:
        f = frames[i]
        if scale < 1.0:
            f = cv2.resize(f, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        g = _to_gray(f)
        per_frame.append(max(0.0, max(best_aligned_ssim(g, c) for c in crops)))
    return MetricResult(NAME, BACKEND, value=float(np.mean(per_frame)), per_frame=per_frame)


def pose_spread(yaw_degrees: list[float]) -> MetricResult:
    """Circular standard deviation (degrees) of per-frame yaw; ~0 for a pose-locked clip."""
    if len(yaw_degrees) < 2:
        return MetricResult.na("pose_spread", "actorworld-probes", "fewer than 2 frames with a yaw reading")
    ang = np.deg2rad(np.asarray(yaw_degrees, dtype=np.float64))
    r = float(np.hypot(np.cos(ang).mean(), np.sin(ang).mean()))
    std = float(np.rad2deg(np.sqrt(max(0.0, -2.0 * np.log(max(r, 1e-12))))))
    return MetricResult(
        "pose_spread", "actorworld-probes", value=std, unit="degrees", per_frame=list(yaw_degrees)
    )
