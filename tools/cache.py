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


def fingerprint(*paths: Path, salt: str = "") -> str:
    """A short content key of ``paths`` (missing ones skipped): name, size, and the first and last MiB of each.
    Cheap on big weight files, and it changes whenever a model file is replaced."""
    import hashlib

    h = hashlib.sha256(salt.encode())
    for f in paths:
        if not f.is_file():
            continue
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read())
    return h.hexdigest()[:16]
