"""Small test media for the curation pipeline, made from real images that ship in packages
(scikit-image's astronaut is a real frontal face) and from ActorWorld renders: used by the tests,
the throughput benchmark and ``wildactor data`` demos. Nothing here is downloaded."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int = 8, crf: int = 20) -> Path:
    """Encode RGB frames (H, W, 3) uint8 (even sizes) to H.264 MP4."""
    import av

    path = Path(os.fsdecode(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(os.fsencode(path).decode("utf-8", "surrogateescape"), "w") as c:
        stream = None
        for f in frames:
            if stream is None:
                stream = c.add_stream("libx264", rate=fps)
                stream.height, stream.width = f.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "ultrafast"}
            for p in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)
    return path


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def astronaut_frames(
    n: int = 16, size: int = 192, drift: float = 2.0, seed: int = 0, flip: bool = False
) -> list[np.ndarray]:
    """A slowly moving, slightly zooming crop around the astronaut's face and shoulders."""
    import cv2

    img = _astronaut()
    if flip:
        img = img[:, ::-1]
    rng = np.random.default_rng(seed)
    cx, cy = (220.0 if not flip else 292.0), 170.0
    out = []
    for t in range(n):
        s = 300 - 1.5 * t
        x = cx + drift * t + rng.uniform(-0.5, 0.5) - s / 2
        y = cy + 0.5 * drift * t - s / 2
        m = np.array([[size / s, 0, -x * size / s], [0, size / s, -y * size / s]])
        out.append(cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REFLECT))
    return out


def astronaut_camera_frames(
    n: int = 16,
    width: int = 256,
    height: int = 144,
    zoom: float = 1.0,
    pan: float = 0.0,
    span: float = 284.0,
) -> list[np.ndarray]:
    """A camera move over the astronaut photo at any output size (e.g. 3840x2160): the view starts on
    her face and shoulders (`span` source pixels high) and ends `zoom` times closer (zoom > 1 zooms in)
    and `pan` source pixels to the right, centred on her face."""
    import cv2

    img = _astronaut()
    out = []
    for t in range(n):
        a = t / max(n - 1, 1)
        s = span / (zoom**a)  # source pixels the view spans vertically
        cx, cy = 250.0 + pan * a, 150.0
        k = height / s
        m = np.array([[k, 0, width / 2 - k * cx], [0, k, height / 2 - k * cy]])
        out.append(
            cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        )
    return out


def two_people_frames(n: int = 16, size: int = 192) -> list[np.ndarray]:
    """Two people side by side (the astronaut and her mirror image), as a wide frame."""
    a, b = astronaut_frames(n, size), astronaut_frames(n, size, seed=1, flip=True)
    return [np.concatenate([x, y], axis=1) for x, y in zip(a, b)]


def still_frames(name: str, n: int = 16, size: int = 192) -> list[np.ndarray]:
    """A moving crop of a scikit-image picture with no person (e.g. "coffee", "rocket")."""
    import cv2
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    s = min(h, w) * 0.8
    return [
        cv2.warpAffine(img, np.array([[size / s, 0, -(2 * t) * size / s], [0, size / s, 0]]), (size, size))
        for t in range(n)
    ]


