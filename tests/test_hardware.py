"""The one precision rule of inference: bf16 autocast where asked, or where the hardware has it."""

from __future__ import annotations

import pytest

from codemlm.hardware import PRECISIONS, native_bf16_available, use_bf16


def test_fp32_and_bf16_are_what_they_say_and_auto_follows_the_hardware() -> None:
    assert PRECISIONS == ("auto", "fp32", "bf16")
    assert use_bf16("fp32") is False and use_bf16("bf16") is True
    assert use_bf16("auto") == native_bf16_available("cpu")


@pytest.mark.parametrize("name", ["fp16", "", "BF16"])
def test_an_unknown_precision_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        use_bf16(name)
