"""Stage 2 — person and face detection at a few fps, and the single-person filter.

Back-ends (``detect.backend``):

- ``hog`` (default, no weights to download): OpenCV's built-in HOG people detector for bodies plus
  dlib's HOG frontal-face detector. A face outside every body box stands for a person too (HOG people
  needs a full standing body; close-ups only show a face), with a body box estimated from the face
  and marked so (``person_estimated``); crops prefer frames with a detected body.
- ``silhouette``: foreground pixels that differ from a backdrop model built from the frame's left and
  right borders, row by row; each tall connected blob that reaches below 40% of the frame height is a
  standing person and the top of its box the head.
  It finds people only on backdrops that are plain or vary only with height (studio, sky over ground,
  snow, beach) and is meant for ActorWorld renders, which are too small and too stylised for HOG.
  It reads pixels only, never the renderer's labels.
- ``yolo``: a YOLO (v5/v8 layout) ONNX person detector from a local file, run with OpenCV's DNN
  module; faces still come from dlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.data.curate.stage import Item, Stage, reject
from wildactor.data.curate.video import DecodeError, read_frames, sample_times
from wildactor.errors import WildActorError

Box = list[float]  # [x0, y0, x1, y1] in source pixels


def box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def contains(outer: Box, inner: Box, slack: float = 0.2) -> bool:
    """Whether `inner`'s centre lies in `outer` grown by `slack` of its size."""
    w, h = outer[2] - outer[0], outer[3] - outer[1]
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return (
        outer[0] - slack * w <= cx <= outer[2] + slack * w
        and outer[1] - slack * h <= cy <= outer[3] + slack * h
    )


def body_from_face(face: Box, width: int, height: int) -> Box:
    """A person box implied by a face box (head ~1/7 of a standing body), clipped to the frame."""
    w = face[2] - face[0]
    cx = (face[0] + face[2]) / 2
    return [
        max(0.0, cx - 1.6 * w),
        max(0.0, face[1] - 0.4 * w),
        min(float(width), cx + 1.6 * w),
        min(float(height), face[3] + 6.0 * w),
    ]


def nms(boxes: list[Box], scores: list[float], iou: float = 0.4) -> list[int]:
    order = np.argsort(scores)[::-1]
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i], boxes[j]) < iou for j in keep):
            keep.append(int(i))
    return keep