def bad_corpus(folder: str | os.PathLike, fps: int = 8) -> dict[str, str]:
    """Write one file per kind of bad input; returns {kind: file name}. Kinds: corrupt_container,
    corrupt_stream, truncated, empty_file, text_as_mp4, image_as_mp4, no_person, two_people,
    grayscale, huge_resolution, non_utf8_name, too_short."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = write_video(folder / ".good.tmp.mp4", astronaut_frames(16), fps=fps)
    data = good.read_bytes()
    kinds: dict[str, str] = {}

    def put(kind: str, name: str, content: bytes) -> None:
        (folder / name).write_bytes(content)
        kinds[kind] = name

    broken = bytearray(data)
    broken[:64] = bytes(64)
    put("corrupt_container", "corrupt_header.mp4", bytes(broken))
    mdat = data.find(b"mdat")
    noisy = bytearray(data)
    noisy[mdat + 8 : mdat + 8 + 1500] = (
        np.random.default_rng(0).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    )
    put("corrupt_stream", "corrupt_stream.mp4", bytes(noisy))
    put("truncated", "truncated.mp4", data[: len(data) // 2])
    put("empty_file", "empty.mp4", b"")
    put("text_as_mp4", "notes.mp4", b"this is a text file, not a video\n" * 20)
    ok, png = cv2.imencode(".png", _astronaut()[:, :, ::-1])
    put("image_as_mp4", "photo.mp4", png.tobytes())
    write_video(folder / "coffee.mp4", still_frames("coffee"), fps=fps)
    kinds["no_person"] = "coffee.mp4"
    write_video(folder / "two_people.mp4", two_people_frames(), fps=fps)
    kinds["two_people"] = "two_people.mp4"
    gray = [
        np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in astronaut_frames(16)
    ]
    write_video(folder / "gray.mp4", gray, fps=fps)
    kinds["grayscale"] = "gray.mp4"
    write_video(folder / "huge.mp4", [np.full((2400, 4096, 3), 90, np.uint8)] * 2, fps=1)
    kinds["huge_resolution"] = "huge.mp4"
    bad_name = os.fsencode(str(folder)) + b"/caf\xe9_latin1.mp4"
    with open(bad_name, "wb") as f:
        f.write(data)
    kinds["non_utf8_name"] = os.fsdecode(b"caf\xe9_latin1.mp4")
    write_video(folder / "short.mp4", astronaut_frames(3), fps=fps)
    kinds["too_short"] = "short.mp4"
    good.unlink()
    return kinds


def world_clip(
    path: str | os.PathLike,
    actor: int | str,
    yaw: float = 0.0,
    motion: str = "idle",
    scene: str = "studio",
    n: int = 16,
    size: int = 128,
    fps: int = 8,
    sweep: float = 180.0,
    partner: int | str | None = None,
) -> dict:
    """Render an ActorWorld clip to MP4 plus its `.json` sidecar (labels and prompt). With `partner`,
    a second actor is composited into the same frames (a two-person clip). Returns the sidecar."""
    from wildactor.world.actors import Actor
    from wildactor.world.body import BodyState
    from wildactor.world.camera import Camera
    from wildactor.world.motions import Motion
    from wildactor.world.renderer import render_scene
    from wildactor.world.scenes import LIGHTINGS, Scene

    a = Actor.from_id(actor)
    m = Motion(kind=motion, yaw=yaw, sweep=sweep)
    sc = Scene(kind=scene, lighting=LIGHTINGS[scene][0])
    cam = Camera(distance=3.6 if partner is not None else 3.0)
    frames, labels = [], []
    for i in range(n):
        st = m.state(i / max(n - 1, 1))
        placements = [(a, st)]
        if partner is not None:
            shift = BodyState(yaw=st.yaw, position=(st.position[0] - 0.55, 0.0, st.position[2]), pose=st.pose)
            other = BodyState(yaw=(yaw + 30.0) % 360.0, position=(0.6, 0.0, 0.0))
            placements = [(a, shift), (Actor.from_id(partner), other)]
        img, lbs = render_scene(placements, sc, cam, size)
        frames.append(img)
        labels.append(
            {"yaw": round(lbs[0].yaw, 3), "person_box": lbs[0].person_box, "face_box": lbs[0].face_box}
        )
    write_video(path, frames, fps=fps)
    side = {
        "actor_id": a.actor_id,
        "scene": scene,
        "lighting": sc.lighting,
        "prompt": f"a person ({motion.replace('_', ' ')}) in a {scene.replace('_', ' ')} scene",
        "num_actors": 1 if partner is None else 2,
        "frames": labels,
        "fps": fps,
    }
    Path(str(path) + ".json").write_text(json.dumps(side), encoding="utf-8")
    return side
