"""`wildactor lora convert IN OUT --to official|standin|wildactor`: reference-LoRA files other tools read.

The layouts are described in `wildactor.lora_formats`; conversion renames keys only (bitwise round trips).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wildactor.lora_formats import FORMATS

    sub = parser.add_subparsers(dest="lora_command", metavar="ACTION", required=True)
    convert = sub.add_parser(
        "convert", help="rewrite a reference LoRA in another layout", description="rewrite a reference LoRA"
    )
    convert.add_argument("input", help="reference LoRA (.safetensors) in any of the layouts")
    convert.add_argument("output", help="where to write the converted file (.safetensors)")
    convert.add_argument("--to", required=True, choices=FORMATS, help="layout to write")
    convert.add_argument(
        "--from", dest="source_format", choices=FORMATS, default=None,
        help="layout of the input (default: detected from its keys; a mismatch is an error)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from wildactor.lora_formats import convert_lora_file, detect_lora_format, read_lora_file

    out = convert_lora_file(args.input, args.output, args.to, args.source_format)
    tensors, meta = read_lora_file(out)
    source = detect_lora_format(read_lora_file(args.input)[0], args.input)
    print(
        f"wrote {out}: {source} -> {args.to} layout, {len(tensors)} tensors, rank {meta['rank']}, "
        f"{meta['num_layers']} layers"
    )
    return 0
