"""Mined hard negatives: the lexically closest code of another file, never a copy of the answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.contrastive import Pair
from training.hard_negatives import mine_hard_negatives, mine_nearest_negatives

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


# --------------------------------------------------------------------------- mined by the encoder
def _unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_encoder_negative_is_the_nearest_code_below_the_margin() -> None:
    queries = ["parse config", "write config", "parse text", "open socket"]
    codes = ["def parse_config", "def write_config", "def parse_text", "def open_socket"]
    groups = [0, 1, 2, 3]
    q = _unit([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1]])
    # pair 0's own code at cosine 0.80; code 2 sits nearer (0.99: above 0.95 * 0.80, a likely
    # second answer), code 1 lower (0.70): code 1 is the negative
    c = _unit([[0.8, 0.6, 0], [0.7, 0.71, 0], [0.99, 0.14, 0], [0, 0, 1]])
    chosen = mine_nearest_negatives(q, c, queries, codes, groups, margin=0.95)
    assert chosen[0] == 1
    assert chosen[3] in (0, 1, 2)  # its own code scores 1.0; every other one 0, below the margin
    # a margin of 1 passes over only what scores at least the positive: for pair 2 (its own code
    # at 0.99) the nearest other code is taken
    others = [j for j in range(4) if j != 2]
    assert mine_nearest_negatives(q, c, queries, codes, groups, margin=1.0)[2] == max(others, key=lambda j: q[2] @ c[j])
    assert mine_nearest_negatives(q, c, queries, codes, groups, margin=1.0)[0] == 1
    assert mine_nearest_negatives(q, c, queries, codes, groups, [False, True, True, True])[0] == -1
    with pytest.raises(ValueError, match="one entry per pair"):
        mine_nearest_negatives(q[:2], c, queries, codes, groups)
    with pytest.raises(ValueError, match="margin"):
        mine_nearest_negatives(q, c, queries, codes, groups, margin=0.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30), st.sampled_from([0.5, 0.9, 1.0]))
def test_an_encoder_negative_is_another_file_and_scores_below_the_margin(seed: int, n: int, margin: float) -> None:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 8)).astype(np.float32)
    c = rng.normal(size=(n, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    groups = rng.integers(0, 4, size=n).tolist()
    queries = [f"q{i % 5}" for i in range(n)]
    codes = [f"c{i % 7}" for i in range(n)]
    for i, j in enumerate(mine_nearest_negatives(q, c, queries, codes, groups, margin=margin, block=7)):
        if j >= 0:
            assert groups[j] != groups[i] and codes[j] != codes[i] and queries[j] != queries[i]
            assert float(q[i] @ c[j]) < margin * float(q[i] @ c[i]) + 1e-6
