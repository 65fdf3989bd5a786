"""The command line explains itself: every subcommand has a description, defaults and valid values are stated."""

from __future__ import annotations

import argparse
import json

import pytest

from wildactor.cli import build_parser
from wildactor.default_model import DEFAULT_MODEL_DIR
from wildactor.world.motions import MOTION_KINDS
from wildactor.world.scenes import SCENE_KINDS


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subparsers(sub, (*path, name))


def test_every_subcommand_has_a_description():
    found = dict(_subparsers(build_parser()))
    assert ("app",) in found and ("world", "render") in found and ("bench", "run") in found
    missing = [" ".join(path) for path, sub in found.items() if not (sub.description or "").strip()]
    assert missing == []


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "generate_defaults.json").is_file(), reason="no shipped model")
def test_help_states_real_defaults_and_valid_values():
    subs = dict(_subparsers(build_parser()))
    generate = " ".join(subs[("generate",)].format_help().split())
    shipped = json.loads((DEFAULT_MODEL_DIR / "generate_defaults.json").read_text())
    assert f"5.0; the embedded model uses {shipped['guidance_scale']})" in generate
    assert f"the embedded model uses {shipped['reference_guidance_scale']})" in generate
    assert "4k+1 for Wan2.2" in generate
    assert "generate_defaults.json" in generate
    render = " ".join(subs[("world", "render")].format_help().split())
    for value in (*SCENE_KINDS, *MOTION_KINDS):
        assert value in render
    assert "180 the back" in render
