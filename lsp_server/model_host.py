"""The model the server serves from: found, loaded once, or absent with a reason.

Loading runs on the inference worker (it reads ~70 MB of safetensors for the ``small``
preset), so the event loop answers ``initialize`` at once and completion requests simply
queue behind the load. A missing or broken model is not an error for the server: it keeps
serving lexical search and says why completion is off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codemlm.errors import CodemlmError

if TYPE_CHECKING:
    from codemlm.checkpoint import LoadedModel
    from codemlm.embedder import Embedder
    from codemlm.infill import InfillEngine
    from codemlm.search_rerank import EncoderReranker

__all__ = ["ModelState", "load_model_state"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    """What the server can do with its model. ``problem`` says why there is none."""

    loaded: LoadedModel | None = None
    engine: InfillEngine | None = None
    embedder: Embedder | None = None  # the search index's: the static table when the model ships one
    problem: str | None = None
    reranker: EncoderReranker | None = None  # the model's search encoder, when it ships one

    @property
    def available(self) -> bool:
        return self.engine is not None

    @property
    def path(self) -> Path | None:
        return self.loaded.path if self.loaded is not None else None


def load_model_state(model_dir: str | None) -> ModelState:
    """Resolve and load the model (the ``modelDir`` setting, else the library's default).

    Never raises for a missing or broken model: the reason goes into ``problem``.
    """
    try:
        # Heavy imports (torch) happen here, on the worker, not at server start.
        from codemlm.checkpoint import load_model_dir, resolve_model_dir
        from codemlm.embedder import search_embedder
        from codemlm.infill import InfillEngine

        loaded = load_model_dir(resolve_model_dir(model_dir))
        state = ModelState(loaded=loaded, engine=InfillEngine(loaded), embedder=search_embedder(loaded),
                           reranker=_search_encoder(loaded.path))
    except CodemlmError as exc:
        logger.warning("no usable model: %s", exc)
        return ModelState(problem=str(exc))
    except Exception as exc:
        # torch, safetensors or the tokenizer failing in a way the library did not foresee:
        # the same outcome for a user. Raising here would fail every completion with -32603
        # and leave the status at "loading" for good.
        logger.exception("loading the model failed")
        return ModelState(problem=f"could not load the model: {type(exc).__name__}: {exc}")
    logger.info("model loaded from %s (%s)", loaded.path, loaded.config.name)
    return state


def _search_encoder(model_dir: Path) -> EncoderReranker | None:
    """The model's search encoder, if it ships one; a broken one only costs the reranking."""
    from codemlm.search_rerank import EncoderReranker, has_search_encoder

    if not has_search_encoder(model_dir):
        return None
    try:
        return EncoderReranker.from_model_dir(model_dir)
    except CodemlmError as exc:
        logger.warning("search without the encoder's reranking: %s", exc)
        return None
