"""Bytes of one latent-cache record at Wan2.2-TI2V-5B's 480p / 81 frames with 6 references, as
`build_latent_cache` writes it (safetensors), in the v1 layout (text as the full (512, 4096) fp32 embedding) and
the v2 layout (text as its valid rows, in the bf16 training dtype). The prompt has 40 valid tokens, typical of a
captioned clip; the tensors are random with the real shapes (sizes do not depend on values).

    python benchmarks/latent_cache_size.py --out benchmarks/results/latent_cache_record_480p.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from common import machine_info
from wildactor.data.dataset import pad_text, trim_text

LATENT = (48, 21, 30, 52)  # (C, F, H', W') of 832x480, 81 frames
REFERENCES = 6
TEXT = (512, 4096)


def record_bytes(tensors: dict[str, torch.Tensor]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "record.safetensors"
        save_file(tensors, str(path))
        return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--valid-tokens", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    text = torch.zeros(TEXT)
    text[: args.valid_tokens] = torch.randn(args.valid_tokens, TEXT[1], generator=gen)
    shared = {"0.video": torch.randn(LATENT, generator=gen)}
    shared.update(
        {f"0.ref.{j}": torch.randn(LATENT[0], *LATENT[2:], generator=gen) for j in range(REFERENCES)}
    )
    v1 = record_bytes({**shared, "0.text": text})
    rows = trim_text(text).to(torch.bfloat16)
    v2 = record_bytes({**shared, "0.text": rows})
    assert torch.equal(
        pad_text(rows, TEXT[0]), text.to(torch.bfloat16).float()
    )  # nothing but padding dropped
    text_v1, text_v2 = record_bytes({"t": text}), record_bytes({"t": rows})
    report = {
        "machine": machine_info(),
        "command": "python benchmarks/latent_cache_size.py --out benchmarks/results/latent_cache_record_480p.json",
        "setting": {
            "latent": list(LATENT),
            "references": REFERENCES,
            "text": list(TEXT),
            "valid_tokens": args.valid_tokens,
        },  # fmt: skip
        "bytes_per_record": {"v1": v1, "v2": v2},
        "text_bytes": {"v1": text_v1, "v2": text_v2},
        "v2_over_v1": round(v2 / v1, 3),
        "records_1_6M_TB": {"v1": round(v1 * 1.6e6 / 1e12, 1), "v2": round(v2 * 1.6e6 / 1e12, 1)},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
