"""Vectorised numpy ray caster: ellipsoid bodies, z-buffer, Lambert + ambient light, painted backdrop.

Every pixel casts an orthographic ray along the camera's view axis; each ray meets each ellipsoid in a
quadratic, solved for all (primitive, pixel) pairs at once. The nearest hit wins (z-buffer), its normal
is lit by the scene, and the torso's front-only print is painted in the torso's own coordinates, so it
can only show where the front of the torso faces the camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from wildactor.world.actors import BUILD_SCALE, Actor
from wildactor.world.body import GROUP_HEAD, BodyState, Primitives, body_primitives
from wildactor.world.camera import Camera
from wildactor.world.scenes import Scene, backdrop, horizon_fraction

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive


@dataclass(frozen=True)
class FrameLabels:
    """Exact labels of one actor in one frame. yaw: degrees in [0, 360) relative to the camera (0 = faces
    the camera); person_box / face_box: visible pixels' bounding box or None; visibility: fraction of
    the body inside the frame and not hidden by another actor; face_visibility: same for the head,
    times how much the face turns to the camera (1 front, 0.5 profile, 0 back)."""

    actor_id: str
    yaw: float
    person_box: Box | None
    face_box: Box | None
    visibility: float
    face_visibility: float


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 8 or w < 8 or h > 2048 or w > 2048:
        raise ValueError(f"render size must be within 8..2048 pixels, got {(h, w)}")
    return h, w


def _box(mask: np.ndarray) -> Box | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _graphic_mask(code: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Front-only print in torso unit coordinates local (N, 3): x right, y up, z front."""
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    front = z > 0.2
    circle = x**2 + (y - 0.1) ** 2 < 0.6**2
    band = np.abs(y - 0.1) < 0.26
    stripe = np.abs(x) < 0.26
    return front & np.select([code == 1, code == 2, code == 3], [circle, band, stripe], False)


