"""Stage 6 — self-crop references from the clip's own frames.

Face crops are 1.35x the face box, body crops 1.10x the person box. Visibility is the share of the
grown crop box that lies inside the frame (a person cut by the frame edge scores low); crops under
0.45 are not used. Body boxes the detector estimated from a face (no body found) are used only when
no frame has a detected body, and are marked ``box_source: estimated_from_face`` in the manifest; the
part of a crop box outside the frame is filled flat white. Among the candidates (the detection samples, labelled by the viewpoint stage)
crops are picked greedily to spread over viewpoints: each next pick is the candidate whose yaw is
farthest from every yaw already picked (ties: higher visibility, larger box).
"""

from __future__ import annotations

from wildactor.data.curate.images import crop, inside_share, scaled_box, write_png
from wildactor.data.curate.stage import Item, Stage, reject
from wildactor.data.curate.video import DecodeError, read_frames
from wildactor.data.schema import angular_distance


def spread_pick(cands: list[dict], k: int) -> list[dict]:
    """Up to k candidates spread over yaw (farthest-point selection on the circle)."""
    if not cands:
        return []
    pool = sorted(cands, key=lambda c: (-c["visibility"], -c["size"], c["frame"]))
    picked = [pool.pop(0)]
    while pool and len(picked) < k:

        def gap(c: dict) -> float:
            if c["angle"] is None:
                return 0.0
            return (
                min(angular_distance(c["angle"], p["angle"]) for p in picked if p["angle"] is not None)
                if any(p["angle"] is not None for p in picked)
                else 180.0
            )

        best = max(pool, key=lambda c: (round(gap(c), 3), c["visibility"], c["size"]))
        pool.remove(best)
        picked.append(best)
    return picked


class CropStage(Stage):
    name = "crops"
    batch_size = 2

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def candidates(self, item: Item, region: str) -> list[dict]:
        cfg = self.config.crops
        w, h = item["probe"]["width"], item["probe"]["height"]
        scale, min_px = (
            (cfg.face_scale, cfg.min_face_px) if region == "face" else (cfg.body_scale, cfg.min_body_px)
        )
        out = []
        for s in item["detect"]["samples"]:
            box = s["face"] if region == "face" else s["person"]
            if box is None or min(box[2] - box[0], box[3] - box[1]) < min_px:
                continue
            estimated = region == "body" and bool(s.get("person_estimated"))
            grown = scaled_box(box, scale)
            vis = inside_share(grown, w, h)
            if vis < cfg.min_visibility:
                continue
            out.append(
                {
                    "box": grown,
                    "visibility": round(vis, 4),
                    "size": (box[2] - box[0]) * (box[3] - box[1]),
                    "frame": s["frame"],
                    "time": s["time"],
                    "angle": s.get("angle"),
                    "view": s.get("view"),
                    "estimated": estimated,
                }
            )
        detected = [c for c in out if not c["estimated"]]
        return detected or out  # a detected body beats one estimated from the face

    def _one(self, item: Item) -> Item:
        cfg = self.config.crops
        picks = {
            "body": spread_pick(self.candidates(item, "body"), cfg.max_body),
            "face": spread_pick(self.candidates(item, "face"), cfg.max_face),
        }
        if not picks["body"]:
            return reject(
                item, self.name, "no_visible_person", f"no body crop with visibility >= {cfg.min_visibility}"
            )
        times = sorted({c["time"] for cs in picks.values() for c in cs})
        try:
            by_time = dict(zip(times, read_frames(item["path"], times, item["probe"]["fps"])))
        except DecodeError as exc:
            return reject(item, self.name, "corrupt_stream", str(exc))
        refs = []
        for region in ("face", "body"):
            for k, c in enumerate(picks[region]):
                fr = by_time[c["time"]]
                rel = f"refs/{item['clip_id']}/self_{region}_{k}.png"
                write_png(crop(fr.rgb, c["box"]), f"{self.out_dir}/{rel}")
                refs.append(
                    {
                        "path": rel,
                        "region": region,
                        "view": c["view"],
                        "angle": c["angle"],
                        "visibility": c["visibility"],
                        "source_frame": int(c["frame"]),
                        "metadata": {
                            "source": "self_crop",
                            "box": [round(v, 2) for v in c["box"]],
                            "box_source": "estimated_from_face" if c["estimated"] else "detected",
                        },
                    }
                )
        item["refs"] = refs
        return item
