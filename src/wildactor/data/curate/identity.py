"""Stage 3 — face-identity consistency at 1 fps: every face's cosine similarity to the clip's medoid
face must reach the threshold (ArcFace 0.40; dlib 0.90, calibrated: see faces.py and docs/curate.md).

A clip where no face is visible (e.g. filmed from behind) cannot be checked by a face model; it is
kept and marked ``checked: false`` (the tracking stage still checks that one subject persists).
"""

from __future__ import annotations

from wildactor.data.curate.detect import FaceDetector, contains
from wildactor.data.curate.faces import check_arcface_path, make_embedder, medoid_similarities
from wildactor.data.curate.stage import Item, Stage, reject
from wildactor.data.curate.video import DecodeError, read_frames, sample_times


def nearest_sample(samples: list[dict], t: float) -> dict:
    return min(samples, key=lambda s: abs(s["time"] - t))


class IdentityStage(Stage):
    name = "identity"
    batch_size = 2

    def check(self) -> None:
        if self.config.identity.backend == "arcface":
            check_arcface_path(self.config.identity.arcface_path)

    def setup(self) -> None:
        cfg = self.config.identity
        self.embedder = make_embedder(cfg.backend, cfg.arcface_path)
        self.faces = FaceDetector(self.config.detect.face_threshold) if self.embedder.uses_faces else None
        self.threshold = cfg.threshold if cfg.threshold is not None else self.embedder.default_threshold

    def face_in(self, rgb, person: list[float] | None) -> list[float] | None:
        """The detected face inside the person box (largest if several)."""
        found = [b for b, _ in self.faces(rgb)]
        if person is not None:
            found = [b for b in found if contains(person, b, 0.1)]
        return max(found, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if found else None

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        cfg = self.config.identity
        shot, samples = item["shot"], item["detect"]["samples"]
        times = sample_times(shot["start_sec"], shot["end_sec"], cfg.fps, cfg.max_frames)
        try:
            frames = read_frames(item["path"], times, item["probe"]["fps"])
        except DecodeError as exc:
            return reject(item, self.name, "corrupt_stream", str(exc))
        embeddings, used = [], []
        for fr in frames:
            near = nearest_sample(samples, fr.time)
            person = near["person"]
            face = self.face_in(fr.rgb, person) if self.faces is not None else None
            v = self.embedder.embed(fr.rgb, face, person)
            if v is not None:
                embeddings.append(v)
                used.append(fr.index)
        info = {"backend": self.embedder.backend, "threshold": self.threshold, "num_faces": len(embeddings)}
        item["identity"] = info
        if len(embeddings) < cfg.min_faces:
            info["checked"] = False
            return item
        m, sims = medoid_similarities(embeddings)
        info.update(
            checked=True,
            min_similarity=round(float(sims.min()), 4),
            medoid_frame=used[m],
            medoid=[round(float(x), 6) for x in embeddings[m]],
        )
        if sims.min() < self.threshold:
            worst = int(sims.argmin())
            return reject(
                item,
                self.name,
                "identity_inconsistent",
                f"frame {used[worst]} similarity {sims.min():.3f} < {self.threshold} to the medoid face",
            )
        return item
