"""codemlm-lsp: the language server that puts the codemlm encoder into editors.

Masked-span completion (``textDocument/completion``, ``textDocument/inlineCompletion``,
``codemlm.fillSelection``) and code search (``workspace/symbol``, ``codemlm.search``) over a
live index of the workspace. Start it with ``codemlm-lsp`` (stdio) or ``codemlm-lsp --tcp``.
"""

from __future__ import annotations

from codemlm import __version__

__all__ = ["__version__"]
