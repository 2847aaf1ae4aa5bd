"""What the model must predict: span selection (token / identifier / AST subtree) and the collator.

Everything below :class:`MaskingCollator` is a pure numpy function of (token ids, token spans,
rng). Each sequence gets exactly ``mask_budget(n_maskable, rate)`` masked tokens whatever the
strategy: spans are taken whole while they fit, and the remainder is filled with short random
runs, so the masking rate is the configured one and strategies compare at the same budget.

AST strategy (after AST-T5, Gong et al. 2024). AST-T5 walks the syntax tree drawing a
threshold θ ~ U[θmin, θmax] at each node: children larger than θ are recursed into, smaller
ones are masked whole. Here every span is compared against its own θ draw (the same law for
each child), which makes the set of candidates computable without a tree walk: a span is
"small" when its length is ≤ its θ (and ≤ ``max_span_tokens``); the candidates are the small
spans not inside another small span — exactly the nodes the recursive walk stops at. From
those, whole spans are drawn without replacement with probability proportional to
``kind_weights`` until the budget is spent; the rest of the budget goes to random runs of
1–9 tokens. Masked runs that touch simply form one longer masked run (the "merge" of
adjacent spans in AST-T5, which matters there because each run gets one sentinel).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codemlm.config import MaskingConfig
from codemlm.errors import ConfigError, InputError
from codemlm.kinds import SpanKind

__all__ = [
    "IGNORE_INDEX",
    "RUN_MAX",
    "RUN_MIN",
    "MaskSelection",
    "MaskedSequence",
    "MaskingCollator",
    "apply_replacement",
    "ast_candidates",
    "clean_spans",
    "greedy_fit",
    "kind_weight_table",
    "mask_budget",
    "mask_sequence",
    "select_ast",
    "select_identifier",
    "select_random_runs",
    "select_token",
]

# Label value of positions that carry no MLM target (the PyTorch cross-entropy default).
IGNORE_INDEX = -100

# The pure functions default to the config's defaults: one source for every masking number.
_DEFAULTS = MaskingConfig()
RUN_MIN, RUN_MAX = 1, 9  # lengths of the random runs that spend leftover budget
# Odd 64-bit multipliers for hashing identifier token sequences (fixed: masks are reproducible).
_NAME_HASH = np.random.default_rng(0x5EED).integers(1, 2**62, size=256, dtype=np.int64) | 1


@dataclass
class MaskSelection:
    """The chosen positions of one sequence, before replacement."""

    selected: np.ndarray  # Bool[T]
    kinds: np.ndarray  # Int8[T]: SpanKind of the span each selected token came from, 0 for runs
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # whole spans masked (start, end, kind)

    @property
    def count(self) -> int:
        return int(self.selected.sum())


def mask_budget(n_maskable: int, rate: float) -> int:
    """Tokens to mask in a sequence: ``rate`` of the maskable ones, rounded, at least 1."""
    if n_maskable <= 0:
        return 0
    return min(n_maskable, max(1, math.floor(rate * n_maskable + 0.5)))


def kind_weight_table(kind_weights: Mapping[str, float]) -> np.ndarray:
    """Float64[len(SpanKind)] indexed by kind value, from ``MaskingConfig.kind_weights`` labels."""
    table = np.zeros(len(SpanKind), dtype=np.float64)
    for kind in SpanKind:
        table[kind.value] = float(kind_weights.get(kind.label, 0.0))
    return table


def clean_spans(
    span_start: np.ndarray, span_end: np.ndarray, span_kind: np.ndarray, maskable: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep spans that are non-empty, inside the sequence and cover only maskable tokens.

    Returns them sorted by (start, -end), outer spans first, without exact duplicates of a
    range (the outermost kind is kept).
    """
    n = maskable.shape[0]
    s = np.asarray(span_start, dtype=np.int64)
    e = np.asarray(span_end, dtype=np.int64)
    k = np.asarray(span_kind, dtype=np.int8)
    if s.size == 0:
        return s, e, k
    blocked = np.concatenate(([0], np.cumsum(~maskable)))  # specials and pads before each position
    ok = (s >= 0) & (e <= n) & (e > s)
    ok &= blocked[np.clip(e, 0, n)] == blocked[np.clip(s, 0, n)]  # no special or pad inside
    if not ok.all():
        s, e, k = s[ok], e[ok], k[ok]
    if s.size > 1:
        step_s, step_e = s[1:] - s[:-1], e[1:] - e[:-1]
        if not ((step_s > 0) | ((step_s == 0) & (step_e <= 0))).all():  # windows come sorted already
            order = np.lexsort((-e, s))
            s, e, k = s[order], e[order], k[order]
        first = np.ones(s.size, dtype=bool)
        first[1:] = (s[1:] != s[:-1]) | (e[1:] != e[:-1])
        s, e, k = s[first], e[first], k[first]
    return s, e, k


