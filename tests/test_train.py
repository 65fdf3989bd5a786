"""Trainer on the tiny config (CPU): overfits, touches only the LoRA, resumes bitwise, refuses bad data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wildactor.errors import WildActorError
from wildactor.train import (
    LoggingConfig,
    TrainConfig,
    build_dataset,
    build_models,
    evaluation_loss,
    flow_matching_loss,
    latest_checkpoint,
    load_records,
    train,
)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def tiny_config(**data_overrides) -> TrainConfig:
    cfg = TrainConfig.from_yaml(CONFIG)
    data = dataclasses.replace(cfg.data, **data_overrides) if data_overrides else cfg.data
    return dataclasses.replace(cfg, data=data, logging=LoggingConfig(tensorboard=False))


def test_thirty_steps_lower_the_loss_and_change_only_the_lora(tmp_path):
    cfg = tiny_config()
    result = train(cfg, max_steps=30, output_dir=tmp_path, show_progress=False, cpu=True)
    assert len(result.losses) == 30
    manifest, records = load_records(cfg, tmp_path)
    base, encoder, encoder_id = build_models(cfg, tmp_path)  # the same seeded weights the run started from
    dataset = build_dataset(cfg, manifest, records, encoder, encoder_id, None)
    positions = list(range(8))  # two passes over the 4 toy clips, fixed noise and timesteps
    before = evaluation_loss(base, encoder, dataset, cfg, positions)
    after = evaluation_loss(result.model, encoder, dataset, cfg, positions)
    assert after < 0.98 * before, (before, after)

    changed_lora = 0
    for (name, p0), (name1, p1) in zip(base.named_parameters(), result.model.named_parameters()):
        assert name == name1
        if ".reference_lora." in name:
            changed_lora += int(not torch.equal(p0, p1))
        else:
            assert torch.equal(p0, p1), f"base weight {name} changed"
    assert changed_lora >= 10
    # the checkpoint holds exactly the trained LoRA
    saved = load_file(str(result.checkpoint / "reference_lora.safetensors"))
    trained = result.model.reference_lora_state_dict()
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[k], trained[k]) for k in saved)
    assert (tmp_path / "model" / "transformer" / "config.json").is_file()


def test_resume_is_bitwise_identical_to_a_straight_run(tmp_path):
    cfg = tiny_config(batch_size=1)
    straight = train(cfg, max_steps=20, output_dir=tmp_path / "straight", show_progress=False, cpu=True)
    first = train(cfg, max_steps=10, output_dir=tmp_path / "resumed", show_progress=False, cpu=True)
    assert latest_checkpoint(tmp_path / "resumed").name == "step-00000010"
    metrics = tmp_path / "resumed" / "metrics.jsonl"  # as if the run died at step 12, after logging it,
    partial = tmp_path / "resumed" / "checkpoints" / ".tmp-step-00000012"  # in the middle of a save
    partial.mkdir()
    (partial / "reference_lora.safetensors").write_bytes(b"truncated")
    metrics.write_text(metrics.read_text() + '{"step": 11, "loss": 0.0}\n{"step": 12, "loss": 0.0}\n')
    second = train(
        cfg, resume=True, max_steps=20, output_dir=tmp_path / "resumed", show_progress=False, cpu=True
    )
    assert second.start_step == 10
    assert not partial.exists()  # the interrupted save was ignored, then cleaned up
    assert len(straight.losses) == 20 and len(second.losses) == 10
    assert first.losses + second.losses == straight.losses  # exact floats: same loss trace
    a = straight.model.state_dict()
    b = second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = load_file(str(straight.checkpoint / "optimizer.safetensors"))
    opt_b = load_file(str(second.checkpoint / "optimizer.safetensors"))
    assert all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)
    trace = [
        json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert trace == list(range(1, 21))


def test_checkpoints_are_complete_and_pruned(tmp_path):
    cfg = tiny_config(batch_size=1)
    cfg = dataclasses.replace(cfg, ema=dataclasses.replace(cfg.ema, decay=0.9))
    train(cfg, max_steps=30, output_dir=tmp_path, show_progress=False, cpu=True)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000020", "step-00000030"]  # keep_last: 2, no temporary folders left
    files = {p.name for p in (tmp_path / "checkpoints" / "step-00000030").iterdir()}
    assert {"reference_lora.safetensors", "optimizer.safetensors", "rng.safetensors", "ema.safetensors",
            "trainer_state.json"} <= files  # fmt: skip
    state = json.loads((tmp_path / "checkpoints" / "step-00000030" / "trainer_state.json").read_text())
    assert state["step"] == 30 and state["global_batch"] == 1


def _write_manifest(folder: Path, mutate) -> Path:
    from wildactor.data.dataset import write_toy_dataset

    manifest = write_toy_dataset(folder, num_clips=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    mutate(rows)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _no_models(*args, **kwargs):
    raise AssertionError("models were built although the data is unusable")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows[1].update(video="videos/missing.mp4"), r"record 1: video: file not found"),
        (lambda rows: rows[0]["refs"][2].update(angle="ninety"), r"record 0: refs\[2\]\.angle"),
        (
            lambda rows: rows[1]["refs"][0].update(region="hand"),
            r"record 1: refs\[0\]\.region: unknown region",
        ),
        (lambda rows: rows[0].update(refs=[]), r"record 0: refs: empty"),
    ],
)
def test_bad_manifests_stop_before_training(tmp_path, mutate, message, monkeypatch):
    manifest = _write_manifest(tmp_path / "data", mutate)
    cfg = tiny_config(manifest=str(manifest), toy_clips=0)

    monkeypatch.setattr("wildactor.train.loop.build_models", _no_models)
    with pytest.raises(WildActorError, match=message):
        train(cfg, max_steps=1, output_dir=tmp_path / "run", show_progress=False, cpu=True)


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("gamma: 0.25", "gama: 0.25"))
    with pytest.raises(WildActorError, match=r"unknown keys in `sampler`: \['gama'\]"):
        TrainConfig.from_yaml(bad)
    bad.write_text(CONFIG.read_text().replace("kind: adaptive", "kind: greedy"))
    with pytest.raises(WildActorError, match="unknown sampler"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(WildActorError, match="config not found"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


def test_cli_resume_without_checkpoint_exits_2(tmp_path, capsys):
    from wildactor.cli import main

    code = main(
        ["train", "--config", str(CONFIG), "--resume", "--output-dir", str(tmp_path), "--no-progress"]
    )
    assert code == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_training_from_the_latent_cache_never_reencodes(tmp_path, monkeypatch):
    cfg = tiny_config(batch_size=1, cache_dir=str(tmp_path / "cache"))
    first = train(cfg, max_steps=2, output_dir=tmp_path / "a", show_progress=False, cpu=True)
    assert len(list((tmp_path / "cache").glob("shard-*.safetensors"))) == 1

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded during training although a latent cache exists")

    for name in ("encode_video", "encode_references", "encode_text"):
        monkeypatch.setattr(f"wildactor.diffusion.encode.VAETextEncoder.{name}", no_encoding)
    second = train(cfg, max_steps=2, output_dir=tmp_path / "a2", show_progress=False, cpu=True)
    assert second.losses == first.losses  # same cached latents, same draws, same noise


def test_wan22_5b_config_matches_the_released_settings(tmp_path):
    cfg = TrainConfig.from_yaml(CONFIG.parent / "wan22-5b.yaml")
    assert cfg.model.overrides["lora_rank"] == 128
    assert cfg.schedule.shift == 5.0  # the shift Wan2.2-TI2V-5B samples with
    assert (cfg.sampler.kind, cfg.sampler.delta_deg, cfg.sampler.gamma) == ("adaptive", 25.0, 0.25)
    assert (cfg.sampler.num_face, cfg.sampler.num_body) == (3, 3)
    assert cfg.data.height % 32 == 0 and cfg.data.width % 32 == 0 and (cfg.data.num_frames - 1) % 4 == 0
    missing = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, pretrained=str(tmp_path / "nope"))
    )
    with pytest.raises(WildActorError, match="has no transformer/ folder"):
        build_models(missing, tmp_path)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; a run with another mixed precision needs a fresh one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_with_checkpointing_accumulation_and_ema_keeps_trainable_weights_fp32(
    tmp_path, fresh_accelerate_state
):
    cfg = tiny_config(batch_size=1)
    cfg = dataclasses.replace(
        cfg,
        precision=dataclasses.replace(cfg.precision, mixed_precision="bf16", frozen_dtype="bfloat16"),
        model=dataclasses.replace(cfg.model, gradient_checkpointing=True),
        schedule=dataclasses.replace(cfg.schedule, gradient_accumulation_steps=2),
        ema=dataclasses.replace(cfg.ema, decay=0.9),
    )
    result = train(cfg, max_steps=2, output_dir=tmp_path, show_progress=False, cpu=True)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    model = result.model
    assert model.patch_embedding.weight.dtype == torch.bfloat16  # frozen base stored in bf16
    assert model.blocks[0].norm2.weight.dtype == torch.float32  # a declared fp32 island stays fp32
    assert all(p.dtype == torch.float32 for p in model.reference_lora_parameters())
    ema = load_file(str(result.checkpoint / "ema.safetensors"))
    lora = model.reference_lora_state_dict()
    assert set(ema) == set(lora)  # one EMA tensor per trainable weight
    assert all(ema[k].dtype == torch.float32 for k in ema)
    model.load_reference_lora(result.checkpoint / "ema.safetensors")  # the EMA file is a reference LoRA
    assert all(torch.equal(p.detach(), ema[k]) for k, p in model.reference_lora_state_dict().items())
    assert json.loads((result.checkpoint / "trainer_state.json").read_text())["global_batch"] == 2


def test_a_fresh_run_refuses_an_output_dir_with_checkpoints(tmp_path):
    cfg = tiny_config(batch_size=1)
    train(cfg, max_steps=1, output_dir=tmp_path, show_progress=False, cpu=True)
    with pytest.raises(WildActorError, match="already holds checkpoints"):
        train(cfg, max_steps=2, output_dir=tmp_path, show_progress=False, cpu=True)


def test_a_trained_checkpoint_loads_into_the_pipeline(tmp_path):
    from wildactor.pipeline import Reference, WildActorPipeline

    cfg = tiny_config(batch_size=1)
    result = train(cfg, max_steps=3, output_dir=tmp_path, show_progress=False, cpu=True)
    lora = result.checkpoint / "reference_lora.safetensors"
    refs = [
        Reference(np.full((32, 32, 3), 200, np.uint8), "face"),
        Reference(np.zeros((32, 32, 3), np.uint8)),
    ]

    def sample(lora_path):
        pipe = WildActorPipeline.from_pretrained(tmp_path / "model", lora=lora_path)
        assert pipe.scheduler.config.flow_shift == cfg.schedule.shift
        out = pipe(["a person walks"], refs, height=32, width=32, num_frames=5, num_inference_steps=2,
                   seed=0, output_type="latent")  # fmt: skip
        return out.frames[0], pipe

    trained, pipe = sample(lora)
    base, _ = sample(None)
    assert trained.shape == base.shape == (1, 4, 2, 4, 4)
    assert not torch.equal(trained, base)  # the trained reference LoRA changes what is sampled
    a = pipe.transformer.reference_lora_state_dict()
    b = result.model.reference_lora_state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_training_resumes_bitwise_and_checkpoints_are_pipeline_folders(tmp_path):
    from wildactor.pipeline import WildActorPipeline

    cfg = tiny_config(batch_size=1)
    cfg = dataclasses.replace(cfg, optimizer=dataclasses.replace(cfg.optimizer, trainable="all"))
    straight = train(cfg, max_steps=4, output_dir=tmp_path / "straight", show_progress=False, cpu=True)
    train(cfg, max_steps=2, output_dir=tmp_path / "resumed", show_progress=False, cpu=True)
    second = train(
        cfg, resume=True, max_steps=4, output_dir=tmp_path / "resumed", show_progress=False, cpu=True
    )
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    initial = build_models(cfg, tmp_path / "straight")[0].state_dict()
    assert not torch.equal(initial["patch_embedding.weight"], a["patch_embedding.weight"])  # the base trains
    pipe = WildActorPipeline.from_pretrained(straight.checkpoint)  # trained transformer + linked components
    loaded = pipe.transformer.state_dict()
    assert all(torch.equal(loaded[k], a[k]) for k in a)


def test_a_sampler_without_usable_references_stops_before_training(tmp_path, monkeypatch):
    def view_aug_only(rows):
        for row in rows:
            for ref in row["refs"]:
                ref["metadata"]["source"] = "view_aug"

    manifest = _write_manifest(tmp_path / "data", view_aug_only)
    cfg = tiny_config(manifest=str(manifest), toy_clips=0)
    cfg = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, kind="self_crop_only"))
    monkeypatch.setattr("wildactor.train.loop.build_models", _no_models)
    with pytest.raises(
        WildActorError, match=r"'self_crop_only' finds no usable reference in record\(s\) \[0, 1\]"
    ):
        train(cfg, max_steps=1, output_dir=tmp_path / "run", show_progress=False, cpu=True)


def test_training_from_a_pretrained_diffusers_folder(tmp_path):
    cfg = tiny_config(batch_size=1)
    first = train(cfg, max_steps=1, output_dir=tmp_path / "inline", show_progress=False, cpu=True)
    folder = tmp_path / "inline" / "model"  # a diffusers folder: transformer/ vae/ text_encoder/ tokenizer/
    model = dataclasses.replace(
        cfg.model,
        pretrained=str(folder),
        transformer=None,
        vae=None,
        text_encoder=None,
        overrides={"lora_rank": 4},
    )
    second = train(dataclasses.replace(cfg, model=model), max_steps=1, output_dir=tmp_path / "pretrained",
                   show_progress=False, cpu=True)  # fmt: skip
    assert second.losses == first.losses  # same weights, data and noise, whether inline or loaded
    state = json.loads((second.checkpoint / "trainer_state.json").read_text())
    assert state["base_model"] == str(folder)


def tiny_batch(cfg: TrainConfig, tmp_path: Path, size: int):
    """(model, encoder, one collated batch of the first `size` samples) of a config's data, uncached."""
    from wildactor.data.dataset import collate

    manifest, records = load_records(cfg, tmp_path)
    model, encoder, encoder_id = build_models(cfg, tmp_path)
    dataset = build_dataset(cfg, manifest, records, encoder, encoder_id, None)
    return model, encoder, collate([dataset[p] for p in range(size)])


