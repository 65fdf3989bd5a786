"""Prompt text as Wan's pipelines prepare it: the default negative prompt and prompt cleaning."""

from __future__ import annotations

import html
import re

# The negative prompt Wan2.1/2.2 use by default (their configs and every published example).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"
    "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，"
    "画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
    "杂乱的背景，三条腿，背景人很多，倒着走"
)


def clean_prompt(text: str) -> str:
    """Repair mis-decoded Unicode (ftfy), undo (double) HTML escaping, collapse whitespace: Wan's cleaning."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()
