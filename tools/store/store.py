"""``IncidentStore``: incidents and runbooks in two chromadb collections, with hybrid retrieval.

Retrieval combines three signals, each reported on the hit:
- exact: an alert's name (or its runbook URL) names the runbook / appears in the incident's alert symptoms;
  an exact match always ranks above any non-exact one;
- semantic: cosine similarity of all-MiniLM-L6-v2 embeddings (runbooks: best passage);
- keyword: BM25 over titles, alert names, templates and text, normalized by the best candidate of the query.
``score = SEMANTIC_WEIGHT * semantic + KEYWORD_WEIGHT * keyword + EXACT_BONUS * exact``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anomalist.tools.alerts import Alert, alert_query_text, url_key, url_name
from anomalist.tools.store.backend import StoreUnavailable, guard, open_embedded, open_server, server_url
from anomalist.tools.store.documents import (
    PASSAGE_RECIPE,
    embedding_text,
    incident_keyword_tokens,
    incident_passage,
    runbook_keyword_tokens,
    runbook_passages,
)
from anomalist.tools.store.records import (
    SEVERITY_RANK,
    Incident,
    IncidentHit,
    MatchReason,
    Runbook,
    RunbookHit,
    ScoreParts,
    StoreFilters,
)
from anomalist.tools.store.text import KeywordIndex, tokenize

logger = logging.getLogger(__name__)

INCIDENTS = "anomalist_incidents"
RUNBOOKS = "anomalist_runbooks"
SEMANTIC_WEIGHT = 1.0
KEYWORD_WEIGHT = 0.5
EXACT_BONUS = 1.0
_PAGE = 2000
_IDENT = re.compile(r"\b[A-Za-z][A-Za-z0-9_]*[a-z0-9][A-Z_][A-Za-z0-9_]*\b")
Kind = Literal["incidents", "runbooks"]


@dataclass
class UpsertResult:
    """Counts of one upsert call (idempotent: unchanged records are neither re-embedded nor rewritten)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0


def _hash(record_json: str) -> str:
    """Content hash of a record as stored: its JSON and the recipe of its embedded text (``PASSAGE_RECIPE``), so a
    re-import after the recipe changed re-embeds the records (counted as updated) instead of keeping old vectors."""
    return hashlib.sha256(f"{PASSAGE_RECIPE}\n{record_json}".encode()).hexdigest()[:32]


def _lower(values: Iterable[str]) -> list[str]:
    return sorted({v.strip().lower() for v in values if v and v.strip()})


def where_from_filters(filters: StoreFilters | dict[str, Any] | None) -> dict[str, Any] | None:
    """A chromadb ``where`` for ``filters`` (None when there is nothing to filter)."""
    if filters is None:
        return None
    f = filters if isinstance(filters, StoreFilters) else StoreFilters.model_validate(filters)
    conds: list[dict[str, Any]] = []

    def any_of(key: str, values: list[str]) -> None:
        opts = [{key: {"$contains": v}} for v in _lower(values)]
        if opts:
            conds.append(opts[0] if len(opts) == 1 else {"$or": opts})

    any_of("services", f.services)
    any_of("tags", f.tags)
    if f.severity:
        conds.append({"severity": {"$in": list(dict.fromkeys(f.severity))}})
    if f.min_severity:
        conds.append({"severity_rank": {"$gte": SEVERITY_RANK[f.min_severity]}})
    if f.since:
        conds.append({"started_ts": {"$gte": f.since.timestamp()}})
    if f.until:
        conds.append({"started_ts": {"$lte": f.until.timestamp()}})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}


def _and(*conds: dict[str, Any] | None) -> dict[str, Any] | None:
    real = [c for c in conds if c]
    if not real:
        return None
    return real[0] if len(real) == 1 else {"$and": real}


class _KeywordCache:
    """A collection's BM25 index, rebuilt when the collection's revision stamp changes (any writer bumps it)."""

    def __init__(self) -> None:
        self.revision: str | None = None
        self.index = KeywordIndex()
        self.facts: dict[str, dict[str, Any]] = {}  # id -> the filterable metadata (services, severity, time)
        self.lock = threading.Lock()


_FACT_KEYS = ("services", "tags", "severity", "severity_rank", "started_ts")


