"""Old import path of the corpus names, kept while importers move to the modules that own them.

Reading sources is :mod:`codemlm.sources`, writing a data directory :mod:`codemlm.corpus_build`,
``stats.json`` :mod:`codemlm.corpus_stats`, redaction :mod:`codemlm.secrets`. Nothing in those
imports this module, so it closes no circle; delete it once no importer is left.
"""

from __future__ import annotations

from codemlm.corpus_build import FILES_COLUMNS, build_corpus, split_of
from codemlm.corpus_stats import load_stats, stats_table, write_stats
from codemlm.filters import SKIP_REASONS
from codemlm.secrets import redact_secrets
from codemlm.sources import (
    VENDORED_DIRS,
    CorpusStats,
    HFSource,
    SourceFile,
    iter_hf_dataset,
    iter_repository,
    stdlib_root,
)

__all__ = [
    "FILES_COLUMNS",
    "SKIP_REASONS",
    "VENDORED_DIRS",
    "CorpusStats",
    "HFSource",
    "SourceFile",
    "build_corpus",
    "iter_hf_dataset",
    "iter_repository",
    "load_stats",
    "redact_secrets",
    "split_of",
    "stats_table",
    "stdlib_root",
    "write_stats",
]