def test_set_overrides_dotted_keys_before_validation(tmp_path):
    cfg = TrainConfig.from_yaml(
        CONFIG, ["sampler.kind=random", "model.overrides.attention_mode=full", "schedule.max_steps=7"]
    )
    assert cfg.sampler.kind == "random" and cfg.schedule.max_steps == 7
    assert cfg.model.overrides["attention_mode"] == "full"
    plain = TrainConfig.from_yaml(
        CONFIG, ["precision.mixed_precision=no", "model.gradient_checkpointing=true"]
    )
    assert plain.precision.mixed_precision == "no" and plain.model.gradient_checkpointing is True
    with pytest.raises(WildActorError, match="unknown sampler"):
        TrainConfig.from_yaml(CONFIG, ["sampler.kind=greedy"])
    with pytest.raises(WildActorError, match="dotted.key=value"):
        TrainConfig.from_yaml(CONFIG, ["sampler.kind"])
    with pytest.raises(WildActorError, match="is not a section"):
        TrainConfig.from_yaml(CONFIG, ["seed.x=1"])


def test_actorworld_config_builds_with_its_fitted_pixel_vae(tmp_path, monkeypatch):
    root = CONFIG.parents[1]
    monkeypatch.chdir(root)  # the config names the VAE folder relative to the repository
    cfg = TrainConfig.from_yaml(root / "configs" / "actorworld-tiny-v1.yaml")
    transformer, encoder, encoder_id = build_models(cfg, tmp_path)
    channels = transformer.config.in_channels
    assert encoder.vae.config.latent_channels == channels
    assert "diffusion_pytorch_model.safetensors" in encoder_id  # the fitted basis is part of the cache key
    assert "tokenizer.json" in encoder_id  # so is the fitted vocabulary
    frames = torch.rand(1, 3, 1, 64, 64) * 2 - 1
    assert encoder.encode_video(frames).shape == (1, channels, 1, 16, 16)
    ids = encoder.tokenizer(["A person walks across a snowy field at night."]).input_ids[0]
    assert encoder.tokenizer.unk_token_id not in ids and len(ids) <= cfg.model.max_text_length


