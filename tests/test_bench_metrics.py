"""Actor-Bench metrics on constructed cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices
from wildactor.bench.metrics.body import body_consistency_actorworld, body_consistency_vlm
from wildactor.bench.metrics.copypaste import copy_paste, pose_spread, ssim
from wildactor.bench.metrics.face import BackendUnavailable, build_face_backend, face_identity
from wildactor.bench.metrics.motion import motion_amplitude
from wildactor.bench.metrics.semantic import build_clip_backend, semantic_clip
from wildactor.bench.metrics.vlm import build_vlm_backend

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def dlib_backend():
    backend = build_face_backend("dlib")
    if isinstance(backend, BackendUnavailable):
        pytest.skip(f"dlib back-end unavailable: {backend.reason}")
    return backend


def _astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())  # (512, 512, 3) uint8, a real frontal face


def _lfw_face(backend) -> np.ndarray:
    """A second real face: the first LFW face in scikit-image's lfw_subset (25x25 grey, the first 100 are
    faces) that dlib detects once upsampled to 200x200. Low resolution, but a real, different person."""
    from PIL import Image

    faces = skimage_data.lfw_subset()[:100]
    for f in faces:
        img = Image.fromarray((f * 255).astype(np.uint8)).resize((200, 200), Image.BICUBIC).convert("RGB")
        arr = np.asarray(img)
        if backend.embed_largest(arr) is not None:
            return arr
    pytest.skip("no LFW face detected")


def _shifted_scaled_clip(img: np.ndarray) -> np.ndarray:
    """Four frames of the same photo: cropped, shifted and rescaled to 256x256, plus one blank frame."""
    from PIL import Image

    frames = []
    for box in [(0, 0, 512, 512), (40, 20, 440, 420), (80, 0, 400, 320), (100, 40, 420, 360)]:
        frames.append(np.asarray(Image.fromarray(img).crop(box).resize((256, 256), Image.BILINEAR)))
    frames.append(np.full((256, 256, 3), 128, np.uint8))  # no face: skipped by the protocol
    return np.stack(frames)


def test_dlib_same_photo_shifted_scores_higher_than_a_different_face(dlib_backend):
    astro = _astronaut()
    ref = [RefImage(astro, "face")]
    same = face_identity(_shifted_scaled_clip(astro), ref, dlib_backend)
    other_img = _lfw_face(dlib_backend)
    other = face_identity(np.stack([other_img] * 3), ref, dlib_backend)
    assert same.backend == "dlib-resnet" and other.backend == "dlib-resnet"
    assert same.extra["frames_with_face"] == 4 and same.extra["frames_sampled"] == 5
    assert same.value > 0.8, same.value
    assert other.value < 0.4, other.value
    assert same.value - other.value > 0.5


def test_face_identity_is_zero_when_no_frame_shows_a_face(dlib_backend):
    ref = [RefImage(_astronaut(), "face")]
    blank = np.full((3, 128, 128, 3), 200, np.uint8)
    r = face_identity(blank, ref, dlib_backend)
    assert r.value == 0.0 and r.extra["frames_with_face"] == 0


def test_missing_face_weights_give_na_with_the_reason(tmp_path):
    for spec, words in [
        (f"dlib:{tmp_path / 'nowhere'}", "dlib weights missing"),
        (f"insightface:{tmp_path}", "no *.onnx files"),
        ("insightface", "no model folder given"),
    ]:
        backend = build_face_backend(spec)
        assert isinstance(backend, BackendUnavailable)
        r = face_identity(
            np.zeros((2, 32, 32, 3), np.uint8), [RefImage(np.zeros((8, 8, 3), np.uint8))], backend
        )
        assert r.is_na and r.value is None
        assert words in r.na_reason
        assert r.format().startswith("n/a: ") and words in r.format()
        assert r.to_json()["value"] is None and r.to_json()["display"].startswith("n/a: ")


def test_metric_result_refuses_a_number_and_a_reason_together():
    with pytest.raises(ValueError):
        MetricResult("face", "x", value=0.5, na_reason="why")
    with pytest.raises(ValueError):
        MetricResult("face", "x")


def test_sample_indices_are_uniform_and_capped():
    assert sample_indices(10, 32) == list(range(10))
    idx = sample_indices(121, 32)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 120


def _texture(h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)
    return np.repeat(smooth[..., None], 3, axis=2)


def test_motion_amplitude_frozen_is_zero_and_a_known_shift_is_measured():
    tex = _texture(160, 160)
    frozen = np.stack([tex[:96, :96]] * 8)
    shift = 2  # pixels per frame
    moving = np.stack([tex[:96, k * shift : k * shift + 96] for k in range(8)])
    r0, r1 = motion_amplitude(frozen), motion_amplitude(moving)
    assert r0.value < 1e-4
    expected = shift / np.hypot(96, 96)
    assert r1.value == pytest.approx(expected, rel=0.3)
    assert r1.unit == "diag/frame"


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    a = _texture(64, 64)[..., 0]
    assert ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + np.random.default_rng(1).integers(-60, 60, a.shape), 0, 255)
    assert ssim(a, b) < 0.7


def _actorworld():
    return pytest.importorskip("wildactor.world")


def test_copy_paste_is_high_for_a_pasted_reference_and_low_for_renders():
    from wildactor.bench.actorworld import render_reference
    from wildactor.bench.baselines import pasted_video
    from wildactor.bench.spec import RefSpec

    w = _actorworld()
    actor = "actor_400001"
    refs = [
        RefImage(
            render_reference(actor, RefSpec(region="body", view="left", actorworld="view_aug")),
            "body",
            "left",
        )
    ]
    pasted = pasted_video(refs, 9, 64, 64)
    rng = np.random.default_rng(0)
    spec = w.sample_clip_spec(w.Actor.from_id(actor), rng, motion="walk_across", scene="forest", num_frames=9)
    render = w.render_clip(spec).frames
    cp_pasted, cp_render = copy_paste(pasted, refs), copy_paste(render, refs)
    assert cp_pasted.value > 0.95
    assert cp_render.value < 0.6
    assert motion_amplitude(pasted).value < 1e-4 < motion_amplitude(render).value


def test_pose_spread_zero_for_a_locked_pose_and_large_for_a_turn():
    assert pose_spread([30.0] * 10).value == pytest.approx(0.0, abs=1e-3)
    assert pose_spread([355.0, 5.0] * 5).value < 10.0  # wraps around 0
    assert pose_spread(list(np.linspace(0, 180, 10))).value > 40.0
    assert pose_spread([1.0]).is_na


class TruthProbes:
    """Stand-in probes that read back exactly what was rendered (the ActorWorld labels), so the metric's
    arithmetic is checked independently of probe accuracy."""

    def __init__(self, attributes: dict[str, str], yaws: list[float]) -> None:
        self.attributes, self.yaws = attributes, yaws

    def predict_attributes(self, frames):
        return [dict(self.attributes) for _ in frames]

    def predict_view(self, frames):
        from wildactor.data.schema import view_bin

        return [{"view": view_bin(y), "yaw": y} for y in self.yaws[: len(frames)]]

    @staticmethod
    def trust_graphic(view: str) -> bool:
        return view != "back"


def test_actorworld_body_consistency_is_one_for_the_actor_and_near_chance_for_others():
    w = _actorworld()
    from wildactor.bench.metrics.actorworld import chance_attribute_agreement

    frames = np.zeros((8, 64, 64, 3), np.uint8)
    yaws = [0, 10, 90, 100, 180, 190, 270, 300]
    actor = w.Actor.from_id("actor_400010")
    same = body_consistency_actorworld(frames, actor.attributes(), TruthProbes(actor.attributes(), yaws))
    assert same.value == 1.0
    assert set(same.by_view) == {"front", "side", "back"} and all(v == 1.0 for v in same.by_view.values())
    scores = []
    for k in range(200):
        other = w.Actor.from_id(410_000 + 37 * k)
        scores.append(
            body_consistency_actorworld(
                frames, actor.attributes(), TruthProbes(other.attributes(), yaws)
            ).value
        )
    assert max(scores) < 1.0
    assert np.mean(scores) == pytest.approx(chance_attribute_agreement(), abs=0.05)


def test_actorworld_body_consistency_with_the_shipped_probes():
    w = _actorworld()
    from wildactor.bench.actorworld import other_actor, render_item_clip
    from wildactor.bench.metrics.actorworld import build_probe_backend, chance_attribute_agreement
    from wildactor.bench.spec import load_suite

    probes = build_probe_backend()
    if isinstance(probes, BackendUnavailable):
        r = body_consistency_actorworld(np.zeros((2, 64, 64, 3), np.uint8), {}, probes)
        assert r.is_na and "probe" in r.na_reason
        pytest.skip(f"ActorWorld probes not shipped yet: {probes.reason}")
    items = [it for it in load_suite("actorworld").items() if it.axis == "contextual"][:24]
    same, other = [], []
    for it in items:
        attrs = w.Actor.from_id(it.actor).attributes()
        same.append(body_consistency_actorworld(render_item_clip(it), attrs, probes).value)
        other.append(body_consistency_actorworld(render_item_clip(it, other_actor(it)), attrs, probes).value)
    assert np.mean(same) > 0.9, np.mean(same)
    assert np.mean(other) < chance_attribute_agreement() + 0.2, np.mean(other)


class StubJudge:
    """A VLM stand-in: 'yes' when the last image equals the first (a pasted reference)."""

    name = "vlm:stub"

    def __init__(self) -> None:
        self.questions: list[str] = []

    def yes_probability(self, images, question):
        self.questions.append(question)
        return 1.0 if np.array_equal(images[0], images[-1]) else 0.0


def test_vlm_body_judge_uses_the_repo_prompt_and_averages_frames():
    ref = RefImage(_texture(64, 64), "body")
    video = np.stack([ref.image] * 2 + [np.zeros_like(ref.image)] * 2)
    judge = StubJudge()
    r = body_consistency_vlm(video, [ref], judge)
    assert r.value == 0.5 and r.backend == "vlm:stub"
    assert "same person" in judge.questions[0] and "{num_refs}" not in judge.questions[0]


def test_missing_clip_and_vlm_folders_give_na(tmp_path):
    clip = build_clip_backend(str(tmp_path / "clip"))
    vlm = build_vlm_backend(str(tmp_path / "vlm"))
    r = semantic_clip(np.zeros((2, 32, 32, 3), np.uint8), "a person", clip)
    assert r.is_na and "config.json missing" in r.na_reason
    b = body_consistency_vlm(
        np.zeros((2, 32, 32, 3), np.uint8), [RefImage(np.zeros((8, 8, 3), np.uint8))], vlm
    )
    assert b.is_na and "config.json missing" in b.na_reason


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE vocabularies (GPT-2 / CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP (model + processor) saved like a real local folder; no hub access."""
    import json

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("tinyclip")
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(d)
    torch.manual_seed(0)
    n = len(vocab)
    text = dict(vocab_size=n, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=77, eos_token_id=n - 1, bos_token_id=n - 2, pad_token_id=n - 1)  # fmt: skip
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(d)
    return d


