"""Paths that must stay inside their folder: manifest records (the manifest's folder), bench suite
references (the suite's folder), `bench run --videos DIR` and `data build DIR` inputs.

A path is inside its root when its real location — `..` collapsed and every symbolic link followed —
lies under the root's real location. A user who means to point elsewhere says so with
``--allow-outside-root`` (or the matching config key); nothing else is trusted.
"""

from __future__ import annotations

import os
from pathlib import Path

from wildactor.errors import WildActorError

PathIn = str | bytes | os.PathLike


def is_within(path: PathIn, root: PathIn) -> bool:
    """Whether `path` (absolute, or relative to the working folder) really lies inside `root`."""
    real = os.path.realpath(os.fspath(path))
    base = os.path.realpath(os.fspath(root))
    if isinstance(real, bytes) != isinstance(base, bytes):
        real, base = os.fsencode(real), os.fsencode(base)
    sep = os.sep.encode() if isinstance(base, bytes) else os.sep
    return real == base or real.startswith(base.rstrip(sep) + sep)


def outside_root(root: PathIn, path: str) -> str | None:
    """None if `path` (relative to `root`, or absolute) stays inside `root`; otherwise why not."""
    full = os.path.join(os.fspath(root), path)
    if is_within(full, root):
        return None
    real = os.path.realpath(full)
    how = (
        "an absolute path"
        if os.path.isabs(path)
        else ("'..' or a link" if ".." in Path(path).parts else "a link")
    )
    return f"{path} leads outside {os.fspath(root)} ({how} to {real})"


def resolve_within(
    root: PathIn, path: str, allow_outside: bool = False, flag: str = "--allow-outside-root"
) -> Path:
    """`path` made absolute against `root`; a WildActorError naming `flag` if it leads outside `root`
    and `allow_outside` is False."""
    why = None if allow_outside else outside_root(root, path)
    if why is not None:
        raise WildActorError(f"{why}; pass {flag} if that is meant")
    return Path(os.fspath(root)) / path
