"""`wildactor train --estimate-memory`: parameter counts, sharding arithmetic and measured activations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wildactor.cli import main as cli_main
from wildactor.errors import WildActorError
from wildactor.model.transformer import reference_lora_parameter_count
from wildactor.train.config import TrainConfig
from wildactor.train.memory import estimate_memory

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def _tiny(*sets: str) -> TrainConfig:
    return TrainConfig.from_yaml(TINY, list(sets))


def _pretrained_layout(tmp_path: Path, with_encoders: bool = True) -> Path:
    """configs/tiny.yaml's models as a diffusers-style folder of config.json files (no weights)."""
    model = yaml.safe_load(TINY.read_text())["model"]
    root = tmp_path / "wan"
    parts = {"transformer": model["transformer"]}
    if with_encoders:
        parts |= {
            "vae": {k: v for k, v in model["vae"].items() if k != "kind"},
            "text_encoder": model["text_encoder"],
        }
    for sub, conf in parts.items():
        (root / sub).mkdir(parents=True)
        (root / sub / "config.json").write_text(json.dumps({"_class_name": "X", **conf}))
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = {"pretrained": str(root), "max_text_length": 32}
    path = tmp_path / "pretrained.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_flag_prints_the_estimate_for_tiny_yaml_and_does_not_train(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code = cli_main(["train", "--config", str(TINY), "--estimate-memory", "--output-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "activations" in out and "DDP x1" in out and "FSDP x1" in out
    assert "8 video, 24 reference, 32 text" in out  # 5 frames -> 2 latent, 32/8/2 = 2: 2*2*2; 6 refs of 2*2
    assert not out_dir.exists()


def test_flag_reads_a_pretrained_folder_layout(tmp_path, capsys):
    config = _pretrained_layout(tmp_path)
    assert cli_main(["train", "--config", str(config), "--estimate-memory", "--num-processes", "4"]) == 0
    out = capsys.readouterr().out
    assert "FSDP x4" in out and "VAE + text encoder" in out and "n/a" not in out
    inline, folder = estimate_memory(_tiny()), estimate_memory(TrainConfig.from_yaml(config))
    assert (folder.frozen_params, folder.trainable_params) == (inline.frozen_params, inline.trainable_params)
    assert folder.activations == inline.activations
    assert folder.encoder_bytes == inline.encoder_bytes > 0


def test_a_folder_without_encoder_configs_reports_them_as_na(tmp_path):
    est = estimate_memory(TrainConfig.from_yaml(_pretrained_layout(tmp_path, with_encoders=False)))
    assert est.encoder_bytes is None and est.encoder_note.startswith("n/a")


def test_missing_transformer_config_is_a_clear_error(tmp_path, capsys):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = {"pretrained": str(tmp_path / "nowhere")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["train", "--config", str(path), "--estimate-memory"]) != 0
    assert "transformer/config.json not found" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(TINY), "--num-processes", "2"]) != 0
    assert "--num-processes is for --estimate-memory" in capsys.readouterr().err
    with pytest.raises(WildActorError, match="num-processes"):
        estimate_memory(_tiny(), num_processes=0)


def test_lora_count_matches_the_model_and_state_is_fp32():
    est = estimate_memory(_tiny("model.transformer.lora_rank=8"))
    assert est.trainable_params == reference_lora_parameter_count(24, 2, 8)
    assert est.trainable_bytes == est.gradient_bytes == 4 * est.trainable_params
    assert est.optimizer_bytes == 2 * est.trainable_bytes and est.ema_bytes == 0
    ema = estimate_memory(_tiny("model.transformer.lora_rank=8", "ema.decay=0.999"))
    assert ema.ema_bytes == est.trainable_bytes
    full = estimate_memory(_tiny("model.transformer.lora_rank=8", "optimizer.trainable=all"))
    assert full.trainable_params == est.frozen_params + est.trainable_params and full.frozen_bytes == 0


def test_bf16_frozen_weights_halve_except_the_fp32_islands():
    fp32 = estimate_memory(_tiny())
    bf16 = estimate_memory(_tiny("precision.mixed_precision=bf16", "precision.frozen_dtype=bfloat16"))
    assert fp32.frozen_bytes == 4 * fp32.frozen_params
    assert (
        2 * bf16.frozen_params < bf16.frozen_bytes < fp32.frozen_bytes
    )  # norms, modulation tables stay fp32
    assert bf16.activations.without_checkpointing < fp32.activations.without_checkpointing


def test_checkpointing_lowers_activations_and_fsdp_divides_only_the_sharded_state():
    est = estimate_memory(_tiny("model.transformer.num_layers=4", "data.height=64", "data.width=64"), 4)
    a = est.activations
    assert a.with_checkpointing < a.without_checkpointing
    assert a.largest_block < a.with_checkpointing
    ddp = estimate_memory(_tiny("model.transformer.num_layers=4", "data.height=64", "data.width=64"), 1)
    for ckpt in (False, True):
        acts = a.with_checkpointing if ckpt else a.without_checkpointing
        assert est.per_gpu("ddp", ckpt) == ddp.per_gpu("ddp", ckpt) == est.sharded_bytes() + acts
        assert est.per_gpu("fsdp", ckpt) == -(-est.sharded_bytes() // 4) + acts


def test_activations_grow_linearly_with_video_tokens():
    """Flash-style attention accounting: no (S x S) score matrix, so equal steps in tokens add equal bytes."""
    acts = [
        estimate_memory(_tiny(f"data.num_frames={n}", "data.height=64", "data.width=64")).activations
        for n in (5, 9, 13)  # 2, 3, 4 latent frames
    ]
    steps = [b.without_checkpointing - a.without_checkpointing for a, b in zip(acts, acts[1:])]
    assert steps[0] > 0
    assert abs(steps[1] - steps[0]) <= 0.01 * steps[0]
