"""Where Anomalist keeps files it derives locally from packaged models (an int8 ONNX embedding model, an F16 copy of
the embedded GGUF): ``$ANOMALIST_CACHE_DIR`` or the user cache directory (e.g. ``~/.cache/anomalist``). Everything
here can be deleted; it is rebuilt on next use, offline."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str) -> Path:
    """``<cache root>/<sub>`` (not created)."""
    env = os.environ.get("ANOMALIST_CACHE_DIR")
    if env:
        return Path(env) / sub
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("anomalist")) / sub
