"""Tiny local models: a byte-level BPE tokenizer and a random-init Qwen2-shaped causal LM.

The machine that runs our tests has no hub access, so every test, benchmark and demo builds its
model here and loads it back through the ordinary paths (`AutoTokenizer.from_pretrained(dir)`,
`AutoModelForCausalLM.from_pretrained(dir)`), exactly like a hub checkpoint.

What it does:
- `train_tokenizer(texts, out_dir)`: byte-level BPE (vocab ~1024) with every digit its own token,
  special tokens `<|endoftext|>` (eos), `<|pad|>` (pad), `<|im_start|>`/`<|im_end|>` and a
  ChatML chat template; saved with `save_pretrained` as a fast tokenizer.
- `build_model(tokenizer, out_dir, seed=0, **shape)`: `Qwen2Config` (hidden 128, 4 layers, 4 heads,
  2 KV heads, intermediate 512, tied embeddings by default), random init under `seed`, saved as
  safetensors.
- `build_tiny_model(out_dir, texts=None, seed=0, **shape)`: both, in one directory. Deterministic
  given the seed and texts; takes a few seconds.

What it does not do: train the model (see `rlvr.demo.pretrain` for the arithmetic base model).

Try it:
    python -c "from rlvr.tiny import build_tiny_model; print(build_tiny_model('/tmp/tiny'))"
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, IM_START, IM_END]

# Qwen2's pre-tokenizer regex (transformers' tokenization_qwen2.PRETOKENIZE_REGEX).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The default model shape: ~1.1M parameters with vocab 1024 (the R1-Zero demo's).
DEFAULT_SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 512,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
}

_WORDS_TEXT = (
    "the a an of to and in is was for on that with as by at from it this be are were or which "
    "number sum answer question add plus equals total result what how many apples books students "
    "river city morning evening garden market teacher train letter small large quick slow green "
    "old new people water house think reason step first then finally because therefore so we "
    "mountain village winter summer autumn spring window kitchen doctor farmer children mother "
    "father brother sister friend story history science music painting journey island forest "
    "bridge station library museum hospital school country language government company problem "
    "solution example important different possible general public private social political "
    "national natural interesting beautiful difficult simple careful quietly slowly quickly "
    "remember understand explain describe consider continue develop believe happen include "
    "become provide receive return travel follow allow appear change create decide discover "
    "weather thunder lightning ocean harbour sailor captain soldier merchant bakery butcher "
    "cheese bread butter coffee yellow purple orange silver golden wooden broken hidden ancient "
    "modern northern southern eastern western between through without against during before "
    "after above below around behind beyond within although however perhaps usually always"
)
_WORDS = _WORDS_TEXT.split()


def default_texts(n: int = 3000, seed: int = 0) -> list[str]:
    """A small deterministic mixed corpus (arithmetic, English-like words, tags) for tokenizers.

    >>> len(default_texts(10))
    10
    """
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        kind = i % 4
        if kind == 0:
            out.append(f"Q: What is {a} + {b}? A: {a + b}")
        elif kind == 1:
            out.append(f"<think>{a} plus {b} is {a + b}</think> <answer>{a + b}</answer>")
        elif kind == 2:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
            out.append(" ".join(words).capitalize() + ".")
        else:
            out.append(f"User: {a} - {b} = ?\nAssistant: {a - b}. The answer is {a - b}.")
    return out


def train_tokenizer(
    texts: Iterable[str] | None,
    out_dir: str | Path | None = None,
    *,
    vocab_size: int = 1024,
) -> Any:
    """Train a byte-level BPE tokenizer with single-digit tokens; optionally `save_pretrained` it.

    Returns a `transformers` fast tokenizer. Digits never merge, so "71" is always ["7", "1"].

    >>> tok = train_tokenizer(default_texts(200), vocab_size=400)
    >>> tok.tokenize("123")
    ['1', '2', '3']
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(default_texts() if texts is None else texts)
    tok = Tokenizer(models.BPE())
    # Exactly the pipeline `Qwen2Tokenizer` rebuilds on load (AutoTokenizer picks it because the
    # model config says qwen2), so training and loading split text the same way. `\p{N}` in the
    # regex makes every digit its own pre-token, hence its own token.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=DEFAULT_SHAPE["max_position_embeddings"],
        padding_side="left",
    )
    fast.chat_template = CHATML_TEMPLATE
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def build_model(tokenizer: Any, out_dir: str | Path | None = None, *, seed: int = 0, **shape: Any) -> Any:
    """A random-init `Qwen2ForCausalLM` sized to `tokenizer`; optionally `save_pretrained` it.

    `shape` overrides any `Qwen2Config` field (defaults in `DEFAULT_SHAPE`). Same seed, same weights.

    >>> m = build_model(train_tokenizer(default_texts(200), vocab_size=400), hidden_size=64)
    >>> m.config.hidden_size
    64
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    fields = {**DEFAULT_SHAPE, **shape}
    fields.setdefault("vocab_size", len(tokenizer))
    config = Qwen2Config(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **fields,
    )
    saved_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(saved_state)  # leave the caller's RNG untouched
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.eval()
    if out_dir is not None:
        model.save_pretrained(str(out_dir), safe_serialization=True)
    return model


def build_tiny_model(
    out_dir: str | Path,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 1024,
    seed: int = 0,
    **shape: Any,
) -> Path:
    """Train the tokenizer on `texts` and save it with a random-init Qwen2 model into `out_dir`.

    >>> import tempfile
    >>> path = build_tiny_model(tempfile.mkdtemp(), hidden_size=64, num_hidden_layers=2)
    >>> from transformers import AutoModelForCausalLM
    >>> AutoModelForCausalLM.from_pretrained(path).config.num_hidden_layers
    2
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(texts, out, vocab_size=vocab_size)
    build_model(tok, out, seed=seed, **shape)
    return out


def count_parameters(model: Any) -> int:
    """Number of unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
