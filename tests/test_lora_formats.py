"""Reference-LoRA layouts (WildActor, official, Stand-In): bitwise round trips, refusals, the CLI; and an
ordinary Wan LoRA loaded through `load_lora_weights`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from wildactor.cli import main as cli_main
from wildactor.default_model import build_tiny_pipeline, synthetic_example_actor
from wildactor.errors import WildActorError
from wildactor.lora_formats import convert_lora_file, detect_lora_format, read_lora_file
from wildactor.pipeline import WildActorPipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pipeline with a non-zero reference LoRA, saved in the WildActor layout."""
    pipe = build_tiny_pipeline(1)
    pipe.set_progress_bar_config(disable=True)
    path = tmp_path_factory.mktemp("lora") / "ref.safetensors"
    pipe.transformer.save_reference_lora(path)
    return pipe, path


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_wildactor_official_standin_round_trip_is_bitwise(trained, tmp_path):
    _, path = trained
    official = convert_lora_file(path, tmp_path / "official.safetensors", "official")
    standin = convert_lora_file(official, tmp_path / "standin.safetensors", "standin")
    back = convert_lora_file(standin, tmp_path / "back.safetensors", "wildactor")
    original, meta = read_lora_file(path)
    tensors, back_meta = read_lora_file(back)
    _assert_same_tensors(original, tensors)
    assert back_meta == meta
    # (Not the file bytes: safetensors writes metadata in hash-map order, which differs from process to process.)
    o, _ = read_lora_file(official)
    s, _ = read_lora_file(standin)
    assert "blocks.1.self_attn.k.lora_B.weight" in o and "blocks.1.self_attn.v_loras.down.weight" in s
    assert torch.equal(o["blocks.1.self_attn.k.lora_B.weight"], original["reference_lora.1.to_k.up.weight"])
    assert [detect_lora_format(x) for x in (original, o, s)] == ["wildactor", "official", "standin"]


def test_official_file_round_trips_and_loads_with_stretched_references(trained, tmp_path):
    pipe, path = trained
    official = convert_lora_file(path, tmp_path / "official.safetensors", "official")
    tensors, _ = read_lora_file(official)
    save_file(tensors, str(tmp_path / "release.safetensors"))  # as released: no metadata at all
    as_ours = convert_lora_file(tmp_path / "release.safetensors", tmp_path / "ours.safetensors", "wildactor")
    again = convert_lora_file(as_ours, tmp_path / "again.safetensors", "official")
    _assert_same_tensors(tensors, read_lora_file(again)[0])
    assert read_lora_file(as_ours)[1]["reference_fit"] == "stretch"

    pipe.save_pretrained(tmp_path / "model")
    loaded = WildActorPipeline.from_pretrained(tmp_path / "model", lora=tmp_path / "release.safetensors")
    assert loaded.config.reference_fit == "stretch"  # the official release stretches references
    _assert_same_tensors(
        pipe.transformer.reference_lora_state_dict(), loaded.transformer.reference_lora_state_dict()
    )


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (
            {"blocks.0.self_attn.o.lora_A.weight": torch.zeros(4, 24)},
            "not a reference LoRA: key 'blocks.0.self_attn.o",
        ),
        (
            {
                "reference_lora.0.to_q.down.weight": torch.zeros(4, 24),
                "blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 24),
            },
            "keys mix the layouts",
        ),
        ({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, "not a reference LoRA"),
    ],
)
def test_files_that_are_not_reference_loras_are_refused(tmp_path, tensors, message):
    save_file(tensors, str(tmp_path / "x.safetensors"))
    with pytest.raises(WildActorError, match=message):
        convert_lora_file(tmp_path / "x.safetensors", tmp_path / "y.safetensors", "official")
    assert not (tmp_path / "y.safetensors").exists()


