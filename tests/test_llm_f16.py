"""The F16 copy of the embedded GGUF: policy, one build, same verdict numbers as the packaged Q4_1 file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from anomalist.agent.llm.engines import LlamaCppEngine, embedded_model_path, f16_copy, wants_f16


def test_policy(tmp_path: Path) -> None:
    small = tmp_path / "m.gguf"
    small.write_bytes(b"x" * 1000)
    folder = tmp_path / "hf"
    folder.mkdir()
    assert wants_f16(small, "auto") and wants_f16(small, "always") and not wants_f16(small, "never")
    assert not wants_f16(folder, "always")
    with small.open("r+b") as fh:  # a sparse 300 MB file stands for a big model
        fh.truncate(300 * 1024 * 1024)
    assert not wants_f16(small, "auto") and wants_f16(small, "always")


def test_f16_copy_is_built_once_and_scores_like_the_original() -> None:
    src = embedded_model_path()
    out = f16_copy(src)
    assert out.is_file() and out.stat().st_size > 2 * src.stat().st_size  # F16 is larger than 4-bit
    mtime = out.stat().st_mtime_ns
    t = time.perf_counter()
    assert f16_copy(src) == out and out.stat().st_mtime_ns == mtime  # cached: not rebuilt
    assert time.perf_counter() - t < 2.0
    q4, f16 = LlamaCppEngine(src), LlamaCppEngine(src, f16=True)
    assert f16.name.endswith("-as-F16") and not q4.name.endswith("-as-F16")
    prompt = q4.format_chat([{"role": "user", "content": "kernel panic: not syncing, is this normal or anomalous?"}])
    labels = [" normal", " anomalous"]
    split = prompt.index("kernel")  # fixed part / variable part, as judgments call it (deterministic numbers)
    a, b = q4.label_logprobs(prompt, labels, split=split), f16.label_logprobs(prompt, labels, split=split)
    # Same weights up to F16 rounding of the Q4_1 scales: the margin moves by a small fraction of a nat.
    assert abs((a[1] - a[0]) - (b[1] - b[0])) < 0.5, (a, b)
    assert b == pytest.approx(f16.label_logprobs(prompt, labels, split=split))  # deterministic
