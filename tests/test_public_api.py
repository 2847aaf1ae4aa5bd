"""`import codemlm`: an explicit public API, imported lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import codemlm


def test_every_public_name_resolves_to_its_owner() -> None:
    for name in codemlm.__all__:
        value = getattr(codemlm, name)
        assert value is not None, name
    assert codemlm.load_model_dir.__module__ == "codemlm.checkpoint"
    assert codemlm.search_code.__module__ == "codemlm.search"
    with pytest.raises(AttributeError):
        _ = codemlm.no_such_thing  # type: ignore[attr-defined]


def test_import_codemlm_does_not_import_torch() -> None:
    code = "import sys, codemlm; codemlm.resolve_model_dir; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