def test_raw_latent_loss_space_trains_and_is_validated(tmp_path):
    cfg = tiny_config(batch_size=1)
    cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, loss_space="raw_latent"))
    result = train(cfg, max_steps=2, output_dir=tmp_path, show_progress=False, cpu=True)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    with pytest.raises(WildActorError, match="loss_space"):
        TrainConfig.from_yaml(CONFIG, ["schedule.loss_space=pixels"])


def test_condition_dropout_uses_the_empty_prompt_and_drops_references(tmp_path):
    cfg = tiny_config()
    model, encoder, batch = tiny_batch(cfg, tmp_path, 8)
    seen = []

    def spy(zt, timestep, text, reference_latents=None, reference_types=None):
        seen.append((text.clone(), reference_types))
        return model(zt, timestep, text, reference_latents=reference_latents, reference_types=reference_types)

    def run(**schedule):
        seen.clear()
        every = dataclasses.replace(
            cfg.optimizer, trainable="all"
        )  # reference dropout needs trainable base weights
        c = dataclasses.replace(cfg, optimizer=every, schedule=dataclasses.replace(cfg.schedule, **schedule))
        flow_matching_loss(spy, encoder, batch, c, "cpu")
        return seen[0]

    text, types = run()
    assert types and not any(torch.equal(row, null) for row in text for null in encoder.encode_text([""]))
    dropped, _ = run(text_dropout=0.999999)
    assert all(torch.equal(row, encoder.encode_text([""])[0]) for row in dropped)
    half, _ = run(text_dropout=0.5)  # seeded per sample: some rows dropped, some kept, the same every call
    kept = [torch.equal(a, b) for a, b in zip(half, text)]
    assert 0 < sum(kept) < len(kept) and torch.equal(run(text_dropout=0.5)[0], half)
    assert run(reference_dropout=0.999999)[1] is None
    with pytest.raises(ValueError, match="dropout"):
        dataclasses.replace(cfg.schedule, text_dropout=1.0)


