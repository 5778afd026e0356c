"""``POST /v1/chat``: a question in, a Server-Sent Events stream of tool calls, tokens and the answer out."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from anomalist.agent.service.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

_END = object()


class ChatRequest(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    conversation_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                        description="Continue this conversation; omitted = a new one")


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event (``event:`` + one ``data:`` line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n".encode()


def build_router(runtime: ServiceRuntime, auth: Any) -> APIRouter:
    """The chat route; turns run on their own small pool so triages never starve them."""
    router = APIRouter(dependencies=[auth], tags=["chat"])
    pool = ThreadPoolExecutor(max_workers=runtime.settings.server.chat_concurrency, thread_name_prefix="chat")
    timeout_s = runtime.settings.server.request_timeout_s

    @router.post(
        "/v1/chat",
        summary="Ask a question; the answer streams as Server-Sent Events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "events: conversation, tool_call, tool_result, token, final, error"}},
    )
    async def chat(body: ChatRequest) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
        cancelled = threading.Event()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                agent = runtime.chat_agent()
                for event in agent.stream(body.question, body.conversation_id):
                    if cancelled.is_set():
                        break
                    put((event.type, event.data))
                runtime.metrics.chat_turns.labels("ok").inc()
            except Exception as exc:  # the stream reports it; the server goes on
                logger.exception("chat turn failed")
                runtime.metrics.chat_turns.labels("failed").inc()
                put(("error", {"message": f"{type(exc).__name__}: {exc}"}))
            finally:
                put(_END)

        async def events() -> AsyncIterator[bytes]:
            future = loop.run_in_executor(pool, produce)
            deadline = loop.time() + timeout_s
            try:
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        yield sse("error", {"message": f"chat turn timed out after {timeout_s:g} s"})
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), min(remaining, 15.0))
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if item is _END:
                        break
                    yield sse(*item)
            finally:
                cancelled.set()
                if not future.done():
                    future.add_done_callback(lambda f: f.exception())

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