def select_random_runs(
    free: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    selection: MaskSelection | None = None,
    *,
    run_min: int = RUN_MIN,
    run_max: int = RUN_MAX,
) -> MaskSelection:
    """Spend ``budget`` on runs of ``run_min``–``run_max`` free tokens (kind 0).

    ``free`` (Bool[T]) marks positions that may still be chosen; runs stop at the first
    position that is not free, so they never cross specials, padding or chosen spans. Each
    run starts at a uniformly drawn position among those still free (draws that hit a taken
    position are rejected).
    """
    n = free.shape[0]
    if selection is None:
        selection = MaskSelection(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int8))
    available = free & ~selection.selected
    candidates = np.flatnonzero(available)
    remaining = min(budget, int(candidates.size))
    if remaining <= 0:
        return selection
    # Visiting free positions in a random order and skipping the ones taken since is the
    # same as drawing uniformly among the still-free ones each time; plain Python lists
    # because each run touches only a handful of positions.
    lengths = rng.integers(run_min, run_max + 1, size=remaining).tolist()
    is_free = available.tolist()
    chosen: list[int] = []
    runs = 0
    # Usually a little budget is left: a few uniform draws (rejecting taken positions) do;
    # if they run out, a permutation of the candidates finishes the job.
    draws = candidates[rng.integers(candidates.size, size=2 * remaining + 4)].tolist()
    for pass_starts in (draws, None):
        if pass_starts is None:
            pass_starts = rng.permutation(candidates).tolist()
        for start in pass_starts:
            if not is_free[start]:
                continue
            stop = min(start + min(lengths[runs], remaining), n)
            runs += 1
            position = start
            while position < stop and is_free[position]:
                is_free[position] = False
                chosen.append(position)
                position += 1
            remaining -= position - start
            if remaining == 0:
                break
        if remaining == 0:
            break
    selection.selected[chosen] = True
    return selection


def select_token(maskable: np.ndarray, budget: int, rng: np.random.Generator) -> MaskSelection:
    """BERT: ``budget`` single tokens uniformly among the maskable ones."""
    n = maskable.shape[0]
    selected = np.zeros(n, dtype=bool)
    positions = np.flatnonzero(maskable)
    if budget > 0 and positions.size:
        selected[rng.choice(positions, size=min(budget, positions.size), replace=False)] = True
    return MaskSelection(selected, np.zeros(n, dtype=np.int8))


