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


def test_export_of_a_reference_lora_checkpoint_is_its_base_with_the_lora_in(tmp_path):
    pipe = build_tiny_pipeline(0)
    base = tmp_path / "base"
    pipe.save_pretrained(base)
    lora = pipe.transformer.reference_lora_state_dict()
    trained = {k: torch.full_like(v, 0.01 * (i + 1)) for i, (k, v) in enumerate(lora.items())}
    checkpoint = tmp_path / "step-00000005"
    checkpoint.mkdir()
    pipe.transformer.load_reference_lora_tensors(trained)
    pipe.transformer.save_reference_lora(checkpoint / "ema.safetensors")
    raw = {k: v * 2 for k, v in trained.items()}
    pipe.transformer.load_reference_lora_tensors(raw)
    pipe.transformer.save_reference_lora(checkpoint / "reference_lora.safetensors")
    (checkpoint / "trainer_state.json").write_text(
        json.dumps({"step": 5, "trainable": "lora", "base_model": str(base)})
    )

    out = export_default_model(checkpoint, tmp_path / "shipped", 77, 300123, {"steps": 3})
    model = WildActorPipeline.from_pretrained(out).transformer
    shipped = model.reference_lora_state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in trained.items())  # the EMA LoRA
    base_weights = WildActorPipeline.from_pretrained(base).transformer.state_dict()
    assert all(
        torch.equal(model.state_dict()[k], v) for k, v in base_weights.items() if ".reference_lora." not in k
    )
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["base_model"] == str(base) and provenance["training_step"] == 5
    without_ema = export_default_model(checkpoint, tmp_path / "raw", 77, 300123, {}, use_ema=False)
    shipped = WildActorPipeline.from_pretrained(without_ema).transformer.reference_lora_state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in raw.items())
