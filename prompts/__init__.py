"""Prompt templates (Jinja2 files), versioned by content hash."""