def greedy_fit(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Bool mask: walk ``sizes`` in order, taking each one that still fits the budget."""
    taken = [False] * sizes.size
    remaining = budget
    # A plain loop: tens of candidates, and it stops as soon as the budget is spent.
    for i, size in enumerate(sizes.tolist()):
        if remaining <= 0:
            break
        if 0 < size <= remaining:
            taken[i] = True
            remaining -= size
    return np.array(taken, dtype=bool)


def _mark_spans(selection: MaskSelection, starts: np.ndarray, ends: np.ndarray, kinds: np.ndarray) -> None:
    """Select disjoint spans and record their kinds."""
    selected, kind_of = selection.selected, selection.kinds
    if starts.size > 24:
        # Many spans (every occurrence of a few names): all positions at once, each span's
        # start repeated plus 0..size-1.
        sizes = ends - starts
        first_of = np.cumsum(sizes) - sizes
        positions = np.repeat(starts - first_of, sizes) + np.arange(int(sizes.sum()))
        selected[positions] = True
        kind_of[positions] = np.repeat(kinds, sizes)
        selection.spans.extend(zip(starts.tolist(), ends.tolist(), kinds.tolist(), strict=True))
        return
    for s, e, k in zip(starts.tolist(), ends.tolist(), kinds.tolist(), strict=True):
        selected[s:e] = True
        kind_of[s:e] = k
        selection.spans.append((s, e, k))


def _disjoint(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Bool mask over spans sorted by (start, -end): drop each one that overlaps an earlier kept one.

    One pass of a running maximum: exact for nested families (a nested span is dropped with
    its ancestor kept); for a chain of partial overlaps it may drop a span that only clashed
    with a dropped one, which only costs a candidate.
    """
    if starts.size < 2:
        return np.ones(starts.size, dtype=bool)
    prior = np.maximum.accumulate(np.concatenate(([-1], ends[:-1])))
    return starts >= prior


def select_identifier(
    input_ids: np.ndarray,
    span_start: np.ndarray,
    span_end: np.ndarray,
    span_kind: np.ndarray,
    maskable: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    all_occurrences: bool = _DEFAULTS.identifier_all_occurrences,
    max_span_tokens: int = _DEFAULTS.max_span_tokens,
    name_ids: np.ndarray | None = None,
) -> MaskSelection:
    """Whole identifier spans; with ``all_occurrences`` every occurrence of a chosen name.

    A name is its token id sequence, read through ``name_ids`` (Int64[vocab], e.g.
    :meth:`CodeTokenizer.name_ids`) when given so that ``" foo"`` and ``"foo"`` match. Names are taken in random order when all their
    occurrences fit the remaining budget (never some occurrences of a name: the model could
    copy a visible one); random runs spend what is left, and all of the budget in a
    sequence without identifiers. An identifier span nested in another one (a qualified
    name) counts as part of the outer name.
    """
    n = input_ids.shape[0]
    selection = MaskSelection(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int8))
    s, e, k = clean_spans(span_start, span_end, span_kind, maskable)
    keep = (k == SpanKind.IDENTIFIER) & (e - s <= max_span_tokens)
    s, e = s[keep], e[keep]
    keep = _disjoint(s, e)
    s, e = s[keep], e[keep]
    if s.size and budget > 0:
        sizes = e - s
        if all_occurrences:
            # Names as rows of token ids padded with -1; equal rows are the same name.
            width = int(sizes.max())
            offsets = np.arange(width)
            ids = input_ids if name_ids is None else name_ids[input_ids]
            names = np.where(offsets < sizes[:, None], ids[np.minimum(s[:, None] + offsets, n - 1)], -1)
            if width <= _NAME_HASH.size:
                # One 64-bit hash per name (wrapping multiply-add) so a 1-D unique groups them;
                # a collision would only hide two names together, never break the budget.
                hashed = ((names + 1) * _NAME_HASH[:width]).sum(axis=1)  # int64 arrays wrap silently
                _, group = np.unique(hashed, return_inverse=True)
            else:
                _, group = np.unique(names, axis=0, return_inverse=True)
            group = group.reshape(-1)
        else:
            group = np.arange(s.size)
        group_sizes = np.bincount(group, weights=sizes).astype(np.int64)
        order = rng.permutation(group_sizes.size)
        chosen_groups = np.zeros(group_sizes.size, dtype=bool)
        chosen_groups[order[greedy_fit(group_sizes[order], budget)]] = True
        take = chosen_groups[group]
        _mark_spans(
            selection, s[take], e[take], np.full(int(take.sum()), int(SpanKind.IDENTIFIER), dtype=np.int64)
        )
    return select_random_runs(maskable, budget - selection.count, rng, selection)


def ast_candidates(
    span_start: np.ndarray,
    span_end: np.ndarray,
    rng: np.random.Generator,
    *,
    theta_min: int,
    theta_max: int,
    max_span_tokens: int,
) -> np.ndarray:
    """Indices of the spans the AST walk would mask whole (spans sorted by (start, -end)).

    A span is small when its length ≤ its own θ ~ U[theta_min, theta_max] and ≤
    ``max_span_tokens``; candidates are the small spans not nested in an earlier small span
    and not overlapping an earlier candidate.
    """
    if span_start.size == 0:
        return np.zeros(0, dtype=np.int64)
    size = span_end - span_start
    theta = rng.integers(theta_min, theta_max + 1, size=size.size)
    small = np.flatnonzero((size <= theta) & (size <= max_span_tokens))
    if small.size == 0:
        return small
    ends = span_end[small]
    # In (start, -end) order an earlier span contains a later one iff its end reaches as far.
    previous_max_end = np.maximum.accumulate(np.concatenate(([-1], ends[:-1])))
    maximal = small[ends > previous_max_end]
    # Token spans of neighbouring nodes may share a token; keep the first of a clash.
    return maximal[_disjoint(span_start[maximal], span_end[maximal])]


