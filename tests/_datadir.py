"""Build a small real data directory (files, tokenizer.json, tokens) for training tests."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FIXTURE_REPO", "build_data_dir"]

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"


def build_data_dir(out: Path, *, src: Path = FIXTURE_REPO, seq_len: int = 64, vocab_size: int = 512) -> Path:
    """The pipeline of ``codemlm corpus build``: walk and filter ``src`` (tree-sitter spans),
    train a BPE tokenizer on the train split, cut ``seq_len`` windows."""
    from datasets import load_from_disk

    from codemlm.config import ChunkingConfig, CorpusConfig
    from codemlm.corpus_build import build_corpus
    from codemlm.tokenizer import CodeTokenizer
    from codemlm.windows import tokenize_corpus

    # A fifth of the files held out, so validation has more than a window or two.
    build_corpus([src], out, CorpusConfig(validation_fraction=0.2), progress=False)
    train = load_from_disk(str(out / "files"))["train"]
    tokenizer = CodeTokenizer.train_from_iterator(train["text"], vocab_size=vocab_size)
    tokenizer.save(out / "tokenizer.json")
    tokenize_corpus(out / "files", tokenizer, ChunkingConfig(seq_len=seq_len, min_tokens=8), out / "tokens")
    return out
