"""Stage 8 — identity check of every augmented reference.

Each edited reference is embedded with the identity stage's back-end and compared (cosine) with the
clip's identity: the medoid face of the identity stage, or, when that stage found no faces, the medoid
of the clip's self-crops. Below the threshold it is dropped with reason ``identity_mismatch``; with no
face found it is dropped (``no_face_found``) unless it is a requested back view, which shows no face
and is kept marked ``id_check: no_face_back_view`` (switch off with ``idcheck.keep_faceless_back``).
"""

from __future__ import annotations

import numpy as np

from wildactor.data.curate.detect import FaceDetector
from wildactor.data.curate.faces import make_embedder, medoid_similarities
from wildactor.data.curate.images import read_png
from wildactor.data.curate.stage import Item, Stage, drop_reference


class IdCheckStage(Stage):
    name = "idcheck"
    batch_size = 2

    def setup(self) -> None:
        cfg = self.config.identity
        self.embedder = make_embedder(cfg.backend, cfg.arcface_path)
        self.faces = FaceDetector(self.config.detect.face_threshold) if self.embedder.uses_faces else None
        thr = self.config.idcheck.threshold
        self.threshold = (
            thr
            if thr is not None
            else (cfg.threshold if cfg.threshold is not None else self.embedder.default_threshold)
        )

    def embed_image(self, rgb: np.ndarray) -> np.ndarray | None:
        import cv2

        h, w = rgb.shape[:2]
        if self.faces is None:
            return self.embedder.embed(rgb, None, [0.0, 0.0, float(w), float(h)])
        scale = max(1.0, 160.0 / min(h, w))
        img = (
            cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
            if scale > 1
            else rgb
        )
        found = [b for b, _ in self.faces(img)]
        if not found:
            return None
        face = max(found, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        return self.embedder.embed(img, face, None)

    def reference(self, item: Item, region: str) -> np.ndarray | None:
        ident = item.get("identity", {})
        if self.faces is not None and ident.get("checked"):
            return np.asarray(ident["medoid"], dtype=np.float64)
        want = region if self.faces is None else None
        vecs = []
        for ref in item["refs"]:
            if ref["metadata"].get("source") != "self_crop" or (want and ref["region"] != want):
                continue
            v = self.embed_image(read_png(f"{self.out_dir}/{ref['path']}"))
            if v is not None:
                vecs.append(v)
        if not vecs:
            return None
        m, _ = medoid_similarities(vecs)
        return vecs[m]

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        cfg = self.config.idcheck
        refs_cache: dict[str, np.ndarray | None] = {}
        kept = 0
        for ref in item.pop("augmented", []):
            region = "body" if ref["region"] == "three_view" else ref["region"]
            if region not in refs_cache:
                refs_cache[region] = self.reference(item, region)
            target = refs_cache[region]
            vec = self.embed_image(read_png(f"{self.out_dir}/{ref['path']}"))
            drop = None
            if vec is None:
                if cfg.keep_faceless_back and ref["view"] == "back":
                    ref["metadata"]["id_check"] = "no_face_back_view"
                else:
                    drop = ("no_face_found", "no face in the edited reference")
            elif target is None:
                drop = ("identity_unverifiable", "the clip has no identity to compare with")
            else:
                sim = float(np.dot(vec, target))
                ref["metadata"]["id_similarity"] = round(sim, 4)
                if sim < self.threshold:
                    drop = ("identity_mismatch", f"similarity {sim:.3f} < {self.threshold}")
            if drop:
                drop_reference(item, ref["path"], self.name, drop[0], drop[1])
            else:
                item["refs"].append(ref)
                kept += 1
        item["idcheck"] = {"threshold": self.threshold, "kept": kept}
        return item