class FaceDetector:
    """dlib's HOG frontal-face detector (built into dlib: no weight file)."""

    def __init__(self, threshold: float) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.threshold = threshold

    def __call__(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        upsample = 1 if min(rgb.shape[:2]) < 720 else 0
        rects, scores, _ = self.detector.run(rgb, upsample, self.threshold)
        out = [
            ([float(r.left()), float(r.top()), float(r.right()), float(r.bottom())], float(s))
            for r, s in zip(rects, scores)
        ]
        boxes = [b for b, _ in out]
        return [out[i] for i in nms(boxes, [s for _, s in out], 0.3)] if out else []


class HogBackend:
    """OpenCV HOG people + dlib HOG faces."""

    def __init__(self, threshold: float, face_threshold: float) -> None:
        import cv2

        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.threshold = threshold
        self.faces = FaceDetector(face_threshold)

    def bodies(self, rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        if h < 128 or w < 64:
            return []
        rects, weights = self.hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
        boxes = [
            [float(x), float(y), float(x + bw), float(y + bh)]
            for (x, y, bw, bh) in np.asarray(rects).reshape(-1, 4)
        ]
        scores = [float(s) for s in np.asarray(weights).reshape(-1)]
        keep = [i for i in nms(boxes, scores) if scores[i] >= self.threshold]
        return [boxes[i] for i in keep]

    def __call__(self, rgb: np.ndarray) -> tuple[list[Box], list[Box]]:
        return self.bodies(rgb), [b for b, _ in self.faces(rgb)]


class SilhouetteBackend:
    """Foreground blobs against a row-wise backdrop model taken from the frame's left/right borders."""

    def __init__(self, threshold: float, min_area: float) -> None:
        self.threshold = threshold
        self.min_area = min_area

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        img = rgb.astype(np.float32) / 255.0
        h, w = img.shape[:2]
        k = max(2, w // 16)
        border = np.concatenate([img[:, :k], img[:, w - k :]], axis=1)  # (H, 2k, 3)
        row_bg = np.median(border, axis=1, keepdims=True)  # (H, 1, 3)
        dist = np.abs(img - row_bg).max(axis=2)  # (H, W)
        mask = (dist > self.threshold).astype(np.uint8)
        k = max(3, h // 40)  # opening removes thin backdrop edges (horizon lines, mountain ridges)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        return mask

    def __call__(self, rgb: np.ndarray) -> tuple[list[Box], list[Box]]:
        import cv2

        h, w = rgb.shape[:2]
        mask = self.mask(rgb)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        bodies: list[Box] = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < self.min_area * h * w or bh < 1.2 * bw or bh < 0.25 * h or y + bh < 0.4 * h:
                continue  # specks, wide flat shapes, or blobs floating in the sky: not a standing person
            bodies.append([float(x), float(y), float(x + bw), float(y + bh)])
        heads = [
            [b[0] + 0.2 * (b[2] - b[0]), b[1], b[2] - 0.2 * (b[2] - b[0]), b[1] + 0.2 * (b[3] - b[1])]
            for b in bodies
        ]
        return bodies, heads


class YoloBackend:
    """A YOLO ONNX person detector (class 0) through OpenCV DNN, plus dlib faces."""

    def __init__(self, path: str, score: float, face_threshold: float) -> None:
        import cv2

        self.net = cv2.dnn.readNetFromONNX(path)
        self.score = score
        self.faces = FaceDetector(face_threshold)

    def bodies(self, rgb: np.ndarray) -> list[Box]:
        import cv2

        h, w = rgb.shape[:2]
        blob = cv2.dnn.blobFromImage(rgb, 1 / 255.0, (640, 640), swapRB=False, crop=False)
        self.net.setInput(blob)
        out = np.asarray(self.net.forward())[0]  # (84, N) for v8 or (N, 85) for v5
        if out.shape[0] < out.shape[1]:
            out = out.T  # (N, 4 + classes)
        v5 = out.shape[1] == 85
        scores = out[:, 4] * out[:, 5] if v5 else out[:, 4]
        boxes, kept = [], []
        for row, s in zip(out, scores):
            if s < self.score:
                continue
            cx, cy, bw, bh = row[:4]
            boxes.append(
                [
                    (cx - bw / 2) * w / 640,
                    (cy - bh / 2) * h / 640,
                    (cx + bw / 2) * w / 640,
                    (cy + bh / 2) * h / 640,
                ]
            )
            kept.append(float(s))
        return [boxes[i] for i in nms(boxes, kept)] if boxes else []

    def __call__(self, rgb: np.ndarray) -> tuple[list[Box], list[Box]]:
        return self.bodies(rgb), [b for b, _ in self.faces(rgb)]


def check_yolo_path(path: str) -> None:
    if not path:
        raise WildActorError("detect.backend=yolo needs detect.yolo_path: a local YOLO .onnx file")
    if not Path(path).is_file():
        raise WildActorError(f"YOLO weights not found: {path} (detect.yolo_path must be a local .onnx file)")


def merge_people(bodies: list[Box], faces: list[Box], width: int, height: int) -> list[dict]:
    """People in a frame: each detected body with the face inside it, plus faces outside every body,
    whose body box is estimated from the face (``estimated: True``)."""
    people = [{"person": b, "face": None, "estimated": False} for b in bodies]
    for f in faces:
        owner = next((p for p in people if p["face"] is None and contains(p["person"], f, 0.0)), None)
        if owner is not None:
            owner["face"] = f
        elif not any(contains(p["person"], f, 0.0) for p in people):
            people.append({"person": body_from_face(f, width, height), "face": f, "estimated": True})
    return people


def drop_small_others(people: list[dict], min_share: float) -> list[dict]:
    """The largest person, and the others whose box covers at least `min_share` of its area. A person
    far smaller than the subject is a distant passer-by or, far more often, a detector firing on
    texture; it does not make a clip multi-person."""
    if not people:
        return people
    main = max(box_area(p["person"]) for p in people)
    return [p for p in people if box_area(p["person"]) >= min_share * main]


class DetectStage(Stage):
    name = "detect"
    batch_size = 2

    def check(self) -> None:
        if self.config.detect.backend == "yolo":
            check_yolo_path(self.config.detect.yolo_path)

    def setup(self) -> None:
        cfg = self.config.detect
        if cfg.backend == "hog":
            self.backend = HogBackend(cfg.hog_threshold, cfg.face_threshold)
        elif cfg.backend == "silhouette":
            self.backend = SilhouetteBackend(cfg.silhouette_threshold, cfg.min_person_area)
        else:
            check_yolo_path(cfg.yolo_path)
            self.backend = YoloBackend(cfg.yolo_path, cfg.yolo_score, cfg.face_threshold)

    def detect(self, rgb: np.ndarray) -> list[dict]:
        """People in one frame, boxes in the frame's own pixels. Detection runs at a working
        resolution (short side `work_size`, or `upscale_to` for small frames), so a 4K frame is seen
        as a 480p one: HOG's fixed 64x128 window would otherwise fire on fine texture."""
        import cv2

        cfg = self.config.detect
        h, w = rgb.shape[:2]
        scale = 1.0
        if cfg.upscale_to and min(h, w) < cfg.upscale_to:
            scale = cfg.upscale_to / min(h, w)
        elif cfg.work_size and min(h, w) > cfg.work_size:
            scale = cfg.work_size / min(h, w)
        img = rgb
        if scale != 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        bodies, faces = self.backend(img)
        people = drop_small_others(
            merge_people(bodies, faces, img.shape[1], img.shape[0]), cfg.min_other_share
        )
        for p in people:
            p["person"] = [round(v / scale, 2) for v in p["person"]]
            p["face"] = [round(v / scale, 2) for v in p["face"]] if p["face"] else None
        people.sort(key=lambda p: -box_area(p["person"]))
        return people

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        cfg = self.config.detect
        shot, fps = item["shot"], item["probe"]["fps"]
        times = sample_times(shot["start_sec"], shot["end_sec"], cfg.fps, cfg.max_frames)
        try:
            frames = read_frames(item["path"], times, fps)
        except DecodeError as exc:
            return reject(item, self.name, "corrupt_stream", str(exc))
        samples = []
        for fr in frames:
            people = self.detect(fr.rgb)
            samples.append(
                {
                    "time": round(fr.time, 4),
                    "frame": fr.index,
                    "count": len(people),
                    "person": people[0]["person"] if people else None,
                    "person_estimated": bool(people[0]["estimated"]) if people else False,
                    "face": people[0]["face"] if people else None,
                    "others": [p["person"] for p in people[1:]],
                }
            )
        n = len(samples)
        with_person = sum(s["count"] >= 1 for s in samples) / n
        multi = sum(s["count"] >= 2 for s in samples) / n
        item["detect"] = {
            "backend": cfg.backend,
            "samples": samples,
            "person_share": round(with_person, 4),
            "multi_share": round(multi, 4),
        }
        if multi > cfg.max_multi_share:
            return reject(item, self.name, "multi_person", f"2+ people in {multi:.0%} of sampled frames")
        if with_person < cfg.min_person_share:
            return reject(item, self.name, "no_person", f"a person in {with_person:.0%} of sampled frames")
        return item
