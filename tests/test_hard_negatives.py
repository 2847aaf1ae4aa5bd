"""Mined hard negatives: the lexically closest code of another file, never a copy of the answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.contrastive import Pair
from training.hard_negatives import mine_hard_negatives

PAIRS = [
    Pair("Parse the config file.", "def parse_config(path):\n    return load(path)", 0, "doc"),
    Pair("Write the config file.", "def write_config(path, data):\n    dump(path, data)", 0, "doc"),
    Pair("Parse a config string.", "def parse_config_text(text):\n    return loads(text)", 1, "doc"),
    Pair("Open a socket.", "def open_socket(host):\n    return connect(host)", 2, "doc"),
    Pair("Parse the config file.", "def parse_config_copy(path):\n    return load(path)", 3, "doc"),
    Pair("parse_config def parse_config(path):", "return load(path)", 1, "code"),
]


def _mine(pairs: list[Pair], *, code_views: bool = False) -> list[int]:
    return mine_hard_negatives([p.query for p in pairs], [p.code for p in pairs], [p.group for p in pairs],
                               [code_views or p.kind == "doc" for p in pairs], max_df=1.0)


def test_the_negative_shares_the_query_words_and_comes_from_another_file() -> None:
    chosen = _mine(PAIRS)
    # "Parse the config file." -> parse_config_text (file 1): file 0's own write_config and the
    # copy with the same docstring (file 3) are not negatives
    assert chosen[0] == 2
    assert chosen[2] in (0, 1, 4)
    assert chosen[5] == -1  # not wanted: none
    assert _mine(PAIRS, code_views=True)[5] >= 0
    assert _mine(PAIRS[:1]) == [-1]
    with pytest.raises(ValueError, match="one entry per pair"):
        mine_hard_negatives(["q"], ["c", "d"], [0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["parse", "write", "config", "socket", "read", "file"]),
                          st.sampled_from(["parse", "load", "dump", "config", "host"]),
                          st.integers(0, 3)), min_size=0, max_size=12))
def test_a_negative_is_never_the_same_file_code_or_query(rows: list[tuple[str, str, int]]) -> None:
    pairs = [Pair(f"{q} the thing {i % 3}", f"def {c}_{i % 4}():\n    return {q}", g, "doc")
             for i, (q, c, g) in enumerate(rows)]
    for i, j in enumerate(_mine(pairs)):
        if j >= 0:
            assert j != i
            assert pairs[j].group != pairs[i].group
            assert pairs[j].code != pairs[i].code and pairs[j].query != pairs[i].query
