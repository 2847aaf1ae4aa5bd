"""Masking: exact budgets, whole spans, specials untouched, determinism, the collator's tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codemlm.config import MaskingConfig
from codemlm.errors import ConfigError, InputError
from codemlm.kinds import SpanKind
from codemlm.masking import (
    IGNORE_INDEX,
    MaskingCollator,
    apply_replacement,
    ast_candidates,
    clean_spans,
    greedy_fit,
    kind_weight_table,
    mask_budget,
    mask_sequence,
    select_ast,
    select_identifier,
    select_random_runs,
)

VOCAB = 1000
PAD, UNK, CLS, SEP, MASK = range(5)
SPECIAL = frozenset(range(5))
STRATEGIES = ("token", "identifier", "ast", "mixed")
SPAN_KINDS = [k.value for k in SpanKind if k is not SpanKind.NONE]


def random_tree_spans(
    rng: np.random.Generator, start: int, end: int, depth: int = 0
) -> list[tuple[int, int, int]]:
    """A laminar family of spans over [start, end), like a syntax tree in token space."""
    spans: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        size = int(rng.integers(1, max(2, min(end - pos, 60)) + 1))
        size = min(size, end - pos)
        if rng.random() < 0.8:
            kind = (
                SpanKind.IDENTIFIER.value if size <= 2 and rng.random() < 0.7 else int(rng.choice(SPAN_KINDS))
            )
            spans.append((pos, pos + size, kind))
            if size > 2 and depth < 6:
                spans.extend(random_tree_spans(rng, pos + 1, pos + size - (rng.random() < 0.5), depth + 1))
        pos += size
    return spans


def make_row(
    rng: np.random.Generator, index: int, length: int | None = None, n_names: int = 12
) -> dict[str, Any]:
    """A training-view row: <cls> body <sep>, identifiers drawn from a small set of names."""
    length = length if length is not None else int(rng.integers(8, 400))
    body = rng.integers(5, VOCAB, size=length - 2)
    spans = random_tree_spans(rng, 1, length - 1)
    names = [rng.integers(5, VOCAB, size=int(rng.integers(1, 3))) for _ in range(n_names)]
    for s, e, k in spans:
        if k == SpanKind.IDENTIFIER:
            # Reuse names so "all occurrences" has something to do.
            name = names[int(rng.integers(len(names)))]
            if name.size == e - s:
                body[s - 1 : e - 1] = name
    ids = np.concatenate(([CLS], body, [SEP])).astype(np.int32)
    arr = np.array(spans, dtype=np.int64).reshape(-1, 3)
    return {
        "input_ids": ids.tolist(),
        "span_start": arr[:, 0].tolist(),
        "span_end": arr[:, 1].tolist(),
        "span_kind": arr[:, 2].tolist(),
        "index": index,
    }


def collator(strategy: str = "mixed", seed: int = 0, **kwargs: Any) -> MaskingCollator:
    max_len = kwargs.pop("max_len", None)
    config = MaskingConfig(strategy=strategy, **kwargs)
    return MaskingCollator(
        config, pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, seed=seed, max_len=max_len
    )


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(1234)
    out: list[dict[str, Any]] = []
    total = 0
    while total < 100_000:
        out.append(make_row(rng, len(out)))
        total += len(out[-1]["input_ids"])
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_rate_over_100k_tokens_hits_the_target(
    rows: list[dict[str, Any]], strategy: str, rate: float
) -> None:
    c = collator(strategy, rate=rate)
    masked = maskable = 0
    for i in range(0, len(rows), 64):
        batch = c(rows[i : i + 64])
        masked += int((batch["labels"] != IGNORE_INDEX).sum())
        maskable += int(batch["attention_mask"].sum()) - 2 * len(rows[i : i + 64])
    assert maskable > 99_000
    assert abs(masked / maskable - rate) < 0.01 * rate


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_sequence_gets_exactly_its_budget(rows: list[dict[str, Any]], strategy: str) -> None:
    c = collator(strategy)
    for row in rows[:150]:
        m = c.mask_row(row)
        n_maskable = len(row["input_ids"]) - 2
        assert m.selection.count == mask_budget(n_maskable, 0.15)
        assert (m.labels != IGNORE_INDEX).sum() == m.selection.count


def test_budget_rounds_and_is_at_least_one() -> None:
    assert mask_budget(0, 0.15) == 0
    assert mask_budget(1, 0.15) == 1
    assert mask_budget(6, 0.15) == 1
    assert mask_budget(10, 0.15) == 2  # 1.5 rounds up
    assert mask_budget(510, 0.15) == 77
    assert mask_budget(3, 0.99) == 3


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(STRATEGIES), pad=st.integers(0, 20))
def test_specials_and_padding_are_never_masked(seed: int, strategy: str, pad: int) -> None:
    rng = np.random.default_rng(seed)
    row = make_row(rng, 0, length=int(rng.integers(3, 120)))
    c = collator(strategy, seed=seed, max_len=len(row["input_ids"]) + pad)
    batch = c([row])
    ids = torch.tensor(row["input_ids"])
    t = ids.numel()
    labels, corrupted = batch["labels"][0], batch["input_ids"][0]
    assert labels[0] == IGNORE_INDEX and labels[t - 1] == IGNORE_INDEX
    assert (labels[t:] == IGNORE_INDEX).all() and (corrupted[t:] == PAD).all()
    assert corrupted[0] == CLS and corrupted[t - 1] == SEP
    assert batch["attention_mask"][0].sum() == t
    # Labels hold the original token exactly where masked, -100 elsewhere.
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen[:t]])
    assert (batch["mask_kind"][0][~chosen] == 0).all()
    # No special id was put into the sequence by the 10% random replacement.
    body = corrupted[1 : t - 1]
    assert not ((body < 5) & (body != MASK)).any()


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.1, 0.15, 0.3, 0.5]))
def test_ast_spans_are_masked_whole_and_stay_inside(seed: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    row = make_row(rng, 0)
    c = collator("ast", seed=seed, rate=rate)
    m = c.mask_row(row)
    t = len(row["input_ids"])
    given_spans = set(zip(row["span_start"], row["span_end"], row["span_kind"], strict=True))
    covered = np.zeros(t, dtype=bool)
    for s, e, k in m.selection.spans:
        assert (s, e, k) in given_spans  # a real span, not a piece of one
        assert 1 <= s < e <= t - 1  # never crosses <cls>/<sep>
        assert m.selection.selected[s:e].all()
        assert (m.mask_kind[s:e] == k).all()
        assert e - s <= 64
        assert not covered[s:e].any()  # chosen spans do not overlap
        covered[s:e] = True
    # Everything else that is masked came from random runs (kind 0).
    rest = m.selection.selected & ~covered
    assert (m.mask_kind[rest] == 0).all()
    # Full-mask replacement for span strategies ("auto").
    assert (m.input_ids[m.selection.selected] == MASK).all()


def reference_candidates(
    starts: np.ndarray, ends: np.ndarray, theta: np.ndarray, max_tokens: int
) -> list[int]:
    """The recursive AST-T5 walk over an explicit tree: stop at the first small node on each path."""
    order = list(range(len(starts)))
    children: dict[int, list[int]] = {-1: []}
    stack: list[int] = []
    for i in order:
        while stack and ends[stack[-1]] < ends[i]:
            stack.pop()
        children.setdefault(stack[-1] if stack else -1, []).append(i)
        children.setdefault(i, [])
        stack.append(i)
    out: list[int] = []

    def walk(node: int) -> None:
        for child in children[node]:
            size = ends[child] - starts[child]
            if size <= theta[child] and size <= max_tokens:
                out.append(child)
            else:
                walk(child)

    walk(-1)
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), theta_max=st.integers(1, 80), max_tokens=st.integers(1, 64))
def test_vectorized_candidates_equal_the_recursive_tree_walk(
    seed: int, theta_max: int, max_tokens: int
) -> None:
    rng = np.random.default_rng(seed)
    spans = np.array(random_tree_spans(rng, 1, int(rng.integers(3, 300))) or [(1, 2, 1)], dtype=np.int64)
    s, e, _ = clean_spans(spans[:, 0], spans[:, 1], spans[:, 2], np.ones(400, dtype=bool))
    theta_min = int(rng.integers(1, theta_max + 1))
    got = ast_candidates(
        s,
        e,
        np.random.default_rng(seed),
        theta_min=theta_min,
        theta_max=theta_max,
        max_span_tokens=max_tokens,
    )
    theta = np.random.default_rng(seed).integers(theta_min, theta_max + 1, size=s.size)
    assert sorted(got.tolist()) == reference_candidates(s, e, theta, max_tokens)


def test_ast_prefers_heavier_kinds() -> None:
    # Two kinds of equal-size spans side by side; weights 1 vs 0: only the weighted kind is chosen.
    t = 202
    starts = np.arange(1, t - 1, 4)
    kinds = np.where(np.arange(starts.size) % 2 == 0, SpanKind.EXPRESSION, SpanKind.BLOCK).astype(np.int8)
    weights = kind_weight_table({"expression": 1.0, "block": 0.0})
    maskable = np.ones(t, dtype=bool)
    maskable[[0, t - 1]] = False
    sel = select_ast(starts, starts + 4, kinds, maskable, 40, np.random.default_rng(0), kind_weights=weights)
    assert sel.count == 40
    assert {k for _, _, k in sel.spans} == {SpanKind.EXPRESSION}
    assert len(sel.spans) == 10


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_identifier_masks_every_occurrence_of_a_chosen_name(seed: int) -> None:
    rng = np.random.default_rng(seed)
    row = make_row(rng, 0, length=int(rng.integers(20, 300)), n_names=6)
    ids = np.array(row["input_ids"])
    maskable = ids >= 5
    s, e, k = clean_spans(
        np.array(row["span_start"]), np.array(row["span_end"]), np.array(row["span_kind"]), maskable
    )
    budget = mask_budget(int(maskable.sum()), 0.3)
    sel = select_identifier(ids, s, e, k, maskable, budget, np.random.default_rng(seed), all_occurrences=True)
    assert sel.count == budget
    ident = [
        (a, b)
        for a, b, kk in zip(s.tolist(), e.tolist(), k.tolist(), strict=True)
        if kk == SpanKind.IDENTIFIER and b - a <= 64
    ]
    # An identifier inside another identifier span is part of that name, not an occurrence.
    ident = [(a, b) for a, b in ident if not any(c <= a and b <= d and (c, d) != (a, b) for c, d in ident)]
    chosen_names = {tuple(ids[a:b]) for a, b, _ in sel.spans}
    for a, b in ident:
        if tuple(ids[a:b]) in chosen_names:
            assert sel.selected[a:b].all() and (sel.kinds[a:b] == SpanKind.IDENTIFIER).all()
    assert all(kk == SpanKind.IDENTIFIER for _, _, kk in sel.spans)


def test_identifier_without_all_occurrences_takes_single_spans() -> None:
    ids = np.array([CLS] + [7, 8] * 20 + [SEP])
    starts = np.arange(1, 41, 2)
    kinds = np.full(starts.size, SpanKind.IDENTIFIER, dtype=np.int8)
    maskable = ids >= 5
    # All 20 occurrences of the name [7] would need 20 tokens; the budget is 6.
    together = select_identifier(ids, starts, starts + 1, kinds, maskable, 6, np.random.default_rng(0), all_occurrences=True)
    assert together.spans == [] and together.count == 6
    single = select_identifier(
        ids, starts, starts + 1, kinds, maskable, 6, np.random.default_rng(0), all_occurrences=False
    )
    assert len(single.spans) == 6 and single.count == 6


def test_sequence_without_spans_falls_back_to_random_runs() -> None:
    config = MaskingConfig(strategy="ast", rate=0.2)
    ids = np.array([CLS, *range(10, 110), SEP])
    is_special = np.zeros(VOCAB, dtype=bool)
    is_special[:5] = True
    empty = np.zeros(0, dtype=np.int64)
    m = mask_sequence(
        ids,
        empty,
        empty,
        empty,
        config,
        np.random.default_rng(3),
        is_special=is_special,
        mask_id=MASK,
        random_pool=np.arange(5, VOCAB),
    )
    assert m.selection.count == 20 and m.selection.spans == []
    # Runs are 1..9 tokens long.
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], m.selection.selected.astype(int), [0])))))[::2]
    assert runs.max() <= 9 * 3  # touching runs merge; no single draw is longer than 9


def test_random_runs_never_cross_blocked_positions() -> None:
    free = np.ones(50, dtype=bool)
    free[::5] = False
    sel = select_random_runs(free, 30, np.random.default_rng(0))
    assert sel.count == 30 and not sel.selected[::5].any()


def test_bert_replacement_proportions() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, size=200_000)
    selected = rng.random(ids.size) < 0.15
    corrupted, labels = apply_replacement(
        ids, selected, "bert", rng, mask_id=MASK, random_pool=np.arange(5, VOCAB)
    )
    n = selected.sum()
    as_mask = (corrupted[selected] == MASK).mean()
    kept = (corrupted[selected] == ids[selected]).mean()
    swapped = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(swapped - 0.1) < 0.01
    assert (corrupted[~selected] == ids[~selected]).all()
    assert (labels[selected] == ids[selected]).all() and (labels[~selected] == IGNORE_INDEX).all() and n > 0


def test_token_strategy_uses_bert_replacement_and_span_strategies_full_mask(
    rows: list[dict[str, Any]],
) -> None:
    for strategy, expected in [("token", 0.8), ("ast", 1.0), ("identifier", 1.0)]:
        batch = collator(strategy)(rows[:64])
        chosen = batch["labels"] != IGNORE_INDEX
        share = (batch["input_ids"][chosen] == MASK).float().mean().item()
        assert abs(share - expected) < 0.04, (strategy, share)
    batch = collator("ast", replacement="bert")(rows[:64])
    chosen = batch["labels"] != IGNORE_INDEX
    assert abs((batch["input_ids"][chosen] == MASK).float().mean().item() - 0.8) < 0.04


def test_mixed_uses_each_strategy_by_weight(rows: list[dict[str, Any]]) -> None:
    c = collator("mixed", mixed_weights={"token": 0.5, "ast": 0.5})
    used = [c.mask_row(r).strategy for r in rows[:400]]
    assert set(used) == {"token", "ast"}
    assert 0.4 < used.count("token") / len(used) < 0.6


def test_same_seed_and_index_give_the_same_mask_in_any_batch(rows: list[dict[str, Any]]) -> None:
    c = collator("mixed", seed=7)
    alone = c([rows[5]])
    in_batch = c([rows[9], rows[5], rows[2]])
    t = len(rows[5]["input_ids"])
    for key in ("input_ids", "labels", "mask_kind"):
        assert torch.equal(alone[key][0, :t], in_batch[key][1, :t])
    again = collator("mixed", seed=7)([rows[9], rows[5], rows[2]])
    assert all(torch.equal(in_batch[k], again[k]) for k in in_batch)
    other_seed = collator("mixed", seed=8)([rows[9], rows[5], rows[2]])
    assert not torch.equal(in_batch["labels"], other_seed["labels"])
    next_epoch = c([{**rows[9], "epoch": 1}, {**rows[5], "epoch": 1}, {**rows[2], "epoch": 1}])
    assert not torch.equal(in_batch["labels"], next_epoch["labels"])


def test_collator_output_shapes_and_dtypes(rows: list[dict[str, Any]]) -> None:
    batch = collator("mixed")(rows[:8])
    width = max(len(r["input_ids"]) for r in rows[:8])
    for key in ("input_ids", "labels", "mask_kind"):
        assert batch[key].dtype == torch.long and batch[key].shape == (8, width)
    assert batch["attention_mask"].dtype == torch.bool and batch["attention_mask"].shape == (8, width)
    fixed = collator("mixed", max_len=512)(rows[:3])
    assert fixed["input_ids"].shape == (3, 512)


def test_max_len_truncates_and_drops_spans_past_the_cut(rows: list[dict[str, Any]]) -> None:
    long_row = next(r for r in rows if len(r["input_ids"]) > 200)
    batch = collator("ast", max_len=100)([long_row])
    assert batch["input_ids"].shape == (1, 100)
    assert batch["attention_mask"].all()


def test_row_with_out_of_vocabulary_ids_is_rejected() -> None:
    with pytest.raises(InputError, match="vocabulary"):
        collator()([{"input_ids": [CLS, VOCAB + 3, SEP], "index": 0}])


def test_spans_touching_specials_or_out_of_range_are_ignored() -> None:
    maskable = np.array([False, True, True, True, False])
    s, e, k = clean_spans(
        np.array([0, 1, 2, 3, 1, 2]), np.array([2, 4, 9, 3, 4, 3]), np.array([1, 2, 3, 4, 5, 6]), maskable
    )
    # (0,2) touches <cls>, (2,9) runs past the end, (3,3) is empty; the duplicate (1,4) keeps its first kind.
    assert list(zip(s.tolist(), e.tolist(), k.tolist(), strict=True)) == [(1, 4, 2), (2, 3, 6)]


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 30), max_size=40), budget=st.integers(0, 200))
def test_greedy_fit_takes_each_item_that_still_fits(sizes: list[int], budget: int) -> None:
    expected, remaining = [], budget
    for size in sizes:
        expected.append(0 < size <= remaining)
        remaining -= size if expected[-1] else 0
    assert greedy_fit(np.array(sizes, dtype=np.int64), budget).tolist() == expected


def test_collator_rejects_bad_construction() -> None:
    with pytest.raises(ConfigError, match="inside the vocabulary"):
        MaskingCollator(MaskingConfig(), pad_id=0, mask_id=VOCAB, vocab_size=VOCAB, special_ids=SPECIAL)
    with pytest.raises(ConfigError, match="max_len"):
        MaskingCollator(
            MaskingConfig(), pad_id=0, mask_id=4, vocab_size=VOCAB, special_ids=SPECIAL, max_len=0
        )


def test_identifier_with_many_occurrences_masks_them_all() -> None:
    # Name [7, 8] occurs 30 times (60 tokens), name [9] 10 times; budget 70 fits both.
    body = [7, 8, 20] * 30 + [9, 21] * 10
    ids = np.array([CLS, *body, SEP])
    starts = np.array([1 + 3 * i for i in range(30)] + [91 + 2 * i for i in range(10)])
    ends = starts + np.array([2] * 30 + [1] * 10)
    kinds = np.full(starts.size, SpanKind.IDENTIFIER, dtype=np.int8)
    sel = select_identifier(ids, starts, ends, kinds, ids >= 5, 70, np.random.default_rng(0))
    assert sel.count == 70 and len(sel.spans) == 40
    assert sel.selected[ids == 7].all() and sel.selected[ids == 9].all()
    assert (sel.kinds[sel.selected] == SpanKind.IDENTIFIER).all()
    assert not sel.selected[ids == 20].any() and not sel.selected[ids == 21].any()


def test_name_ids_join_a_name_with_and_without_its_leading_space() -> None:
    # Token 17 is " foo", token 7 is "foo": one name, in 5 + 5 occurrences.
    body = [7, 20, 17, 21] * 5 + [30, 31] * 20
    ids = np.array([CLS, *body, SEP])
    starts = np.array([1 + 4 * i for i in range(5)] + [3 + 4 * i for i in range(5)])
    kinds = np.full(starts.size, SpanKind.IDENTIFIER, dtype=np.int8)
    name_ids = np.arange(VOCAB)
    name_ids[17] = 7
    for seed in range(20):
        sel = select_identifier(
            ids, starts, starts + 1, kinds, ids >= 5, 12, np.random.default_rng(seed), name_ids=name_ids
        )
        assert sel.selected[ids == 7].all() == sel.selected[ids == 17].all()  # together or not at all
        assert sel.selected[ids == 7].any() == sel.selected[ids == 7].all()
        assert sel.selected[ids == 7].all()  # the only name; it fits the budget of 12
        plain = select_identifier(ids, starts, starts + 1, kinds, ids >= 5, 12, np.random.default_rng(seed))
        assert plain.count == 12
    c = MaskingCollator(
        MaskingConfig(strategy="identifier", rate=0.3),
        pad_id=PAD,
        mask_id=MASK,
        vocab_size=VOCAB,
        special_ids=SPECIAL,
        name_ids=name_ids,
    )
    row = {
        "input_ids": ids.tolist(),
        "span_start": starts.tolist(),
        "span_end": (starts + 1).tolist(),
        "span_kind": kinds.tolist(),
        "index": 0,
    }
    labels = c([row])["labels"][0]
    assert (labels[torch.from_numpy(ids == 7)] == 7).all() and (
        labels[torch.from_numpy(ids == 17)] == 17
    ).all()
    with pytest.raises(ConfigError, match="name_ids"):
        MaskingCollator(
            MaskingConfig(),
            pad_id=PAD,
            mask_id=MASK,
            vocab_size=VOCAB,
            special_ids=SPECIAL,
            name_ids=name_ids[:5],
        )