def select_ast(
    span_start: np.ndarray,
    span_end: np.ndarray,
    span_kind: np.ndarray,
    maskable: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    kind_weights: np.ndarray,
    theta_min: int = _DEFAULTS.ast_theta_min,
    theta_max: int = _DEFAULTS.ast_theta_max,
    max_span_tokens: int = _DEFAULTS.max_span_tokens,
) -> MaskSelection:
    """AST-T5-style subtree masking (see the module docstring); exact budget."""
    n = maskable.shape[0]
    selection = MaskSelection(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int8))
    s, e, k = clean_spans(span_start, span_end, span_kind, maskable)
    if s.size and budget > 0:
        chosen = ast_candidates(
            s, e, rng, theta_min=theta_min, theta_max=theta_max, max_span_tokens=max_span_tokens
        )
        weights = kind_weights[k[chosen]]
        chosen, weights = chosen[weights > 0], weights[weights > 0]
        if chosen.size:
            # Weighted sampling without replacement (Efraimidis–Spirakis keys).
            keys = np.log(rng.random(chosen.size)) / weights
            chosen = chosen[np.argsort(-keys, kind="stable")]
            chosen = chosen[greedy_fit(e[chosen] - s[chosen], budget)]
            _mark_spans(selection, s[chosen], e[chosen], k[chosen].astype(np.int64))
    return select_random_runs(maskable, budget - selection.count, rng, selection)


def apply_replacement(
    input_ids: np.ndarray,
    selected: np.ndarray,
    mode: str,
    rng: np.random.Generator,
    *,
    mask_id: int,
    random_pool: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupted ids and labels. ``mode``: "bert" (80% mask / 10% random / 10% kept) or "mask"."""
    ids = np.asarray(input_ids, dtype=np.int64)
    labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
    positions = np.flatnonzero(selected)
    labels[positions] = ids[positions]
    corrupted = ids.copy()
    if mode == "mask":
        corrupted[positions] = mask_id
    elif mode == "bert":
        u = rng.random(positions.size)
        corrupted[positions[u < 0.8]] = mask_id
        swap = positions[(u >= 0.8) & (u < 0.9)]
        corrupted[swap] = random_pool[rng.integers(random_pool.size, size=swap.size)]
    else:
        raise ConfigError(f"unknown replacement mode {mode!r}")
    return corrupted, labels


@dataclass
class MaskedSequence:
    input_ids: np.ndarray  # Int64[T] corrupted
    labels: np.ndarray  # Int64[T]
    mask_kind: np.ndarray  # Int8[T]
    strategy: str
    selection: MaskSelection


def mask_sequence(
    input_ids: np.ndarray,
    span_start: np.ndarray,
    span_end: np.ndarray,
    span_kind: np.ndarray,
    config: MaskingConfig,
    rng: np.random.Generator,
    *,
    is_special: np.ndarray,
    mask_id: int,
    random_pool: np.ndarray,
    kind_weights: np.ndarray | None = None,
    strategy: str | None = None,
    name_ids: np.ndarray | None = None,
) -> MaskedSequence:
    """Mask one sequence per ``config`` (``strategy`` overrides the choice under "mixed").

    ``is_special`` is Bool[vocab]: ids never masked (specials, padding).
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    maskable = ~is_special[ids]
    budget = mask_budget(int(maskable.sum()), config.rate)
    if strategy is None:
        strategy = config.strategy
        if strategy == "mixed":
            names = list(config.mixed_weights)
            weights = np.array([config.mixed_weights[x] for x in names], dtype=np.float64)
            pick = int(np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(), "right"))
            strategy = names[min(pick, len(names) - 1)]  # cumsum may end a hair below 1.0
    if strategy == "token":
        selection = select_token(maskable, budget, rng)
    elif strategy == "identifier":
        selection = select_identifier(
            ids,
            span_start,
            span_end,
            span_kind,
            maskable,
            budget,
            rng,
            all_occurrences=config.identifier_all_occurrences,
            name_ids=name_ids,
            max_span_tokens=config.max_span_tokens,
        )
    elif strategy == "ast":
        selection = select_ast(
            span_start,
            span_end,
            span_kind,
            maskable,
            budget,
            rng,
            kind_weights=kind_weights if kind_weights is not None else kind_weight_table(config.kind_weights),
            theta_min=config.ast_theta_min,
            theta_max=config.ast_theta_max,
            max_span_tokens=config.max_span_tokens,
        )
    else:
        raise ConfigError(f"unknown masking strategy {strategy!r}")
    corrupted, labels = apply_replacement(
        ids,
        selection.selected,
        config.replacement_for(strategy),
        rng,
        mask_id=mask_id,
        random_pool=random_pool,
    )
    # kinds are only ever written at selected positions (runs leave 0), so no masking needed.
    return MaskedSequence(corrupted, labels, selection.kinds, strategy, selection)