def rasterize(
    prims: Primitives,
    scene: Scene,
    camera: Camera,
    size: tuple[int, int],
    background: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Ray-cast primitives over the scene backdrop (or a plain `background` colour). Returns the float
    image (H, W, 3) in [0, 1] and buffers: 'winner' (H, W) primitive index or -1, 'hits' (K, H, W) bool (each primitive's own
    silhouette, ignoring occlusion)."""
    h, w = size
    ppm = h / camera.view_height
    basis = camera.basis()  # (3, 3) rows right, up, back
    centers = (prims.centers - np.asarray(camera.target)) @ basis.T  # (K, 3) camera space
    rc = np.einsum("ij,kjl->kil", basis, prims.rot)  # (K, 3, 3) ellipsoid axes in camera space
    inv_r2 = 1.0 / prims.radii**2  # (K, 3)
    m = np.einsum("kij,kj,klj->kil", rc, inv_r2, rc).astype(np.float32)  # (K, 3, 3) quadric

    # Only pixels inside the union of the primitives' projected extents can be hit: ray-cast that window.
    minv = np.einsum("kij,kj,klj->kil", rc, prims.radii**2, rc)  # (K, 3, 3) inverse quadric
    ext_x, ext_y = np.sqrt(minv[:, 0, 0]) * ppm, np.sqrt(minv[:, 1, 1]) * ppm
    px, py = centers[:, 0] * ppm + w / 2, h / 2 - centers[:, 1] * ppm
    c0 = int(np.clip(np.floor((px - ext_x).min()), 0, w))
    c1 = int(np.clip(np.ceil((px + ext_x).max()) + 1, 0, w))
    r0 = int(np.clip(np.floor((py - ext_y).min()), 0, h))
    r1 = int(np.clip(np.ceil((py + ext_y).max()) + 1, 0, h))
    k = len(centers)
    hits = np.zeros((k, h, w), bool)
    winner = np.full((h, w), -1, np.int64)
    zmax = np.full((h, w), -np.inf, np.float32)
    u = ((np.arange(w, dtype=np.float32) + 0.5 - w / 2) / ppm)[None, None, :]  # (1, 1, W)
    v = ((h / 2 - np.arange(h, dtype=np.float32) - 0.5) / ppm)[None, :, None]  # (1, H, 1)
    c = centers.astype(np.float32)
    if c1 > c0 and r1 > r0:
        a = u[:, :, c0:c1] - c[:, 0, None, None]  # (K, 1, w')
        b = v[:, r0:r1] - c[:, 1, None, None]  # (K, h', 1)
        m00, m01, m02 = (m[:, 0, j, None, None] for j in range(3))
        m11, m12, m22 = m[:, 1, 1, None, None], m[:, 1, 2, None, None], m[:, 2, 2, None, None]
        bq = m02 * a + m12 * b  # (K, h', w')
        cq = (m00 * a * a - 1.0) + m11 * b * b + 2.0 * m01 * a * b  # (K, h', w')
        disc = bq * bq - m22 * cq
        win_hits = disc > 0
        z = np.where(win_hits, c[:, 2, None, None] + (np.sqrt(np.maximum(disc, 0)) - bq) / m22, -np.inf)
        win = np.argmax(z, axis=0)  # (h', w')
        zwin = np.take_along_axis(z, win[None], axis=0)[0]
        hits[:, r0:r1, c0:c1] = win_hits
        zmax[r0:r1, c0:c1] = zwin
        winner[r0:r1, c0:c1] = np.where(np.isfinite(zwin), win, -1)
    hit = winner >= 0

    if background is None:
        img = backdrop(scene, camera.elevation, size).copy()
    else:
        img = np.empty((h, w, 3), np.float32)
        img[:] = np.asarray(background, np.float32)
    if not hit.any():
        return img, {"winner": winner, "hits": hits}
    ys, xs = np.nonzero(hit)
    wi = winner[ys, xs]  # (N,)
    d = np.stack([u[0, 0, xs] - c[wi, 0], v[0, ys, 0] - c[wi, 1], zmax[ys, xs] - c[wi, 2]], axis=1)  # (N, 3)
    normal = np.einsum("nij,nj->ni", m[wi], d)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-8
    light_dir, key, amb = scene.light()
    lc = (basis @ light_dir).astype(np.float32)
    lambert = np.clip(normal @ lc, 0, None)[:, None]
    sky = (0.8 + 0.2 * normal[:, 1])[:, None]
    albedo = prims.albedo[wi].astype(np.float32)
    printed = prims.graphic[wi] > 0
    if printed.any():
        sel = np.flatnonzero(printed)
        local = np.einsum("nji,nj->ni", rc[wi[sel]], d[sel]) / prims.radii[wi[sel]]  # (S, 3) unit sphere
        on = _graphic_mask(prims.graphic[wi[sel]], local)
        albedo[sel[on]] = prims.graphic_rgb[wi[sel[on]]]
    img[ys, xs] = albedo * (amb.astype(np.float32) * sky + key.astype(np.float32) * lambert)
    return np.clip(img, 0, 1), {"winner": winner, "hits": hits}


@lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return yy, xx


def _shadows(
    img: np.ndarray, placements: Sequence[tuple[Actor, BodyState]], camera: Camera, hit: np.ndarray
) -> None:
    """Soft contact shadows on the ground under each actor (in place, background pixels only)."""
    h, w = img.shape[:2]
    if horizon_fraction(camera.elevation) >= 1.0:
        return
    ppm = h / camera.view_height
    yy, xx = _pixel_grid(h, w)
    shade = np.ones((h, w), np.float32)
    for actor, state in placements:
        x, y, zpos = state.position
        cx, cy = camera.project(np.array([x, 0.0, zpos]), (h, w))
        rx = 0.30 * BUILD_SCALE[actor.build] * ppm
        ry = max(0.30 * ppm * abs(np.sin(np.deg2rad(camera.elevation))), 1.0)
        strength = 0.45 * np.exp(-max(y, 0.0) * 3.0)
        r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        shade *= 1.0 - strength * np.clip(1.0 - r2, 0, 1)
    img *= np.where(hit, 1.0, shade)[..., None]


def _frame_in_fraction(box: tuple[float, float, float, float], h: int, w: int) -> float:
    x0, y0, x1, y1 = box
    area = max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)
    ix = max(0.0, min(x1, w) - max(x0, 0.0))
    iy = max(0.0, min(y1, h) - max(y0, 0.0))
    return float(ix * iy / area)


def _projected_box(prims: Primitives, sel: np.ndarray, camera: Camera, size: tuple[int, int]) -> Box:
    """Analytic screen box of the selected ellipsoids, ignoring the frame and occlusion."""
    h, w = size
    ppm = h / camera.view_height
    basis = camera.basis()
    rc = np.einsum("ij,kjl->kil", basis, prims.rot[sel])
    minv = np.einsum("kij,kj,klj->kil", rc, prims.radii[sel] ** 2, rc)
    ex, ey = np.sqrt(minv[:, 0, 0]) * ppm, np.sqrt(minv[:, 1, 1]) * ppm
    px = camera.project(prims.centers[sel], size)
    return (
        float((px[:, 0] - ex).min()),
        float((px[:, 1] - ey).min()),
        float((px[:, 0] + ex).max()),
        float((px[:, 1] + ey).max()),
    )


def render_scene(
    placements: Sequence[tuple[Actor, BodyState]],
    scene: Scene | None = None,
    camera: Camera | None = None,
    size: int | tuple[int, int] = 64,
    background: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, list[FrameLabels]]:
    """Render any number of actors into one frame. Returns uint8 (H, W, 3) and one label per actor,
    in the order of `placements`. Actors occlude each other through the shared z-buffer. A plain
    `background` colour (rgb in [0, 1]) replaces the scene's backdrop and shadows (light stays the scene's)."""
    scene = scene or Scene()
    camera = camera or Camera()
    hw = _size_hw(size)
    h, w = hw
    if not placements:
        if background is not None:
            return np.full((h, w, 3), np.round(np.asarray(background) * 255), np.uint8), []
        return (backdrop(scene, camera.elevation, hw) * 255 + 0.5).astype(np.uint8), []
    prims = Primitives.concat([body_primitives(a, s, owner=i) for i, (a, s) in enumerate(placements)])
    img, buf = rasterize(prims, scene, camera, hw, background)
    winner = buf["winner"]
    hit = winner >= 0
    if background is None:
        _shadows(img, placements, camera, hit)
    owner = np.where(hit, prims.owner[np.maximum(winner, 0)], -1)
    head = hit & (prims.group[np.maximum(winner, 0)] == GROUP_HEAD)
    labels = []
    for i, (actor, state) in enumerate(placements):
        mine = owner == i
        own = prims.owner == i
        own_head = own & (prims.group == GROUP_HEAD)
        alone = buf["hits"][own].any(axis=0)
        alone_head = buf["hits"][own_head].any(axis=0)
        occl = float(mine.sum()) / max(float(alone.sum()), 1.0)
        occl_head = float((mine & head).sum()) / max(float(alone_head.sum()), 1.0)
        yaw = float((state.yaw - camera.azimuth) % 360.0)
        inframe = _frame_in_fraction(_projected_box(prims, own, camera, hw), h, w)
        inframe_head = _frame_in_fraction(_projected_box(prims, own_head, camera, hw), h, w)
        frontal = 0.5 + 0.5 * np.cos(np.deg2rad(yaw))
        labels.append(
            FrameLabels(
                actor_id=actor.actor_id,
                yaw=yaw,
                person_box=_box(mine),
                face_box=_box(mine & head),
                visibility=round(inframe * occl, 4),
                face_visibility=round(float(inframe_head * occl_head * frontal), 4),
            )
        )
    return (img * 255 + 0.5).astype(np.uint8), labels


def render_frame(
    actor: Actor,
    state: BodyState | None = None,
    scene: Scene | None = None,
    camera: Camera | None = None,
    size: int | tuple[int, int] = 64,
    *,
    yaw: float | None = None,
) -> np.ndarray:
    """One actor, one frame: uint8 (H, W, 3). `yaw` (degrees) overrides the state's yaw."""
    state = state or BodyState()
    if yaw is not None:
        state = BodyState(yaw=float(yaw), position=state.position, pose=state.pose)
    img, _ = render_scene([(actor, state)], scene, camera, size)
    return img
