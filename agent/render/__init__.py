"""Renderers of a :class:`~agent.report.TriageReport`: Markdown, JSON and a self-contained HTML page."""

from __future__ import annotations

from typing import Literal

from anomalist.agent.report import TriageReport

Format = Literal["markdown", "json", "html"]
FORMATS: tuple[str, ...] = ("markdown", "json", "html")
_SUFFIX_FORMAT = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".html": "html", ".htm": "html"}


def render(report: TriageReport, fmt: Format = "markdown") -> str:
    """Render ``report`` as ``fmt`` ("markdown", "json" or "html"); returns the text."""
    if fmt == "markdown":
        from anomalist.agent.render.markdown import render_markdown

        return render_markdown(report)
    if fmt == "json":
        from anomalist.agent.render.json_ import render_json

        return render_json(report)
    if fmt == "html":
        from anomalist.agent.render.html import render_html

        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def format_for_path(path: str, default: Format = "markdown") -> Format:
    """The format implied by a file name's suffix (``report.html`` -> "html"), else ``default``."""
    for suffix, fmt in _SUFFIX_FORMAT.items():
        if str(path).lower().endswith(suffix):
            return fmt  # type: ignore[return-value]
    return default


__all__ = ["FORMATS", "Format", "format_for_path", "render"]