def test_learning_rate_warms_up_holds_and_decays_to_zero_at_max_steps():
    from wildactor.train import ScheduleConfig, learning_rate

    sc = ScheduleConfig(max_steps=100, warmup_steps=10, decay_steps=20)
    rates = [learning_rate(s, 1.0, sc) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == 1.0 == rates[80]
    assert rates[90] == pytest.approx(0.5) and rates[99] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert learning_rate(50, 2.0, ScheduleConfig(max_steps=100)) == 2.0
    with pytest.raises(ValueError, match="decay_steps"):
        ScheduleConfig(max_steps=10, decay_steps=11)


def test_max_steps_past_a_decayed_schedule_is_refused_before_any_step(tmp_path):
    cfg = tiny_config()
    cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, max_steps=20, decay_steps=5))
    # steps 20-39 would train at rate 0
    with pytest.raises(WildActorError, match=r"--set schedule.max_steps=40"):
        train(cfg, max_steps=40, output_dir=tmp_path, show_progress=False, cpu=True)
    assert not (tmp_path / "checkpoints").exists()


def test_first_frame_conditioning_keeps_frame_zero_clean_at_timestep_zero_and_out_of_the_loss(tmp_path):
    from wildactor.train.loss import first_frame_condition

    z0, zt = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4)
    mask = torch.tensor([True, False])
    cond, timestep = first_frame_condition(zt, z0, torch.tensor([800.0, 300.0]), mask, (1, 2, 2))
    assert torch.equal(cond[0, :, 0], z0[0, :, 0]) and torch.equal(cond[0, :, 1:], zt[0, :, 1:])
    assert torch.equal(cond[1], zt[1])  # the other sample is text-to-video as before
    assert timestep.shape == (2, 3 * 2 * 2)
    assert timestep[0, :4].eq(0).all() and timestep[0, 4:].eq(800).all() and timestep[1].eq(300).all()

    cfg = tiny_config(batch_size=2)
    cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, first_frame_probability=1.0))
    result = train(cfg, max_steps=2, output_dir=tmp_path / "i2v", show_progress=False, cpu=True)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    plain = train(
        tiny_config(batch_size=2), max_steps=2, output_dir=tmp_path / "t2v", show_progress=False, cpu=True
    )
    assert result.losses[0] != plain.losses[0]  # the same samples, now with frame 0 given and not scored


