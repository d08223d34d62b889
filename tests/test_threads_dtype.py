"""CPU-safe defaults: torch threads from free cores, dtype "auto" -> float32 without bf16, vLLM core
binding (`rlvr.models`, `rlvr.samplers.vllm`). Pure functions, no engine."""

from __future__ import annotations

import pytest

from rlvr.models import cpu_has_bf16, pick_threads, resolve_cpu_dtype
from rlvr.samplers.vllm import engine_cores

AVX2_ONLY = "processor : 0\nflags : fpu sse avx avx2 fma f16c\n"
SAPPHIRE = "processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_bf16\n"
GRAVITON3 = "processor : 0\nFeatures : fp asimd sve bf16 i8mm\n"


def test_bf16_detection_reads_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("RLVR_CPU_BF16", raising=False)
    assert not cpu_has_bf16(AVX2_ONLY)
    assert cpu_has_bf16(SAPPHIRE) and cpu_has_bf16(GRAVITON3)
    monkeypatch.setenv("RLVR_CPU_BF16", "0")
    assert not cpu_has_bf16(SAPPHIRE)


def test_auto_dtype_is_float32_on_a_cpu_without_bf16(monkeypatch):
    monkeypatch.setenv("RLVR_CPU_BF16", "0")
    dtype, note = resolve_cpu_dtype("auto", on_cpu=True)
    assert dtype == "float32" and "no bf16" in note
    assert resolve_cpu_dtype("bfloat16", on_cpu=True) == ("bfloat16", None)  # asked for: kept
    assert resolve_cpu_dtype("auto", on_cpu=False) == ("auto", None)  # GPU: vLLM decides
    monkeypatch.setenv("RLVR_CPU_BF16", "1")
    assert resolve_cpu_dtype("auto", on_cpu=True) == ("auto", None)


def test_threads_leave_busy_cores_and_the_engines_alone():
    assert pick_threads(cores=2, load=0.0, omp="")[0] == 2
    assert pick_threads(cores=2, load=1.2, omp="")[0] == 1  # one core busy elsewhere
    assert pick_threads(cores=2, load=9.0, omp="")[0] == 1  # never below 1
    assert pick_threads(cores=8, reserved=3, load=2.0, omp="")[0] == 3  # 8 - 3 engine - 2 busy
    assert pick_threads(cores=8, load=0.0, omp="4")[0] == 4  # OMP_NUM_THREADS wins
    assert pick_threads(3, cores=8, omp="4")[0] == 3  # an explicit --threads wins over both
    with pytest.raises(ValueError):
        pick_threads(0)


def test_engine_cores_keep_one_for_the_scheduler():
    assert engine_cores(None, [0, 1]) == [1]
    assert engine_cores(None, [4, 5, 6, 7]) == [5, 6, 7]
    assert engine_cores(None, [3]) == [3]
    assert engine_cores(1, [0, 1, 2]) == [2]
    with pytest.raises(ValueError, match="cpu_cores=5"):
        engine_cores(5, [0, 1])
