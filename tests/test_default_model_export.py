"""Shipping a trained checkpoint as the default model: EMA weights, trained text length, example actor."""

import json

import torch
from safetensors.torch import save_file

from wildactor.default_model import build_tiny_pipeline, export_default_model
from wildactor.pipeline import WildActorPipeline
from wildactor.world import Actor, describe_actor


def test_export_uses_ema_weights_text_length_and_writes_an_example_actor(tmp_path):
    pipe = build_tiny_pipeline(0)
    checkpoint = tmp_path / "step-00000010"
    pipe.save_pretrained(checkpoint)
    name = "blocks.0.attn1.to_q.weight"
    ema_value = torch.full_like(pipe.transformer.state_dict()[name], 0.125)
    save_file({name: ema_value}, str(checkpoint / "ema.safetensors"))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 10}))

    out = export_default_model(checkpoint, tmp_path / "default_model", 77, 300123, {"steps": 3})
    shipped = WildActorPipeline.from_pretrained(out)
    assert torch.equal(shipped.transformer.state_dict()[name], ema_value)
    assert shipped.config.max_sequence_length == 77
    assert json.loads((out / "generate_defaults.json").read_text()) == {"steps": 3}
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["training_step"] == 10 and provenance["ema"] is True

    example = json.loads((out / "example_actor" / "references.json").read_text())
    assert example["actor_id"] == "actor_300123"
    assert [(r["region"], r["view"]) for r in example["references"]] == [
        ("face", "front"),
        ("body", "front"),
        ("body", "back"),
    ]
    assert all((out / "example_actor" / r["path"]).is_file() for r in example["references"])
    assert len(example["prompts"]) == 3
    phrase = describe_actor(Actor.from_id(300123))
    assert all(p.startswith("A person ") and phrase not in p.lower() for p in example["prompts"])

    raw = export_default_model(checkpoint, tmp_path / "raw", 77, 300123, {}, use_ema=False)
    assert torch.equal(
        WildActorPipeline.from_pretrained(raw).transformer.state_dict()[name],
        pipe.transformer.state_dict()[name],
    )
