"""The two embedding backends of the packaged all-MiniLM-L6-v2: torch fp32 and the locally built int8 ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalist.tools._onnx_embed import OnnxUnavailable, supported
from anomalist.tools.embeddings import Embedder, default_model_path

TEXTS = [
    "Disk /var/lib/postgres is 97% full on db-3; writes are failing with ENOSPC.",
    "The checkout service returned HTTP 503 for 12 minutes after a bad config push.",
    "Kubernetes pod payments-7f9 is crash looping: OOMKilled, restart count 14.",
    "Certificate for api.example.com expired; TLS handshakes fail.",
    "short",
    "",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Embedder, Embedder]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ANOMALIST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        fp32 = Embedder(device="cpu", backend="torch")
        int8 = Embedder(device="cpu", backend="onnx-int8")
        int8.encode(["warm"])  # builds the ONNX file into the temporary cache
        yield fp32, int8
    finally:
        mp.undo()


def test_int8_vectors_match_fp32(pair: tuple[Embedder, Embedder]) -> None:
    fp32, int8 = pair
    assert int8.effective_backend == "onnx-int8", int8._onnx_failed
    a, b = fp32.encode(TEXTS), int8.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(1)
    assert cos.min() > 0.97, cos
    # Ranking is what retrieval needs: each text is still nearest to itself across the two backends.
    assert ((b @ a.T).argmax(1) == np.arange(len(TEXTS))).all()


def test_int8_deterministic_and_order_independent(pair: tuple[Embedder, Embedder]) -> None:
    _, int8 = pair
    a = int8.encode(TEXTS, threads=1)
    b = int8.encode(TEXTS[::-1], threads=2)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-4)
    one = int8.encode([TEXTS[0]])
    np.testing.assert_allclose(one[0], a[0], atol=1e-4)


def test_onnx_file_is_cached_under_the_cache_dir(pair: tuple[Embedder, Embedder]) -> None:
    _, int8 = pair
    path = int8._onnx.path
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert "int8" in path.name and int8.space.endswith("/onnx-int8")


def test_unsupported_models_fall_back_to_torch_with_reason(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text(json.dumps([
        {"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Dense"}
    ]))
    assert "unsupported" in (supported(model) or "")
    assert "no modules.json" in (supported(tmp_path) or "")
    pooling = tmp_path / "cls"
    (pooling / "1_Pooling").mkdir(parents=True)
    (pooling / "modules.json").write_text(json.dumps([
        {"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Pooling"}
    ]))
    (pooling / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                                   "pooling_mode_mean_tokens": False}))
    assert supported(pooling) == "only mean pooling is exported"
    from anomalist.tools._onnx_embed import OnnxEncoder

    with pytest.raises(OnnxUnavailable):
        OnnxEncoder(model)
    assert supported(default_model_path()) is None


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="onnx-int8"):
        Embedder(backend="tensorrt")


def test_store_records_its_embedding_space_across_writes(pair: tuple[Embedder, Embedder], tmp_path: Path) -> None:
    from anomalist.tools.store import IncidentStore
    from anomalist.tools.store.records import Incident
    from anomalist.tools.store.store import INCIDENTS

    _, int8 = pair
    store = IncidentStore.open("embedded", path=tmp_path / "db", create=True, embedder=int8)
    store.upsert_incidents([Incident(id="a", title="Disk full on db-3", summary="WAL piled up.")])
    store.upsert_incidents([Incident(id="b", title="Pod crash looping", summary="OOMKilled.")])
    store.close()
    again = IncidentStore.open("embedded", path=tmp_path / "db", embedder=int8)
    meta = again._col(INCIDENTS).metadata
    assert meta["embedding_space"] == "all-MiniLM-L6-v2/onnx-int8" and meta.get("revision")
    assert again.similar_incidents("disk is full", k=1)[0].incident.id == "a"
    again.close()
