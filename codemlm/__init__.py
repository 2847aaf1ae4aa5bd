"""codemlm: a code encoder trained with syntax-aware span masking, for completion and search.

The public entry points, each imported on first use so ``import codemlm`` (and the CLI's
``--help``) stays fast and torch-free::

    import codemlm

    loaded = codemlm.load_model_dir(codemlm.resolve_model_dir(None))    # the shipped model
    engine = codemlm.InfillEngine(loaded)                                # masked-span completion
    index = codemlm.RepoIndex.open(codemlm.default_index_path("repo"), "repo")
    index.update()
    hits = codemlm.search_code(index, "parse the config file")               # hybrid code search
    reread = codemlm.EncoderReranker.from_model_dir(codemlm.resolve_model_dir(None))
    hits = reread.search(index, "parse the config file")                 # ... its top reread by the search encoder
    codemlm.build_corpus(["repo"], "data/")                             # a training data directory
    codemlm.evaluate_mlm(loaded, ["repo"]).accuracy                      # masked-token accuracy

Errors are :class:`CodemlmError` subclasses (``codemlm.errors``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from codemlm.errors import CodemlmError

__version__ = "0.1.0"

# name -> the module that owns it (imported lazily by __getattr__).
_LAZY = {
    "load_model_dir": "codemlm.checkpoint",
    "resolve_model_dir": "codemlm.checkpoint",
    "save_model_dir": "codemlm.checkpoint",
    "LoadedModel": "codemlm.checkpoint",
    "ModelConfig": "codemlm.config",
    "InfillEngine": "codemlm.infill",
    "InfillConfig": "codemlm.infill",
    "Candidate": "codemlm.infill",
    "RepoIndex": "codemlm.index",
    "default_index_path": "codemlm.index",
    # Not `search`: that name is the submodule codemlm.search, which an import would shadow.
    "search_code": "codemlm.search:search",
    "SearchResult": "codemlm.search",
    "EncoderReranker": "codemlm.search_rerank",
    "build_corpus": "codemlm.corpus_build",
    "iter_repository": "codemlm.sources",
    "CodeTokenizer": "codemlm.tokenizer",
    "CodeEncoder": "codemlm.model",
    "evaluate_mlm": "codemlm.eval_mlm",
}

__all__ = [
    "Candidate",
    "CodeEncoder",
    "CodeTokenizer",
    "CodemlmError",
    "EncoderReranker",
    "InfillConfig",
    "InfillEngine",
    "LoadedModel",
    "ModelConfig",
    "RepoIndex",
    "SearchResult",
    "__version__",
    "build_corpus",
    "default_index_path",
    "evaluate_mlm",
    "iter_repository",
    "load_model_dir",
    "resolve_model_dir",
    "save_model_dir",
    "search_code",
]

assert set(__all__) == {"CodemlmError", "__version__", *_LAZY}  # one list, kept in step

if TYPE_CHECKING:
    from codemlm.checkpoint import LoadedModel, load_model_dir, resolve_model_dir, save_model_dir
    from codemlm.config import ModelConfig
    from codemlm.corpus_build import build_corpus
    from codemlm.eval_mlm import evaluate_mlm
    from codemlm.index import RepoIndex, default_index_path
    from codemlm.infill import Candidate, InfillConfig, InfillEngine
    from codemlm.model import CodeEncoder
    from codemlm.search import SearchResult
    from codemlm.search import search as search_code
    from codemlm.search_rerank import EncoderReranker
    from codemlm.sources import iter_repository
    from codemlm.tokenizer import CodeTokenizer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'codemlm' has no attribute {name!r}")
    module, _, attribute = module.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