def test_actorworld_base_config_is_a_reference_free_ti2v_base():
    cfg = TrainConfig.from_yaml(CONFIG.parent / "actorworld-base.yaml")
    assert cfg.schedule.reference_dropout == 1.0  # no step sees references
    assert 0 < cfg.schedule.first_frame_probability < 1  # both text-to-video and image-to-video samples
    assert cfg.optimizer.trainable == "all" and cfg.model.max_text_length >= 57


def test_reference_dropout_is_refused_when_only_the_reference_lora_trains():
    cfg = tiny_config(batch_size=1)
    lora = dataclasses.replace(cfg.optimizer, trainable="lora")
    with pytest.raises(ValueError, match="reference_dropout must be 0 with optimizer.trainable lora"):
        dataclasses.replace(
            cfg, optimizer=lora, schedule=dataclasses.replace(cfg.schedule, reference_dropout=0.1)
        )
    full = dataclasses.replace(cfg.optimizer, trainable="all")
    dataclasses.replace(
        cfg, optimizer=full, schedule=dataclasses.replace(cfg.schedule, reference_dropout=0.1)
    )


def test_actorworld_default_config_is_a_reference_lora_on_the_frozen_base():
    from transformers import AutoTokenizer

    root = CONFIG.parents[1]
    cfg = TrainConfig.from_yaml(root / "configs" / "actorworld-tiny.yaml")
    base = TrainConfig.from_yaml(root / "configs" / "actorworld-base.yaml")
    assert cfg.optimizer.trainable == "lora" and cfg.schedule.reference_dropout == 0
    assert cfg.model.pretrained == "models/actorworld-base"
    assert (cfg.schedule.shift, cfg.data.num_frames, cfg.data.frame_stride) == (
        base.schedule.shift, base.data.num_frames, base.data.frame_stride,
    )  # fmt: skip
    folder = root / cfg.model.pretrained
    shipped = AutoTokenizer.from_pretrained(folder / "tokenizer")
    assert shipped.get_vocab() == AutoTokenizer.from_pretrained(root / base.model.tokenizer).get_vocab()
    from wildactor.world import Actor
    from wildactor.world.clips import sample_clip_spec
    from wildactor.world.prompts import clip_prompt

    rng = np.random.default_rng(0)
    for index in range(300_000, 300_040):  # held-out actors, identity-free prompts of every kind of shot
        prompt = clip_prompt(sample_clip_spec(Actor.from_id(index), rng), describe=False)
        ids = shipped([prompt]).input_ids[0]
        assert shipped.unk_token_id not in ids and len(ids) <= cfg.model.max_text_length, prompt
    assert json.loads((folder / "provenance.json").read_text())["source_checkpoint"].startswith(
        "runs/actorworld-base/"
    )


