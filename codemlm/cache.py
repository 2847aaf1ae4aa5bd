"""Where codemlm keeps what it can rebuild: search indexes, the first-run training corpus."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$CODEMLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/codemlm``, else ``~/.cache/codemlm``."""
    if os.environ.get("CODEMLM_CACHE_DIR"):
        return Path(os.environ["CODEMLM_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "codemlm"
    return Path.home() / ".cache" / "codemlm"
