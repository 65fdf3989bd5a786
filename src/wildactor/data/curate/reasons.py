"""Every reason the curation pipeline can give for a reject: one place, checked by `reject()` and by a
test against the table in docs/curate.md.

``CLIP_REASONS``: why an input or a clip is not in the manifest (``kind: clip`` rows of the rejects
table). ``REFERENCE_REASONS``: why an augmented reference was dropped from a kept clip (``kind:
reference`` rows).
"""

from __future__ import annotations

CLIP_REASONS: dict[str, str] = {
    "hidden_file": "the file name starts with a dot (listed, not read)",
    "special_file": "not a regular file: a folder with a video extension, a FIFO, a socket or a device",
    "outside_root": "a symbolic link that leads out of the input folder (see --allow-outside-root)",
    "bad_filename": "the file name is not valid UTF-8",
    "unreadable_file": "the file cannot be read (permissions, vanished, I/O error)",
    "empty_file": "0 bytes",
    "too_large": "over probe.max_file_bytes, or more pixels than probe.max_pixels",
    "still_image": "an image file (PNG, JPEG, GIF, ...), not a video",
    "not_a_video": "a text file",
    "truncated": "the file ends before its container says it does (box past the end, missing frames, "
    "or decoded duration short of the container's)",
    "corrupt_container": "the container cannot be opened, or has no frame rate",
    "no_video_stream": "a container with no video stream (e.g. audio only)",
    "too_small": "shorter side below probe.min_side",
    "too_short": "shorter than probe.min_duration_sec",
    "too_long": "longer than probe.max_duration_sec",
    "grayscale": "mean chroma below probe.grayscale_chroma",
    "corrupt_stream": "the container opens but frames fail to decode",
    "shot_too_short": "a shot shorter than shots.min_shot_sec",
    "no_person": "a person in fewer than detect.min_person_share of the sampled frames",
    "multi_person": "two or more people in more than detect.max_multi_share of the sampled frames",
    "identity_inconsistent": "a face's similarity to the clip's medoid face below the threshold",
    "tracking_inconsistent": "track ratio below tracking.min_ratio (the subject does not persist)",
    "no_visible_person": "no body crop with visibility >= crops.min_visibility",
    "export_failed": "the clip could not be re-encoded",
    "stage_error": "an unexpected exception on this item (the run goes on)",
}

REFERENCE_REASONS: dict[str, str] = {
    "editor_unsupported": "the editor cannot make this edit (e.g. an expression on ActorWorld)",
    "no_face_found": "no face in the edited reference (requested back views excepted)",
    "identity_unverifiable": "the clip has no self-crop identity to compare with",
    "identity_mismatch": "the edited reference's similarity to the clip's identity below the threshold",
}


def check_reason(reason: str, kind: str = "clip") -> str:
    """The reason, if it is a documented one; ValueError otherwise (a programming error, not bad input)."""
    known = CLIP_REASONS if kind == "clip" else REFERENCE_REASONS
    if reason not in known:
        raise ValueError(
            f"undocumented {kind} reject reason {reason!r}: add it to reasons.py and docs/curate.md"
        )
    return reason
