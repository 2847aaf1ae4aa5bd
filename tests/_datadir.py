"""Build a small real data directory (files, tokenizer.json, tokens) for training tests."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FIXTURE_REPO", "build_data_dir"]

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"


def build_data_dir(out: Path, *, src: Path = FIXTURE_REPO, seq_len: int = 64, vocab_size: int = 512) -> Path:
    """Parse every supported file under ``src`` with tree-sitter, train a BPE tokenizer on it and
    cut ``seq_len`` windows: the DIR/files, DIR/tokenizer.json, DIR/tokens layout of INTERFACES.md."""
    from datasets import Dataset, DatasetDict

    from codemlm.config import ChunkingConfig
    from codemlm.languages import language_for_path
    from codemlm.syntax import parse
    from codemlm.tokenizer import CodeTokenizer
    from codemlm.windows import tokenize_corpus

    rows: list[dict] = []
    for path in sorted(src.rglob("*")):
        lang = language_for_path(path) if path.is_file() else None
        if lang is None:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        parsed = parse(text, lang.name)
        rows.append(
            {
                "repo": src.name,
                "path": path.relative_to(src).as_posix(),
                "language": lang.name,
                "text": text,
                "span_start": [s.start for s in parsed.spans],
                "span_end": [s.end for s in parsed.spans],
                "span_kind": [int(s.kind) for s in parsed.spans],
                "boundaries": parsed.boundaries,
            }
        )
    # Every 5th file is held out for validation.
    val = [r for i, r in enumerate(rows) if i % 5 == 4]
    train = [r for i, r in enumerate(rows) if i % 5 != 4]
    out.mkdir(parents=True, exist_ok=True)
    DatasetDict({"train": Dataset.from_list(train), "validation": Dataset.from_list(val)}).save_to_disk(
        str(out / "files")
    )
    tokenizer = CodeTokenizer.train_from_iterator((r["text"] for r in rows), vocab_size=vocab_size)
    tokenizer.save(out / "tokenizer.json")
    tokenize_corpus(out / "files", tokenizer, ChunkingConfig(seq_len=seq_len, min_tokens=8), out / "tokens")
    return out
