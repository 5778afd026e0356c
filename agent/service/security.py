"""Bearer-token auth, request body limits and per-request timeouts."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class TokenAuth:
    """A FastAPI dependency: requires ``Authorization: Bearer <token>`` when a token is configured.

    Args:
        token: the expected token; None or empty disables auth.
    """

    def __init__(self, token: str | None):
        self.token = token or None

    async def __call__(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        # Constant-time comparison: no timing side channel on the token.
        if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on the local machine (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token_set: bool) -> str | None:
    """The loud start-up warning for a server reachable from other machines without a token, else None."""
    if token_set or is_loopback(host):
        return None
    return (
        f"SECURITY WARNING: anomalist serve listens on {host} (beyond loopback) WITHOUT a bearer token. "
        "Anyone who can reach this port can upload logs, read reports and use the LLM. "
        "Set server.token (ANOMALIST_SERVER__TOKEN) or bind to 127.0.0.1."
    )


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length and while streaming (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, "invalid Content-Length")
                    return
                if declared > self.max_bytes:
                    await _send_json(send, 413, f"request body too large: {declared} bytes > {self.max_bytes}")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, f"request body too large: more than {self.max_bytes} bytes")


class TimeoutMiddleware:
    """Ends a request that runs past ``timeout_s`` with 504 (or cuts a started stream).

    Background work the request queued (a triage job) keeps running; only the HTTP exchange is bounded.
    """

    def __init__(self, app: ASGIApp, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracking_send), self.timeout_s)
        except TimeoutError:
            logger.warning("request %s %s timed out after %.1f s", scope.get("method"), scope.get("path"),
                           self.timeout_s)
            if not started:
                await _send_json(send, 504, f"request timed out after {self.timeout_s:g} s")
