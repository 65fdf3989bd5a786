"""OpenS2V-Eval (PKU-YuanGroup/OpenS2V-Nexus) as an Actor-Bench suite, and its leaderboard arithmetic.

OpenS2V-Eval ships `{Open,Human,Single}-Domain_Eval.json`, each `{case_id: {img_paths, prompt, class_label,
synthesis_flag}}`, and an image folder the `img_paths` are relative to. A system writes `<case_id>.mp4`.
`opens2v_suite` turns one file into a suite whose item ids are the case ids, so any system's videos score as
is and `bench run --model` generates the same cases. Cases WildActor cannot generate (objects, several
subjects) are returned with their reason instead of being dropped silently.

The leaderboard's TotalScore (OpenS2V's `eval/merge_result.py`): each metric is averaged over the cases that
have it (after clipping), mapped to [0, 1] with a fixed range, and weighted; Human-Domain has no NexusScore.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

DOMAINS: tuple[str, ...] = ("human", "single", "open")
HUMAN_LABELS: frozenset[str] = frozenset({"man", "woman", "human", "person"})

# Metric keys as OpenS2V's merged per-case JSON names them.
METRIC_KEYS: tuple[str, ...] = (
    "aes_score",
    "motion_smoothness",
    "motion_amplitude",
    "facesim_cur",
    "gme_score",
    "nexus_score",
    "natural_score",
)
# (min, max) used to clip the per-case values (where OpenS2V clips) and to normalise the mean.
RANGES: dict[str, tuple[float, float]] = {
    "aes_score": (4.0, 7.0),
    "motion_smoothness": (0.0, 1.0),
    "motion_amplitude": (0.0, 1.0),
    "facesim_cur": (0.0, 1.0),
    "gme_score": (0.0, 1.0),
    "nexus_score": (0.0, 0.05),
    "natural_score": (1.0, 5.0),
}
WEIGHTS: dict[str, dict[str, float]] = {
    "open": {
        "aes_score": 0.16,
        "motion_smoothness": 0.06,
        "motion_amplitude": 0.02,
        "facesim_cur": 0.20,
        "gme_score": 0.12,
        "nexus_score": 0.20,
        "natural_score": 0.24,
    },
    "human": {
        "aes_score": 0.18,
        "motion_smoothness": 0.09,
        "motion_amplitude": 0.03,
        "facesim_cur": 0.25,
        "gme_score": 0.15,
        "natural_score": 0.30,
    },
}
WEIGHTS["single"] = WEIGHTS["open"]  # merge_result.py weighs every domain but Human-Domain the Open way
# Leaderboard CSV columns (results_<Domain>.csv) and the metric behind each.
LEADERBOARD_COLUMNS: dict[str, str] = {
    "aes_score": "Aesthetics↑",
    "motion_smoothness": "MotionSmoothness↑",
    "motion_amplitude": "MotionAmplitude↑",
    "facesim_cur": "FaceSim↑",
    "gme_score": "GmeScore↑",
    "nexus_score": "NexusScore↑",
    "natural_score": "NaturalScore↑",
}


@dataclass(frozen=True)
class Case:
    """One OpenS2V-Eval case."""

    case_id: str
    prompt: str
    img_paths: tuple[str, ...]
    class_labels: tuple[str, ...]

    @property
    def kind(self) -> str:
        """The case family, the id without its number (`singleface_3` -> `singleface`)."""
        return self.case_id.rsplit("_", 1)[0]


def load_eval_json(path: str | os.PathLike[str]) -> list[Case]:
    """Read and check an OpenS2V-Eval JSON file; every problem is listed in one WildActorError."""
    path = Path(path)
    if not path.is_file():
        raise WildActorError(f"OpenS2V-Eval JSON not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WildActorError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise WildActorError(f"{path}: expected a non-empty mapping {{case_id: {{img_paths, prompt, ...}}}}")
    cases, errors = [], []
    for cid, d in data.items():
        if not isinstance(d, dict):
            errors.append(f"{cid}: a case must be a mapping")
            continue
        paths, labels, prompt = d.get("img_paths"), d.get("class_label", []), d.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            errors.append(f"{cid}.prompt: missing or empty")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            errors.append(f"{cid}.img_paths: must be a non-empty list of paths")
            continue
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors.append(f"{cid}.class_label: must be a list of strings")
            continue
        cases.append(Case(str(cid), str(prompt), tuple(paths), tuple(labels)))
    if errors:
        more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        raise WildActorError(f"{path}: invalid OpenS2V-Eval file: " + "; ".join(errors[:20]) + more)
    return cases


def case_region(case: Case) -> tuple[str | None, str]:
    """(reference region, "") for a case WildActor can generate (one person), else (None, why not)."""
    if len(case.img_paths) != 1:
        return None, f"{len(case.img_paths)} reference subjects (WildActor generates one identity)"
    if len(case.class_labels) > 1:
        return None, f"{len(case.class_labels)} class labels (WildActor generates one identity)"
    label = case.class_labels[0] if case.class_labels else ""
    if label.lower() not in HUMAN_LABELS:
        return None, f"subject is an object ({label or 'no class label'}), not a person"
    # singleface references are tight face crops; singlehuman ones show the person.
    return ("face" if "face" in case.kind else "body"), ""


def opens2v_suite(
    eval_json: str | os.PathLike[str],
    images: str | os.PathLike[str],
    suite_path: str | os.PathLike[str],
    domain: str = "human",
) -> tuple[dict[str, Any], dict[str, str]]:
    """(suite dict written next to `suite_path`, {case_id: reason} of the cases left out).

    Suite reference paths must stay inside the suite's folder (`wildactor.paths`), so each case's reference image
    is copied next to the suite (`<suite stem>_images/<case_id>/`) and named relative to it: the suite folder is
    self-contained and moves as one.
    """
    if domain not in DOMAINS:
        raise WildActorError(f"unknown domain {domain!r} (use one of {', '.join(DOMAINS)})")
    cases = load_eval_json(eval_json)
    images = Path(images)
    if not images.is_dir():
        raise WildActorError(f"OpenS2V-Eval image folder not found: {images}")
    root = Path(suite_path).resolve().parent
    copies = root / f"{Path(suite_path).stem}_images"
    subjects, excluded, missing = [], {}, []
    for c in cases:
        region, why = case_region(c)
        if region is None:
            excluded[c.case_id] = why
            continue
        img = images / c.img_paths[0]
        if not img.is_file():
            missing.append(str(img))
            continue
        local = copies / c.case_id / img.name
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, local)
        subjects.append(
            {
                "id": c.case_id,
                "references": {
                    "in_the_wild": [{"path": local.relative_to(root).as_posix(), "region": region}]
                },
                "contextual": [{"text": c.prompt, "id": c.case_id, "opens2v_kind": c.kind}],
            }
        )
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise WildActorError(
            f"{len(missing)} reference image(s) not under --images {images}: {', '.join(missing[:5])}{more}"
        )
    if not subjects:
        raise WildActorError(f"{eval_json}: no case WildActor can generate ({len(excluded)} left out)")
    suite = {
        "name": f"opens2v-{domain}",
        "description": f"OpenS2V-Eval {domain} domain from {Path(eval_json).name}: {len(subjects)} of "
        f"{len(cases)} cases ({len(excluded)} left out: objects or several subjects)",
        # OpenS2V's reference videos are 49 frames at 480p; generation settings stay overridable per run.
        "video": {"num_frames": 49, "height": 480, "width": 832, "fps": 16, "steps": 50, "seed": 0},
        "subjects": subjects,
    }
    return suite, excluded


def domain_of_suite(name: str) -> str | None:
    """The OpenS2V domain of an imported suite's name (`opens2v-human` -> `human`), or None."""
    head, _, tail = name.partition("-")
    return tail if head == "opens2v" and tail in DOMAINS else None


def total_score(
    per_case: dict[str, dict[str, float]], domain: str
) -> tuple[dict[str, float | None], float | None, list[str]]:
    """OpenS2V's leaderboard arithmetic over merged per-case values.

    Returns ({metric: normalised mean in [0, 1] or None when no case has it}, TotalScore or None, [the
    weighted metrics that are missing]). TotalScore is computed only when every weighted metric is present.
    """
    if domain not in WEIGHTS:
        raise ValueError(f"unknown domain {domain!r}")
    norm: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        lo, hi = RANGES[key]
        vals = []
        for scores in per_case.values():
            v = scores.get(key)
            if v is None:
                continue
            if key == "nexus_score" and v == 0:
                continue  # OpenS2V averages NexusScore over cases where something was retrieved
            if key in ("motion_amplitude", "motion_smoothness"):
                v = abs(v)
            v = min(v, hi)
            if key in ("aes_score", "natural_score"):
                v = max(v, lo)
            vals.append(v)
        norm[key] = None if not vals else (sum(vals) / len(vals) - lo) / (hi - lo)
    weights = WEIGHTS[domain]
    missing = [k for k in weights if norm[k] is None]
    total = None if missing else sum(w * norm[k] for k, w in weights.items())
    return norm, total, missing
