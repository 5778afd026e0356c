"""Error types shared by every layer."""

from __future__ import annotations


class AnomalistError(Exception):
    """Base class of Anomalist's own errors."""


class InputError(AnomalistError, ValueError):
    """The input cannot be used at all (empty, binary, unknown format, ...). The CLI exits with code 2."""

