"""``DIR/stats.json``: the one summary of a data directory, written once, read for display.

:func:`codemlm.corpus_build.build_corpus` writes it at the end of a build; ``codemlm corpus
stats``, training (the run's metadata) and the model card read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codemlm.errors import CorpusError, InputError
from codemlm.regular_files import read_regular_file

__all__ = ["STATS_MAX_BYTES", "load_stats", "stats_table", "write_stats"]

# A summary is kilobytes; the cap only stops a hostile file from being read into memory.
STATS_MAX_BYTES = 16 << 20


def write_stats(out_dir: str | Path, data: dict[str, Any]) -> Path:
    path = Path(out_dir) / "stats.json"
    tmp = path.with_name("stats.json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_stats(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / "stats.json"
    if not path.exists():
        raise InputError(f"no stats.json in {out_dir}: build the corpus first (codemlm corpus build)")
    try:
        data = json.loads(read_regular_file(path, max_bytes=STATS_MAX_BYTES).decode("utf-8"))
    except InputError as exc:  # a FIFO or a device in its place, or far too big
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:  # not JSON, not UTF-8
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CorpusError(f"{path} is not a JSON object")
    return data


def stats_table(data: dict[str, Any]) -> Any:
    """A rich Table of a stats.json mapping: filter counts, languages, splits, tokens."""
    from rich.table import Table

    table = Table(title="corpus", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    for reason, n in data.get("counts", {}).items():
        table.add_row(reason.replace("_", " "), f"{n:,}", style="bold green" if reason == "kept" else None)
    table.add_section()
    for language, n in data.get("languages", {}).items():
        table.add_row(f"files: {language}", f"{n:,}")
    table.add_section()
    for split, n in data.get("files", {}).items():
        size = data.get("bytes", {}).get(split, 0)
        table.add_row(f"{split} files (bytes)", f"{n:,} ({size:,})")
    tokens = data.get("tokens") or {}
    for split, info in (tokens.get("splits") or {}).items():
        table.add_row(f"{split} windows (tokens)", f"{info.get('windows', 0):,} ({info.get('tokens', 0):,})")
    if "seconds" in data:
        table.add_row("seconds", f"{data['seconds']:.1f}")
    for warning in data.get("warnings", []):
        table.add_row("warning", warning, style="yellow")
    return table
