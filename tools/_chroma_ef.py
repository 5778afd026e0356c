"""chromadb adapter for ``tools.embeddings.Embedder`` (kept apart so importing embeddings never imports chromadb)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

if TYPE_CHECKING:  # pragma: no cover
    from anomalist.tools.embeddings import Embedder


class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Embeds documents and queries with the packaged all-MiniLM-L6-v2."""

    def __init__(self, embedder: Embedder):
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's parameter name
        return [row for row in self._embedder.encode(list(input))]

    @staticmethod
    def name() -> str:
        return "anomalist-minilm"

    def get_config(self) -> dict[str, Any]:
        return {"model": self._embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        from anomalist.tools.embeddings import get_embedder

        return ChromaEmbeddingFunction(get_embedder())

    def is_legacy(self) -> bool:
        return False
