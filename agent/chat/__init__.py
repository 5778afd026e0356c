"""The chat agent: a LangGraph ``StateGraph`` over the tools of ``tools/`` (planning and router paths).

Public API: :class:`agent.chat.agent.ChatAgent` (``from_settings``, ``stream``, ``ask``),
:func:`agent.chat.graph.build_chat_graph`, :class:`agent.chat.router.ToolRouter`,
:class:`agent.chat.tool_exec.ToolExecutor`. Submodules are imported lazily by their users (the CLI and the
service), so importing this package stays cheap.
"""
