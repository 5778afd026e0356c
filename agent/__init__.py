"""Anomalist's orchestration layer: LLM backends, triage pipeline, chat agent, settings, CLI and HTTP service."""

__version__ = "0.1.0"