def test_lora_convert_command(trained, tmp_path, capsys):
    _, path = trained
    assert cli_main(["lora", "convert", str(path), str(tmp_path / "o.safetensors"), "--to", "official"]) == 0
    assert "wildactor -> official layout, 10 tensors, rank 4, 2 layers" in capsys.readouterr().out
    code = cli_main(
        [
            "lora",
            "convert",
            str(path),
            str(tmp_path / "s.safetensors"),
            "--to",
            "standin",
            "--from",
            "official",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and err.startswith(
        "error: --from official given, but the file is in the wildactor layout"
    )
    assert err.count("\n") == 1
    save_file({"blocks.0.ffn.0.lora_A.weight": torch.zeros(2, 2)}, str(tmp_path / "style.safetensors"))
    code = cli_main(
        [
            "lora",
            "convert",
            str(tmp_path / "style.safetensors"),
            str(tmp_path / "z.safetensors"),
            "--to",
            "wildactor",
        ]
    )
    assert code != 0 and "not a reference LoRA" in capsys.readouterr().err
    code = cli_main(
        [
            "lora",
            "convert",
            str(tmp_path / "missing.safetensors"),
            str(tmp_path / "z.safetensors"),
            "--to",
            "wildactor",
        ]
    )
    assert code != 0 and "LoRA file not found" in capsys.readouterr().err


def _wan_style_lora(num_layers: int = 2, dim: int = 24, rank: int = 4) -> dict[str, torch.Tensor]:
    """An ordinary (community) Wan LoRA in diffusers' layout on every block's self-attention."""
    g = torch.Generator().manual_seed(0)
    lora = {}
    for i in range(num_layers):
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            lora[f"transformer.blocks.{i}.attn1.{proj}.lora_A.weight"] = torch.randn(rank, dim, generator=g)
            lora[f"transformer.blocks.{i}.attn1.{proj}.lora_B.weight"] = torch.randn(dim, rank, generator=g)
    return lora


def test_ordinary_wan_lora_changes_video_projections_and_the_reference_stream_not_the_reference_lora():
    pipe = build_tiny_pipeline(1)
    pipe.set_progress_bar_config(disable=True)
    tokens = torch.randn(1, 10, 24, generator=torch.Generator().manual_seed(1))
    attn = pipe.transformer.blocks[0].attn1
    q_before = attn.to_q(tokens)
    ref_lora_before = {k: v.clone() for k, v in pipe.transformer.reference_lora_state_dict().items()}
    ref_latents = pipe.encode_reference_images(pipe.prepare_references(synthetic_example_actor(), 64, 64)[0])
    cache_before = pipe.transformer.encode_references(ref_latents, ["face", "body"], (2, 4, 4))

    pipe.load_lora_weights(_wan_style_lora(), adapter_name="style")
    assert not torch.allclose(attn.to_q(tokens), q_before)  # video tokens' projections change
    _assert_same_tensors(ref_lora_before, pipe.transformer.reference_lora_state_dict())
    cache_after = pipe.transformer.encode_references(ref_latents, ["face", "body"], (2, 4, 4))
    # The reference stream runs the same base q/k/v plus its own LoRA, so a style LoRA reaches it too.
    assert not torch.allclose(cache_after.keys[0], cache_before.keys[0])

    pipe.set_adapters(["style"], [0.0])
    torch.testing.assert_close(attn.to_q(tokens), q_before, rtol=0, atol=1e-6)


def test_a_reference_lora_never_loads_as_an_ordinary_lora(trained, tmp_path):
    pipe, path = trained
    with pytest.raises(WildActorError, match="reference LoRA \\(wildactor layout\\).*must not be loaded"):
        pipe.load_lora_weights(path)
    official = convert_lora_file(path, tmp_path / "official.safetensors", "official")
    with pytest.raises(WildActorError, match="official layout"):
        pipe.load_lora_weights(official)
    with pytest.raises(WildActorError, match="standin layout"):
        pipe.load_lora_weights({"blocks.0.self_attn.q_loras.down.weight": torch.zeros(4, 24)})
    assert np.all([not hasattr(m, "lora_A") for m in pipe.transformer.modules()])
