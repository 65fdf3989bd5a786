"""`wildactor world make`, references and prompts: schema-valid, deterministic, resumable, honest stats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wildactor.cli import main as cli_main
from wildactor.data.schema import load_manifest, read_manifest, view_bin
from wildactor.errors import WildActorError
from wildactor.world.actors import Actor
from wildactor.world.body import BodyState
from wildactor.world.clips import ClipSpec, render_clip
from wildactor.world.make import WorldConfig, _clip_spec, heldout_actors, make_world
from wildactor.world.motions import Motion
from wildactor.world.prompts import clip_prompt, make_storyline
from wildactor.world.references import VIEW_AUG_ANGLES, ActorWorldEditor, scaled_box, self_crop
from wildactor.world.renderer import render_scene
from wildactor.world.scenes import Scene

TINY = dict(actors=3, clips_per_actor=2, num_frames=4, size=32, ref_size=32, heldout_fraction=0.34)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("world")
    stats = make_world(WorldConfig(**TINY), out, progress=False)
    return out, stats


def test_manifest_validates_against_the_schema_with_files(world):
    out, _ = world
    records = load_manifest(out / "manifest.jsonl", check_files=True)
    assert len(records) == 6
    parquet = read_manifest(out / "manifest.parquet")
    assert [r.to_dict() for r in parquet] == [r.to_dict() for r in records]
    for r in records:
        sources = {ref.source for ref in r.refs}
        assert {"view_aug", "canonical"} <= sources
        assert r.width == r.height == 32 and r.duration_sec == pytest.approx(0.5)
        labels = json.loads((out / r.extra["labels"]).read_text())
        assert labels["actor_id"] == r.actor_id and len(labels["frames"]) == 4


def test_stats_table_sums_match_the_files_written(world):
    out, stats = world
    pngs = list((out / "refs").rglob("*.png"))
    assert sum(row["count"] for row in stats["table"]) == stats["references"] == len(pngs)
    assert stats["clips"] == len(list((out / "clips").rglob("*.mp4"))) == 6
    for row in stats["table"]:
        assert row["front"] + row["side"] + row["back"] == pytest.approx(100.0, abs=0.2)
    assert stats["splits"] == {"train": 4, "heldout": 2}
    assert (out / "stats.md").read_text().count("|") > 20


def test_heldout_split_is_by_actor(world):
    out, _ = world
    train = {r.actor_id for r in read_manifest(out / "manifest_train.jsonl")}
    held = {r.actor_id for r in read_manifest(out / "manifest_heldout.jsonl")}
    assert held and train and not (held & train)
    assert held == heldout_actors(WorldConfig(**TINY))


def test_make_is_deterministic_and_resumable(world, tmp_path):
    out, _ = world
    reference_manifest = (out / "manifest.jsonl").read_text()
    again = tmp_path / "again"
    make_world(WorldConfig(**TINY), again, progress=False)
    assert (again / "manifest.jsonl").read_text() == reference_manifest
    png = "refs/actor_000001/clip_001_body_view_aug_left.png"
    assert (again / png).read_bytes() == (out / png).read_bytes()
    # Resume: an unfinished actor (no records file) is redone, finished ones are kept.
    (again / "records" / "actor_000002.jsonl").unlink()
    make_world(WorldConfig(**TINY), again, progress=False)
    assert (again / "manifest.jsonl").read_text() == reference_manifest
    with pytest.raises(WildActorError, match="other settings"):
        make_world(WorldConfig(**{**TINY, "seed": 1}), again, progress=False)


def test_frontal_bias_sets_self_crop_views():
    rng = np.random.default_rng(0)
    actor = Actor.from_id(0)
    targets = [_clip_spec(actor, WorldConfig(), rng)[1] for _ in range(3000)]
    freq = {b: targets.count(b) / len(targets) for b in ("front", "side", "back")}
    assert freq["front"] == pytest.approx(0.628, abs=0.03) and freq["side"] == pytest.approx(0.366, abs=0.03)
    spec, target = _clip_spec(actor, WorldConfig(frontal_bias=(0.0, 0.0, 1.0)), rng)
    assert target == "back" and view_bin(spec.motion.yaw_at(0.0)) == "back"
    with pytest.raises(ValueError, match="frontal_bias"):
        WorldConfig(frontal_bias=(0.5, 0.5, 0.5))


def test_cli_make_and_user_errors(tmp_path, capsys):
    rc = cli_main(["world", "make", "--actors", "1", "--clips-per-actor", "1", "--frames", "3", "--size", "32",
                   "--ref-size", "16", "--out", str(tmp_path / "w"), "--quiet", "--no-three-view", "--attr-aug", "0"])  # fmt: skip
    assert rc == 0 and (tmp_path / "w" / "manifest.parquet").is_file()
    assert "| body | self_crop |" in capsys.readouterr().out
    rc = cli_main(
        [
            "world",
            "make",
            "--actors",
            "1",
            "--clips-per-actor",
            "1",
            "--size",
            "33",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2 and "even" in capsys.readouterr().err


def test_self_crops_use_the_paper_scales_and_visibility():
    assert scaled_box((10, 20, 30, 60), 1.10) == pytest.approx((9.0, 18.0, 31.0, 62.0))
    actor = Actor.from_id(7)
    img, (front,) = render_scene([(actor, BodyState(yaw=0))], Scene(), None, 128)
    face = self_crop(img, front, "face", 3, out_size=48)
    assert (
        face is not None
        and face.image.shape == (48, 48, 3)
        and face.view == "front"
        and face.source_frame == 3
    )
    img, (back,) = render_scene([(actor, BodyState(yaw=180))], Scene(), None, 128)
    assert self_crop(img, back, "face", 0) is None  # face not visible from behind
    body = self_crop(img, back, "body", 0)
    assert (
        body is not None
        and body.view == "back"
        and body.to_record("b.png").metadata == {"source": "self_crop"}
    )


def test_view_aug_three_view_and_attr_aug():
    editor = ActorWorldEditor(out_size=32, render_size=96)
    actor = Actor.from_id(3)
    refs = editor.view_aug(actor, BodyState(), Scene())
    assert sorted((r.region, r.view) for r in refs) == sorted(
        (g, v) for g in ("face", "body") for v in VIEW_AUG_ANGLES
    )
    back_body = next(r for r in refs if r.region == "body" and r.view == "back")
    assert back_body.angle == 180.0 and back_body.source == "view_aug"
    sheet = editor.three_view(actor)
    assert sheet.region == "three_view" and sheet.view == "canonical"
    assert (sheet.image[:2, :2] == 255).all() and sheet.image.std() > 20  # white paper, a figure on it
    attr = editor.attr_aug(actor, 20.0, None, np.random.default_rng(0), count=2)
    assert len(attr) == 2 and all(r.source == "attr_aug" for r in attr)
    assert not np.array_equal(attr[0].image, attr[1].image)


def test_prompts_follow_the_labels():
    actor = Actor.from_id(0).with_attributes(hair_colour="blonde", hair_style="long", top_colour="red")
    spec = ClipSpec(
        actor=actor, motion=Motion("turn_around", yaw=180, sweep=180), scene=Scene("snow", "sunset")
    )
    text = clip_prompt(spec)
    assert "long blonde hair" in text and "red t-shirt" in text
    assert "snowy field" in text and "at sunset" in text and "to face the camera" in text
    walk = clip_prompt(
        ClipSpec(actor=actor, motion=Motion("walk_across", yaw=90), scene=Scene("night", "lamplight"))
    )
    assert "walks across a park at night" in walk and "seen from the side" in walk
    story = make_storyline(actor, np.random.default_rng(1))
    assert len(story.prompts) == 3 and len({s.scene.kind for s in story.shots}) == 3
    assert "blonde" in story.prompts[0] and story.prompts[1].startswith("Then the same person")
    assert render_clip(story.shots[0]).frames.shape[0] == story.shots[0].num_frames


def test_fit_vae_needs_a_world_folder(tmp_path, capsys):
    from wildactor.cli import main

    assert main(["world", "fit-vae", "--data", str(tmp_path), "--out", str(tmp_path / "vae")]) == 2
    assert "world make" in capsys.readouterr().err


def test_fit_vae_on_a_world_writes_a_loadable_projected_vae(world, tmp_path, capsys):
    from wildactor.cli import main
    from wildactor.media import read_mp4
    from wildactor.model.pixel_vae import PixelShuffleVAE

    out, _ = world
    code = main(["world", "fit-vae", "--data", str(out), "--latent-channels", "20", "--every", "1",
                 "--out", str(tmp_path / "vae")])  # fmt: skip
    assert code == 0 and "of the block variance" in capsys.readouterr().out
    vae = PixelShuffleVAE.from_pretrained(tmp_path / "vae")
    assert vae.config.z_dim == 20 and len(vae.config.latents_std) == 20
    first = json.loads((out / "manifest_train.jsonl").read_text().splitlines()[0])
    video = (
        torch.from_numpy(read_mp4(out / first["video"]).copy()).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    )
    back = vae.decode(vae.encode(video).latent_dist.mode()).sample
    assert (back - video).pow(2).mean() < 0.05 * video.var()  # a 20-of-48 projection keeps the clip


def _clip_scene(out: Path, rec) -> str:
    return json.loads((out / rec.video.replace("clips/", "labels/").replace(".mp4", ".json")).read_text())[
        "scene"
    ]


def test_view_aug_references_never_show_the_clips_scene(world):
    out, _ = world
    for rec in read_manifest(out / "manifest.jsonl"):
        aug_scenes = [r.metadata["scene"] for r in rec.refs if r.metadata["source"] == "view_aug"]
        assert aug_scenes and _clip_scene(out, rec) not in aug_scenes
        assert len(set(aug_scenes)) == 1  # one edit session per clip
    with pytest.raises(ValueError, match="view_aug_scene"):
        WorldConfig(view_aug_scene="beach")


def test_view_aug_in_the_clip_scene_when_asked(tmp_path):
    out = tmp_path / "w"
    cfg = WorldConfig(**{**TINY, "actors": 1, "clips_per_actor": 1}, view_aug_scene="clip")
    make_world(cfg, out, progress=False)
    (rec,) = read_manifest(out / "manifest.jsonl")
    aug_scenes = {r.metadata["scene"] for r in rec.refs if r.metadata["source"] == "view_aug"}
    assert aug_scenes == {_clip_scene(out, rec)}


def test_fit_tokenizer_covers_every_prompt_of_the_world(world, tmp_path, capsys):
    from transformers import AutoTokenizer

    from wildactor.cli import main

    out, _ = world
    assert main(["world", "fit-tokenizer", "--data", str(tmp_path), "--out", str(tmp_path / "t")]) == 2
    assert main(["world", "fit-tokenizer", "--data", str(out), "--out", str(tmp_path / "tok")]) == 0
    assert "tokens" in capsys.readouterr().out
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    prompts = [r.prompt for r in read_manifest(out / "manifest.jsonl")]
    ids = tokenizer(prompts).input_ids
    assert all(tokenizer.unk_token_id not in row for row in ids)
    assert all(row[-1] == tokenizer.eos_token_id for row in ids)