def test_clip_backend_loads_a_local_folder_and_scores_as_documented(tiny_clip_dir):
    import torch

    scorer = build_clip_backend(str(tiny_clip_dir))
    assert not isinstance(scorer, BackendUnavailable), getattr(scorer, "reason", "")
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    r = semantic_clip(np.stack([frame] * 4), "a person walks", scorer)
    assert r.backend == "clip:" + tiny_clip_dir.name
    assert r.value == max(0.0, r.extra["cosine"])
    # One frame repeated = that frame alone: the video embedding is the normalised mean of frame embeddings.
    with torch.no_grad():
        px = scorer.processor(images=[frame], return_tensors="pt")["pixel_values"]
        v = scorer._features(scorer.model.get_image_features(pixel_values=px))[0]
        txt = scorer.processor(text=["a person walks"], return_tensors="pt", padding=True)
        t = scorer._features(scorer.model.get_text_features(**txt))[0]
    expected = float(torch.nn.functional.cosine_similarity(v, t, dim=0))
    assert r.extra["cosine"] == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny random LLaVA (CLIP vision + Llama text) with a word-level tokenizer and a chat template, saved
    like a real local VLM folder: exercises the judge's loading, chat template, images and logits path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    d = tmp_path_factory.mktemp("tinyvlm")
    words = ["<unk>", "<pad>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "Yes", "No", "yes", "no"]
    words += [chr(c) for c in range(33, 127)]
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>", additional_special_tokens=["<image>"])  # fmt: skip
    template = (
        "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
        "{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                   chat_template=template, image_token="<image>", num_additional_image_tokens=1).save_pretrained(d)  # fmt: skip
    cfg = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(words), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(d)
    return d


def test_vlm_judge_reads_yes_probability_from_a_local_model(tiny_vlm_dir):
    import torch

    judge = build_vlm_backend(str(tiny_vlm_dir))
    assert not isinstance(judge, BackendUnavailable), getattr(judge, "reason", "")
    ref = RefImage(_texture(48, 48), "body")
    video = np.stack([_texture(48, 48, seed=k) for k in range(3)])
    r = body_consistency_vlm(video, [ref, ref], judge)  # 2 references + 1 frame per question
    assert 0.0 <= r.value <= 1.0 and len(r.per_frame) == 3
    # An answer head that always says "Yes" (or "No") must give P(yes) ~ 1 (or ~ 0).
    vocab = judge.model.lm_head.out_features
    for sign, check in ((1.0, lambda p: p > 0.99), (-1.0, lambda p: p < 0.01)):
        head = torch.nn.Linear(judge.model.lm_head.in_features, vocab, bias=True)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[judge._yes] = 10.0 * sign
            head.bias[judge._no] = -10.0 * sign
        judge.model.lm_head = head
        assert check(judge.yes_probability([ref.image], "Same person? Yes or No"))