def test_pretrained_cache_key_follows_codec_text_and_tokenizer_content_not_the_path(tmp_path, monkeypatch):
    import shutil

    from wildactor.train import models

    root = tmp_path / "base"
    for name, data in (
        ("vae", b"v" * 100),
        ("text_encoder", b"t" * 300),
        ("tokenizer", b"k"),
        ("transformer", b"x"),
    ):
        (root / name).mkdir(parents=True)
        (root / name / "weights.bin").write_bytes(data)
    key = models._encoder_digest(root)
    assert sorted(key) == ["text_encoder/weights.bin", "tokenizer/weights.bin", "vae/weights.bin"]
    (root / "vae" / "config.json").write_text('{"_name_or_path": "a", "z_dim": 8}')
    key = models._encoder_digest(root)
    shutil.copytree(root, tmp_path / "moved")
    (tmp_path / "moved" / "vae" / "config.json").write_text('{"z_dim": 8, "_name_or_path": "b"}')
    (tmp_path / "moved" / "transformer" / "weights.bin").write_bytes(b"retrained")
    assert (
        models._encoder_digest(tmp_path / "moved") == key
    )  # moved, re-saved, transformer retrained: same cache
    (tmp_path / "moved" / "vae" / "weights.bin").write_bytes(b"w" * 100)
    assert models._encoder_digest(tmp_path / "moved") != key  # another codec: another cache
    monkeypatch.setattr(models, "WHOLE_FILE_HASH_LIMIT", 200)  # the 300-byte file is now "large"
    large = models._encoder_digest(root)["text_encoder/weights.bin"]
    assert large.startswith("ends:") and large != key["text_encoder/weights.bin"]


