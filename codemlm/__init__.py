"""codemlm: a code encoder trained with syntax-aware span masking, for completion and search."""

from codemlm.errors import CodemlmError

__all__ = ["CodemlmError", "__version__"]

__version__ = "0.1.0"
