"""Opening chromadb: embedded ``PersistentClient`` or ``HttpClient`` to a ``chroma run`` server, failing fast.

The embedded client is not safe for several processes writing the same directory: run one writer, or use a
``chroma run`` server (``store.mode = "server"``) when several processes or machines share the memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anomalist.tools.errors import AnomalistError

logger = logging.getLogger(__name__)


class StoreUnavailable(AnomalistError):
    """The incident store cannot be used (missing/unreadable directory, unreachable server, broken database).

    The message names the path or address. Callers that can go on without memory (triage, chat) catch this and
    mark their result degraded.
    """


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def open_embedded(path: Path, create: bool) -> Any:
    """A ``PersistentClient`` on ``path``; ``StoreUnavailable`` naming the path when it cannot be used.

    Args:
        path: the store directory.
        create: make the directory when missing (importers); False = a missing directory is an error (readers).
    """
    path = Path(path).expanduser()
    if not path.exists():
        if not create:
            raise StoreUnavailable(
                f"no incident store at {path}: import incidents or runbooks first "
                "(`anomalist incidents import`, `anomalist runbooks import`) or set store.path"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the incident store directory {path}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise StoreUnavailable(f"incident store path {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StoreUnavailable(f"incident store directory {path} is not readable (permission denied)")
    if not os.access(path, os.W_OK):
        # chromadb's sqlite needs to write its journal even to read.
        raise StoreUnavailable(f"incident store directory {path} is not writable (permission denied)")
    db = path / "chroma.sqlite3"
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise StoreUnavailable(f"incident store database {db} is not readable and writable (permission denied)")
    try:
        import chromadb

        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:  # chromadb raises many types (sqlite, rust bindings); name the path either way
        raise StoreUnavailable(f"cannot open the incident store at {path}: {type(exc).__name__}: {exc}") from exc


def server_url(host: str, port: int, ssl: bool = False) -> str:
    return f"{'https' if ssl else 'http'}://{host}:{port}"


def open_server(
    host: str, port: int, token: str | None = None, ssl: bool = False, timeout_s: float = 5.0,
    request_timeout_s: float = 60.0,
) -> Any:
    """An ``HttpClient`` to a ``chroma run`` server, after a heartbeat with a short timeout.

    chromadb's HTTP client has no timeout of its own, so an unreachable address would hang; the heartbeat
    makes that a ``StoreUnavailable`` naming the address within ``timeout_s``.
    """
    import httpx

    url = server_url(host, port, ssl)
    headers = {"Authorization": f"Bearer {token}", "X-Chroma-Token": token} if token else {}
    try:
        resp = httpx.get(f"{url}/api/v2/heartbeat", timeout=timeout_s, headers=headers)
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"chroma server at {url} is unreachable: {type(exc).__name__}: {exc}") from exc
    if resp.status_code in (401, 403):
        raise StoreUnavailable(f"chroma server at {url} refused the credentials (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise StoreUnavailable(f"chroma server at {url} answered HTTP {resp.status_code} to a heartbeat")
    try:
        import chromadb

        client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=_chroma_settings())
    except Exception as exc:
        raise StoreUnavailable(f"cannot connect to the chroma server at {url}: {type(exc).__name__}: {exc}") from exc
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):  # bound every later request too (the client sets timeout=None)
        session.timeout = httpx.Timeout(request_timeout_s, connect=timeout_s)
    return client


_CONNECTIVITY = ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "NetworkError",
                 "PoolTimeout", "WriteTimeout", "ReadError", "OperationalError", "DatabaseError")


@contextmanager
def guard(location: str) -> Iterator[None]:
    """Turn connection and database failures inside the block into ``StoreUnavailable`` naming ``location``."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        names = {c.__name__ for c in type(exc).__mro__}
        text = str(exc)
        if names & set(_CONNECTIVITY) or "Connection refused" in text or "disk I/O" in text or "readonly" in text:
            raise StoreUnavailable(f"incident store at {location} failed: {type(exc).__name__}: {exc}") from exc
        raise