def test_numbers_in_exponent_form_are_numbers_in_configs_and_overrides(tmp_path):
    # PyYAML's YAML 1.1 resolver reads `5e-4` as a string; the optimizer would get "5e-4"
    cfg = TrainConfig.from_yaml(CONFIG, ["optimizer.lr=5e-4", "optimizer.weight_decay=1E-2"])
    assert cfg.optimizer.lr == 5e-4 and cfg.optimizer.weight_decay == 1e-2
    lines = CONFIG.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("lr:"))
    lines[at] = "  lr: 2e-4"
    written = tmp_path / "exp.yaml"
    written.write_text("\n".join(lines) + "\n")
    assert TrainConfig.from_yaml(written).optimizer.lr == 2e-4
    assert TrainConfig.from_yaml(CONFIG, ["sampler.kind=random"]).sampler.kind == "random"


def test_the_trainer_cleans_prompts_as_the_pipeline_does(tmp_path):
    cfg = tiny_config()
    model, encoder, batch = tiny_batch(cfg, tmp_path, 2)
    batch["prompt"] = ["a  person &amp;amp; a dog\n walks", "  plain  "]
    seen = []
    original = encoder.encode_text

    def spy(texts):
        seen.append(list(texts))
        return original(texts)

    encoder.encode_text = spy
    flow_matching_loss(model, encoder, batch, cfg, "cpu")
    assert seen[0] == ["a person & a dog walks", "plain"]


def test_a_fitted_wan_codec_folder_is_the_training_vae_and_a_wrong_kind_is_refused(tmp_path):
    from diffusers import AutoencoderKLWan

    cfg = tiny_config()
    kwargs = {k: v for k, v in cfg.model.vae.items() if k != "kind"}
    torch.manual_seed(5)
    fitted = AutoencoderKLWan(**kwargs)
    fitted.save_pretrained(tmp_path / "vae")
    model = dataclasses.replace(cfg.model, vae={"kind": "wan", "pretrained": str(tmp_path / "vae")})
    _, encoder, encoder_id = build_models(dataclasses.replace(cfg, model=model), tmp_path / "run")
    assert all(
        torch.equal(a, b) for a, b in zip(encoder.vae.state_dict().values(), fitted.state_dict().values())
    )
    assert "diffusion_pytorch_model.safetensors" in encoder_id  # the fitted weights key the latent cache
    pixel = dataclasses.replace(cfg.model, vae={"kind": "pixel", "pretrained": str(tmp_path / "vae")})
    with pytest.raises(WildActorError, match="holds AutoencoderKLWan weights"):
        build_models(dataclasses.replace(cfg, model=pixel), tmp_path / "run2")