class MaskingCollator:
    """Pads a list of training-view rows and masks each one from its own seeded rng.

    Rows need ``input_ids`` and ``index`` (plus ``span_start``/``span_end``/``span_kind``,
    empty if absent, and optionally ``epoch``). The mask of a row is a function of
    (seed, epoch, index) only, never of the worker or the batch it lands in.

    ``name_ids`` (optional, :meth:`CodeTokenizer.name_ids`) lets identifier masking treat a
    name with and without its leading space as one name; without it, ``" foo"`` after a
    space and ``"foo"`` after ``(`` are different names and one may stay visible.
    """

    def __init__(
        self,
        config: MaskingConfig,
        *,
        pad_id: int,
        mask_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        seed: int = 0,
        max_len: int | None = None,
        name_ids: np.ndarray | None = None,
    ) -> None:
        specials = {int(i) for i in special_ids} | {int(pad_id)}
        if any(not 0 <= i < vocab_size for i in specials | {int(mask_id)}):
            raise ConfigError("special ids must lie inside the vocabulary")
        if max_len is not None and max_len < 1:
            raise ConfigError("max_len must be positive")
        self.config = config
        self.pad_id = int(pad_id)
        self.mask_id = int(mask_id)
        self.vocab_size = int(vocab_size)
        self.seed = int(seed)
        self.max_len = max_len
        self.is_special = np.zeros(vocab_size, dtype=bool)
        self.is_special[sorted(specials)] = True
        self.random_pool = np.flatnonzero(~self.is_special)
        if self.random_pool.size == 0:
            raise ConfigError("the vocabulary holds only special tokens")
        self.kind_weights = kind_weight_table(config.kind_weights)
        # Optional: token id -> id of the same name without a leading space (identifier masking).
        self.name_ids = None if name_ids is None else np.asarray(name_ids, dtype=np.int64)
        if self.name_ids is not None and self.name_ids.shape != (vocab_size,):
            raise ConfigError(f"name_ids must have one entry per vocabulary id ({vocab_size})")

    def rng_for(self, index: int, epoch: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), int(index)])

    def mask_row(self, row: Mapping[str, Any]) -> MaskedSequence:
        ids = np.asarray(row["input_ids"], dtype=np.int64)
        if self.max_len is not None and ids.size > self.max_len:
            ids = ids[: self.max_len]  # spans past the cut are dropped by clean_spans
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise InputError(
                f"row {row.get('index')}: token id outside the vocabulary of {self.vocab_size} "
                "(was the dataset built with another tokenizer?)"
            )
        empty = np.zeros(0, dtype=np.int64)
        return mask_sequence(
            ids,
            np.asarray(row.get("span_start", empty), dtype=np.int64),
            np.asarray(row.get("span_end", empty), dtype=np.int64),
            np.asarray(row.get("span_kind", empty), dtype=np.int8),
            self.config,
            self.rng_for(int(row["index"]), int(row.get("epoch", 0) or 0)),
            is_special=self.is_special,
            mask_id=self.mask_id,
            random_pool=self.random_pool,
            kind_weights=self.kind_weights,
            name_ids=self.name_ids,
        )

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        masked = [self.mask_row(row) for row in examples]
        width = max((m.input_ids.size for m in masked), default=0)
        if self.max_len is not None:
            width = self.max_len
        batch = len(masked)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        labels = np.full((batch, width), IGNORE_INDEX, dtype=np.int64)
        mask_kind = np.zeros((batch, width), dtype=np.int64)
        attention = np.zeros((batch, width), dtype=bool)
        for i, m in enumerate(masked):
            t = m.input_ids.size
            input_ids[i, :t] = m.input_ids
            labels[i, :t] = m.labels
            mask_kind[i, :t] = m.mask_kind
            attention[i, :t] = True
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "labels": torch.from_numpy(labels),
            "mask_kind": torch.from_numpy(mask_kind),
        }