def matches_filters(facts: dict[str, Any] | None, f: StoreFilters | None) -> bool:
    """``where_from_filters`` evaluated in Python on one record's metadata (same semantics)."""
    if f is None or f.is_empty():
        return True
    if facts is None:
        return False
    if f.services and not set(_lower(f.services)) & set(facts.get("services") or []):
        return False
    if f.tags and not set(_lower(f.tags)) & set(facts.get("tags") or []):
        return False
    if f.severity and facts.get("severity") not in f.severity:
        return False
    if f.min_severity and int(facts.get("severity_rank", 0)) < SEVERITY_RANK[f.min_severity]:
        return False
    ts = facts.get("started_ts")
    if f.since and (ts is None or ts < f.since.timestamp()):
        return False
    return not (f.until and (ts is None or ts > f.until.timestamp()))


class IncidentStore:
    """Incident and runbook memory on chromadb. Use ``IncidentStore.open(...)`` or ``from_settings``.

    Args:
        client: a chromadb client (``PersistentClient`` or ``HttpClient``).
        embedder: a ``tools.embeddings.Embedder``.
        location: the path or URL, for messages.
        query_threads: torch threads for embedding a query (None = torch's default).
        import_threads: torch threads for embedding imports (None = torch's default).
    """

    def __init__(
        self, client: Any, embedder: Any, location: str, query_threads: int | None = 1,
        import_threads: int | None = None,
    ):
        self.client = client
        self.embedder = embedder
        self.location = location
        self.query_threads = query_threads
        self.import_threads = import_threads
        self._collections: dict[str, Any] = {}
        self._kw: dict[str, _KeywordCache] = {INCIDENTS: _KeywordCache(), RUNBOOKS: _KeywordCache()}

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        mode: Any = "embedded",
        path: Path | str | None = None,
        host: str = "localhost",
        port: int = 8000,
        token: str | None = None,
        ssl: bool = False,
        embedder: Any = None,
        create: bool = False,
        timeout_s: float = 5.0,
        query_threads: int | None = 1,
        import_threads: int | None = None,
        embedding_backend: str = "onnx-int8",
    ) -> IncidentStore:
        """Open the store, raising ``StoreUnavailable`` (fast, naming the path/address) when it cannot be used.

        Args:
            mode: "embedded" (a directory, one writer process) or "server" (a ``chroma run`` server). A settings
                object (the whole ``Settings`` or its ``store`` section) is accepted too.
            path: the embedded store directory.
            host, port, token, ssl: the server (token is sent as a Bearer and X-Chroma-Token header).
            embedder: a ``tools.embeddings.Embedder``; None = the shared packaged all-MiniLM-L6-v2.
            create: create a missing directory (importers); readers leave it False.
            timeout_s: connect timeout for the server heartbeat.
            query_threads, import_threads: CPU threads for embedding (see ``tools.embeddings.torch_threads``).
            embedding_backend: "onnx-int8" (default: about 2.8x faster imports on CPU) or "torch" (fp32); used when
                ``embedder`` is None. Both give vectors of all-MiniLM-L6-v2 (cosine 0.994 between them).
        """
        if not isinstance(mode, str):
            return cls.from_settings(mode, path, embedder=embedder, create=create)
        if embedder is None:
            from anomalist.tools.embeddings import get_embedder

            embedder = get_embedder(backend=embedding_backend)
        if mode == "embedded":
            if path is None:
                raise ValueError("embedded mode needs a store path")
            client = open_embedded(Path(path), create=create)
            store = cls(client, embedder, str(path), query_threads, import_threads)
        elif mode == "server":
            client = open_server(host, int(port), token=token, ssl=ssl, timeout_s=timeout_s)
            store = cls(client, embedder, server_url(host, int(port), ssl), query_threads, import_threads)
        else:
            raise ValueError(f"store mode must be 'embedded' or 'server', got {mode!r}")
        store._ensure_collections()
        return store

    @classmethod
    def from_settings(
        cls, settings: Any, path: Path | str | None = None, embedder: Any = None, create: bool = False
    ) -> IncidentStore:
        """Open from ``agent.settings.StoreSettings`` (or the whole ``Settings``), duck-typed.

        Args:
            settings: ``StoreSettings`` (then ``path`` is the resolved store path, e.g. ``Settings.store_path``)
                or ``Settings`` (its ``store`` section and ``store_path`` are used).
        """
        if hasattr(settings, "store") and hasattr(settings, "store_path"):
            path = path or settings.store_path
            settings = settings.store
        token = getattr(settings, "token", None)
        if token is not None and hasattr(token, "get_secret_value"):
            token = token.get_secret_value()
        return cls.open(
            mode=str(getattr(settings, "mode", "embedded")),
            path=getattr(settings, "path", None) or path,
            host=str(getattr(settings, "host", "localhost")),
            port=int(getattr(settings, "port", 8000)),
            token=token,
            ssl=bool(getattr(settings, "ssl", False)),
            embedder=embedder,
            create=create,
            timeout_s=float(getattr(settings, "timeout_s", 5.0)),
            query_threads=getattr(settings, "query_threads", 1),
            import_threads=getattr(settings, "import_threads", None),
            embedding_backend=str(getattr(settings, "embedding_backend", "onnx-int8")),
        )

    def _ensure_collections(self) -> None:
        ef = self.embedder.chroma_function()
        space = str(getattr(self.embedder, "space", getattr(self.embedder, "name", "unknown")))
        with guard(self.location):
            for name in (INCIDENTS, RUNBOOKS):
                col = self.client.get_or_create_collection(
                    name, embedding_function=ef, configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedding_space": space},
                )
                built = (col.metadata or {}).get("embedding_space")
                if built and built != space:
                    # Same model, another numeric path (e.g. fp32 vs int8): vectors differ by ~0.6% in cosine,
                    # harmless for ranking; another model would not be, so say it.
                    logger.warning("collection %r was embedded as %s; queries now use %s", name, built, space)
                self._collections[name] = col

    def _col(self, name: str) -> Any:
        return self._collections[name]

    def close(self) -> None:
        """Release the client (the embedded directory can then be opened by another process)."""
        self._collections.clear()
        closer = getattr(self.client, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing is best effort
                logger.debug("closing the chroma client failed", exc_info=True)

    def __enter__(self) -> IncidentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing -------------------------------------------------------------------------------------------
    def _bump(self, name: str) -> None:
        # A new random stamp after every write: readers rebuild their keyword index when it differs.
        # modify() replaces the whole metadata: keep the embedding space recorded at creation.
        col = self._col(name)
        space = (col.metadata or {}).get("embedding_space") or str(getattr(self.embedder, "space", "unknown"))
        col.modify(metadata={"revision": uuid.uuid4().hex, "embedding_space": space})

    def _existing_hashes(self, name: str, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(ids), _PAGE):
            got = self._col(name).get(ids=ids[i : i + _PAGE], include=["metadatas"])
            for rid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                out[rid] = str((meta or {}).get("hash", ""))
        return out

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        unique = list(dict.fromkeys(texts))
        vectors = self.embedder.encode(unique, threads=self.import_threads)
        by_text = dict(zip(unique, vectors, strict=True))
        return [by_text[t] for t in texts]

    def upsert_incidents(self, incidents: Sequence[Incident], batch_size: int = 512) -> UpsertResult:
        """Insert or replace incidents by id (idempotent: an identical record is left as it is).

        Batches are pipelined: chromadb writes batch i on a helper thread while batch i + 1 is embedded (the ONNX
        and chromadb native code both release the GIL), and at most one write is in flight, so memory stays bounded
        and a failed write is raised before the next batch is sent.
        """
        result = UpsertResult()
        latest = {inc.id: inc for inc in incidents}  # the last record of an id wins
        items = list(latest.values())
        col = self._col(INCIDENTS)
        with guard(self.location), ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write") as writer:
            pending: Future[Any] | None = None
            wrote = False
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                jsons = [b.model_dump_json() for b in batch]
                hashes = [_hash(j) for j in jsons]
                old = self._existing_hashes(INCIDENTS, [b.id for b in batch])
                todo = [i for i, b in enumerate(batch) if old.get(b.id) != hashes[i]]
                result.unchanged += len(batch) - len(todo)
                for i in todo:
                    if batch[i].id in old:
                        result.updated += 1
                    else:
                        result.added += 1
                if not todo:
                    continue
                docs = [incident_passage(batch[i]) for i in todo]
                vecs = self._embed(docs)
                if pending is not None:
                    pending.result()
                # No documents: nothing reads them back (the record is in the metadata and keyword search is our
                # own BM25), and chromadb's full-text index of them doubled the write cost (0.80 -> 0.38 ms/record).
                pending = writer.submit(
                    col.upsert,
                    ids=[batch[i].id for i in todo],
                    embeddings=[v.tolist() for v in vecs],
                    metadatas=[self._incident_meta(batch[i], jsons[i], hashes[i]) for i in todo],
                )
                wrote = True
            if pending is not None:
                pending.result()
            if wrote:
                self._bump(INCIDENTS)
        return result

    @staticmethod
    def _incident_meta(inc: Incident, record_json: str, digest: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": inc.id, "record": record_json, "hash": digest, "title": inc.title[:200], "severity": inc.severity,
            "severity_rank": SEVERITY_RANK[inc.severity], "source": inc.source[:200], "schema_version": 1,
        }
        for key, values in (("services", inc.services), ("tags", inc.tags), ("alerts", inc.symptoms.alerts)):
            low = _lower(values)
            if low:  # chromadb rejects empty list values
                meta[key] = low
        if inc.started_at is not None:
            meta["started_ts"] = inc.started_at.timestamp()
        return meta

    def upsert_runbooks(self, runbooks: Sequence[Runbook]) -> UpsertResult:
        """Insert or replace runbooks by id (each stored as several embedded passages)."""
        result = UpsertResult()
        latest = {rb.id: rb for rb in runbooks}
        items = list(latest.values())
        with guard(self.location):
            jsons = [rb.model_dump_json() for rb in items]
            hashes = [_hash(j) for j in jsons]
            old = self._existing_hashes(RUNBOOKS, [f"{rb.id}#0" for rb in items])
            todo = [i for i, rb in enumerate(items) if old.get(f"{rb.id}#0") != hashes[i]]
            result.unchanged = len(items) - len(todo)
            if not todo:
                return result
            ids: list[str] = []
            docs: list[str] = []
            metas: list[dict[str, Any]] = []
            for i in todo:
                rb = items[i]
                if f"{rb.id}#0" in old:
                    result.updated += 1
                else:
                    result.added += 1
                passages = runbook_passages(rb)
                base = self._runbook_meta(rb, jsons[i], hashes[i])
                for n, text in enumerate(passages):
                    ids.append(f"{rb.id}#{n}")
                    docs.append(text)
                    metas.append({**base, "chunk": n})
                if f"{rb.id}#0" in old:  # drop passages a shorter new version no longer has
                    self._col(RUNBOOKS).delete(where={"$and": [{"parent": rb.id}, {"chunk": {"$gte": len(passages)}}]})
            vecs = self._embed(docs)
            for s in range(0, len(ids), 1000):
                self._col(RUNBOOKS).upsert(
                    ids=ids[s : s + 1000], embeddings=[v.tolist() for v in vecs[s : s + 1000]],
                    documents=docs[s : s + 1000], metadatas=metas[s : s + 1000],
                )
            self._bump(RUNBOOKS)
        return result

    @staticmethod
    def _runbook_meta(rb: Runbook, record_json: str, digest: str) -> dict[str, Any]:
        keys = _lower([*rb.alert_names, rb.id.rsplit("/", 1)[-1]])
        names = _lower([url_name(rb.url) or ""])
        meta: dict[str, Any] = {
            "record": record_json, "hash": digest, "parent": rb.id, "title": rb.title[:200],
            "name_keys": sorted(set(keys) | set(names)), "schema_version": 1,
        }
        if rb.url and url_key(rb.url):
            meta["url_key"] = url_key(rb.url)
        low = _lower(rb.services)
        if low:
            meta["services"] = low
        return meta

    def delete(self, ids: Sequence[str], kind: Kind = "incidents") -> int:
        """Delete records by id; returns how many existed."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with guard(self.location):
            if kind == "incidents":
                found = self._col(INCIDENTS).get(ids=ids, include=[])["ids"]
                if found:
                    self._col(INCIDENTS).delete(ids=found)
                    self._bump(INCIDENTS)
                return len(found)
            if kind != "runbooks":
                raise ValueError(f"kind must be 'incidents' or 'runbooks', got {kind!r}")
            found = self._col(RUNBOOKS).get(ids=[f"{i}#0" for i in ids], include=[])["ids"]
            if found:
                self._col(RUNBOOKS).delete(where={"parent": {"$in": [f[:-2] for f in found]}})
                self._bump(RUNBOOKS)
            return len(found)

    # ---- reading -------------------------------------------------------------------------------------------
    def count(self, kind: Kind = "incidents") -> int:
        """Number of incidents (or runbooks) in the store."""
        with guard(self.location):
            if kind == "incidents":
                return int(self._col(INCIDENTS).count())
            return len(self._col(RUNBOOKS).get(where={"chunk": 0}, include=[])["ids"])

    def get_incident(self, incident_id: str) -> Incident | None:
        with guard(self.location):
            got = self._col(INCIDENTS).get(ids=[incident_id], include=["metadatas"])
        metas = got["metadatas"] or []
        return Incident.model_validate_json(metas[0]["record"]) if metas else None

    def get_runbook(self, runbook_id: str) -> Runbook | None:
        with guard(self.location):
            got = self._col(RUNBOOKS).get(ids=[f"{runbook_id}#0"], include=["metadatas"])
        metas = got["metadatas"] or []
        return Runbook.model_validate_json(metas[0]["record"]) if metas else None

    def list_incidents(
        self, filters: StoreFilters | dict[str, Any] | None = None, limit: int = 100, offset: int = 0
    ) -> list[Incident]:
        """Incidents matching ``filters``, newest ``started_at`` first (those without a time last)."""
        where = where_from_filters(filters)
        with guard(self.location):
            metas = self._get_all_metas(INCIDENTS, where)
        incidents = [Incident.model_validate_json(m["record"]) for m in metas]
        incidents.sort(key=lambda i: (i.started_at is None, -(i.started_at.timestamp() if i.started_at else 0), i.id))
        return incidents[offset : offset + limit]

    def list_runbooks(self, limit: int = 1000, offset: int = 0) -> list[Runbook]:
        with guard(self.location):
            metas = self._get_all_metas(RUNBOOKS, {"chunk": 0})
        runbooks = sorted((Runbook.model_validate_json(m["record"]) for m in metas), key=lambda r: r.id)
        return runbooks[offset : offset + limit]

    def _get_all_metas(self, name: str, where: dict[str, Any] | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            got = self._col(name).get(where=where, include=["metadatas"], limit=_PAGE, offset=offset)
            metas = got["metadatas"] or []
            out.extend(m for m in metas if m)
            if len(got["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def _keyword_index(self, name: str) -> _KeywordCache:
        cache = self._kw[name]
        with cache.lock:
            revision = str((self.client.get_collection(name, embedding_function=self.embedder.chroma_function())
                            .metadata or {}).get("revision", ""))
            if revision != cache.revision:
                where = {"chunk": 0} if name == RUNBOOKS else None
                metas = self._get_all_metas(name, where)
                key = "parent" if name == RUNBOOKS else "id"
                if name == RUNBOOKS:
                    docs = [(str(m[key]), runbook_keyword_tokens(Runbook.model_validate_json(m["record"])))
                            for m in metas]
                else:
                    docs = [(str(m[key]), incident_keyword_tokens(Incident.model_validate_json(m["record"])))
                            for m in metas]
                cache.index = KeywordIndex().build(docs)
                cache.facts = {str(m[key]): {k: m[k] for k in _FACT_KEYS if k in m} for m in metas}
                cache.revision = revision
            return cache

    def warm_up(self) -> None:
        """Load the embedding model and build the keyword indexes now (instead of on the first query)."""
        self.embedder.encode(["warm up"])
        with guard(self.location):
            self._keyword_index(INCIDENTS)
            self._keyword_index(RUNBOOKS)

    # ---- retrieval -----------------------------------------------------------------------------------------
    def similar_incidents(
        self, query: str, k: int = 5, filters: StoreFilters | dict[str, Any] | None = None
    ) -> list[IncidentHit]:
        """The ``k`` past incidents most similar to ``query`` (free text: findings, templates, alert names).

        An alert name in the query that an incident lists among its symptoms is an exact match and ranks first.
        """
        if not query or not query.strip():
            raise ValueError("query must not be empty")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        flt = _as_filters(filters)
        names = _identifier_words(query)
        exact_where = None
        if names:
            opts = [{"alerts": {"$contains": n}} for n in names]
            exact_where = opts[0] if len(opts) == 1 else {"$or": opts}
        with guard(self.location):
            scored = self._hybrid(INCIDENTS, query, query, k, flt, exact_where, {})
        return [
            IncidentHit(incident=Incident.model_validate_json(meta["record"]), score=s, why=why, parts=parts,
                        matched_terms=terms)
            for _, s, why, parts, terms, meta in scored
        ]

    def search_runbooks(
        self, query: str, k: int = 3, filters: StoreFilters | dict[str, Any] | None = None
    ) -> list[RunbookHit]:
        """Runbooks for free text (no exact-name step; see ``runbook_for`` for alerts)."""
        if not query or not query.strip():
            raise ValueError("query must not be empty")
        flt = _as_filters(filters)
        with guard(self.location):
            scored = self._hybrid(RUNBOOKS, query, query, k, flt, None, {})
        return [self._runbook_hit(*row) for row in scored]

    def runbook_for(self, alert: Alert | dict[str, Any], k: int = 3) -> list[RunbookHit]:
        """Runbooks for an Alertmanager alert (``labels`` + ``annotations``; a whole webhook payload = its first
        alert). A runbook named by the alert's ``alertname`` or ``runbook_url`` comes first ("exact_name" /
        "runbook_url"); the rest is hybrid search over the alert's name, annotations and identifying labels."""
        a = Alert.coerce(alert)
        exact: dict[str, MatchReason] = {}
        with guard(self.location):
            opts: list[dict[str, Any]] = []
            keys = _lower([a.name or ""])
            link = url_name(a.runbook_url)
            opts += [{"name_keys": {"$contains": n}} for n in keys]
            if link:
                opts.append({"name_keys": {"$contains": link}})
            if url_key(a.runbook_url):
                opts.append({"url_key": url_key(a.runbook_url)})
            if opts:
                where = {"$and": [{"chunk": 0}, opts[0] if len(opts) == 1 else {"$or": opts}]}
                got = self._col(RUNBOOKS).get(where=where, include=["metadatas"])
                for meta in got["metadatas"] or []:
                    name_keys = set(meta.get("name_keys") or [])
                    reason: MatchReason = "exact_name" if name_keys & set(keys) else "runbook_url"
                    exact[str(meta["parent"])] = reason
            dense_text = alert_query_text(a, labels=False) or alert_query_text(a)
            kw_text = alert_query_text(a)
            if not dense_text and not exact:
                raise ValueError("the alert has no alertname, annotations or labels to search with")
            scored = self._hybrid(RUNBOOKS, dense_text or kw_text, kw_text, k, None, None, exact) if dense_text else []
        hits = [self._runbook_hit(*row) for row in scored]
        missing = [rid for rid in exact if rid not in {h.runbook.id for h in hits}]
        for rid in missing:  # an exact match is returned even when search did not reach it
            rb = self.get_runbook(rid)
            if rb is not None:
                hits.append(RunbookHit(runbook=rb, score=EXACT_BONUS, why=[exact[rid]], parts=ScoreParts(exact=1.0)))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    @staticmethod
    def _runbook_hit(
        _id: str, score: float, why: list[MatchReason], parts: ScoreParts, terms: list[str], meta: dict[str, Any]
    ) -> RunbookHit:
        return RunbookHit(runbook=Runbook.model_validate_json(meta["record"]), score=score, why=why, parts=parts,
                          matched_terms=terms)

    def _hybrid(
        self, name: str, dense_text: str, keyword_text: str, k: int, flt: StoreFilters | None,
        exact_where: dict[str, Any] | None, exact: dict[str, MatchReason],
    ) -> list[tuple[str, float, list[MatchReason], ScoreParts, list[str], dict[str, Any]]]:
        # Candidates are scored from ids, distances and the in-memory keyword index; metadata (with the record)
        # is fetched for the final k only: fetching it for every candidate cost 10x the whole search.
        col = self._col(name)
        is_rb = name == RUNBOOKS
        where = where_from_filters(flt)
        qv = self.embedder.encode([embedding_text(dense_text)], threads=self.query_threads)[0]
        n_dense = max(4 * k, 20) * (4 if is_rb else 1)
        cache = self._keyword_index(name)
        index = cache.index
        if not cache.facts:  # empty collection (the cache follows every write through the revision stamp)
            return []
        semantic: dict[str, float] = {}

        def take(res: Any, check: bool) -> int:
            n = 0
            for cid, dist in zip(res["ids"][0], res["distances"][0], strict=False):
                rid = cid.rsplit("#", 1)[0] if is_rb else cid
                if check and not matches_filters(cache.facts.get(rid), flt):
                    continue
                semantic[rid] = max(semantic.get(rid, -2.0), 1.0 - float(dist))
                n += 1
            return n

        if where is None:
            take(col.query(query_embeddings=[qv.tolist()], n_results=n_dense, include=["distances"]), False)
        else:
            # chromadb's filtered search scans the metadata (tens of ms at 10k records); over-fetch unfiltered
            # neighbours and filter them here first, and only fall back to the filtered search when too few pass.
            wide = max(10 * n_dense, 200)
            res = col.query(query_embeddings=[qv.tolist()], n_results=wide, include=["distances"])
            if take(res, True) < n_dense and len(res["ids"][0]) == wide:
                take(col.query(query_embeddings=[qv.tolist()], n_results=n_dense, where=where,
                               include=["distances"]), False)
        q_tokens = tokenize(keyword_text)
        kw_scores = index.scores(q_tokens)
        kw_top = [rid for rid, _ in index.top(kw_scores, max(8 * k, 40))
                  if matches_filters(cache.facts.get(rid), flt)][: max(4 * k, 20)]
        if exact_where is not None:  # incidents listing the alert name among their symptoms
            got = col.get(where=_and(exact_where, where), include=[], limit=50)
            for rid in got["ids"]:
                exact[str(rid)] = "exact_name"
        extra = [rid for rid in dict.fromkeys([*kw_top, *exact]) if rid not in semantic]
        if extra:  # keyword / exact candidates the dense query did not return: score them exactly
            got = col.get(ids=[f"{r}#0" for r in extra] if is_rb else extra, include=["embeddings"])
            embs = got["embeddings"] if got["embeddings"] is not None else []
            for cid, emb in zip(got["ids"], embs, strict=False):
                rid = cid.rsplit("#", 1)[0] if is_rb else cid
                semantic[rid] = float(np.dot(np.asarray(emb, dtype=np.float32), qv))
        kw_of = {rid: index.score_of(kw_scores, rid) for rid in semantic}
        best_kw = max(kw_of.values(), default=0.0)
        rows: list[tuple[str, float, list[MatchReason], ScoreParts]] = []
        for rid, sem_raw in semantic.items():
            sem = max(sem_raw, 0.0)
            kw = kw_of[rid] / best_kw if best_kw > 0 else 0.0
            ex = 1.0 if rid in exact else 0.0
            score = SEMANTIC_WEIGHT * sem + KEYWORD_WEIGHT * kw + EXACT_BONUS * ex
            parts = ScoreParts(semantic=round(sem, 4), keyword=round(kw, 4), exact=ex)
            why: list[MatchReason] = [exact[rid]] if ex else []
            if kw > 0 and KEYWORD_WEIGHT * kw >= 0.25 * (score - EXACT_BONUS * ex):
                why.append("keyword")
            if SEMANTIC_WEIGHT * sem >= 0.25 * (score - EXACT_BONUS * ex) or not why:
                why.append("semantic")
            rows.append((rid, round(score, 4), why, parts))
        rows.sort(key=lambda r: (-r[1], r[0]))
        top = rows[:k]
        if not top:
            return []
        got = col.get(ids=[f"{r[0]}#0" if is_rb else r[0] for r in top], include=["metadatas"])
        metas = {(c.rsplit("#", 1)[0] if is_rb else c): m for c, m in zip(got["ids"], got["metadatas"] or [],
                                                                             strict=False)}
        return [(rid, sc, why, parts, index.matched_terms(rid, q_tokens)[:12], metas[rid])
                for rid, sc, why, parts in top if rid in metas]


def _as_filters(filters: StoreFilters | dict[str, Any] | None) -> StoreFilters | None:
    if filters is None or isinstance(filters, StoreFilters):
        return filters
    return StoreFilters.model_validate(filters)


def _identifier_words(text: str) -> list[str]:
    """Words that look like alert names (CamelCase or snake_case identifiers), lower-cased, at most 10."""
    words = _IDENT.findall(text)
    return _lower(words)[:10]


__all__ = ["IncidentStore", "StoreUnavailable", "UpsertResult", "where_from_filters", "open_server"]
