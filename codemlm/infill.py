"""Masked-span completion: fill the hole at the cursor from the code on both sides.

The encoder predicts masked tokens, but the hole's length in tokens is unknown. So:

1. **Window.** Take the code around the hole within a token budget (more on the left than
   on the right; a side that runs out gives its share to the other), cut at line boundaries.
2. **Lengths.** Put 1-6 or 8 ``<mask>`` tokens (fewer for an identifier, more for a
   multi-line selection) into the window: one sequence per length, all in ONE batch.
3. **Mask-Predict.** Predict every mask in parallel; keep the best lengths, branch on the
   top tokens of the first position (diversity for the top-k), then for a few rounds re-mask
   the least confident ``n = N·(T−t)/T`` tokens and predict them again, in one batch a round.
4. **Context candidates** (:mod:`codemlm.candidates`): names of the file and the repository,
   members seen after the same receiver, spans that fill the same syntax role elsewhere
   (tree-sitter), what followed the same last tokens, whole lines at a line start. The best
   ``score_top`` by evidence alone are scored by the model *for free*: with every position
   masked, an n-token candidate's log-probabilities are read off the first Mask-Predict forward
   of length n (a row is added only for a length not already in it).
5. **Rank** with :class:`codemlm.completion_ranker.Ranker`: a logistic regression over the
   evidence (source, count, distance, context matched around other occurrences, syntax
   validity) and the model's mean token log-probability, fitted on training-corpus holes.
   Its probability is the score and the **confidence gate**: candidates under
   ``min_probability`` are dropped, so a hole with nothing likely gets fewer (or no) answers.
   Each candidate says where it came from (``source``).
6. **Syntax check** (tree-sitter, when the language is known): a candidate that leaves the
   window with more ERROR/MISSING nodes than the empty hole does is ranked after every
   candidate that does not, and flagged ``syntax_ok=False``. ``InfillConfig(sources=...)``
   switches to model-only or context-only candidates (the evaluation's ablation rows).

Hole rules (what the editor sees in ``Candidate.start_byte/end_byte``):

* A cursor strictly inside an identifier (identifier characters on both sides) makes the hole
  run to the end of that identifier, so a candidate *replaces* the rest of the word instead of
  being inserted into it. The part left of the cursor stays as context.
* A cursor or a selection within one line is a single-line hole: candidates stop at the line
  end. A selection that spans lines may be filled with several lines.
* With ``InfillConfig(complete_typed_word=True)`` (for completion while typing), a cursor right
  after a partly typed word (``ret|``) hands that word to the model as the start of the hole;
  the first token must begin with it, and candidates are what follows (``urn a + b``), still
  inserted at the cursor. Off by default, because after a whole word (``seen.add|(x)``) it
  invites completions of a different word.
* A single space just left of the hole is handed to the model as part of the hole, because the
  tokenizer joins one leading space to the next word (``" return"``); a candidate that starts
  with that space gets it removed, so every candidate is inserted at the original position.

Latency: everything is a handful of batched forwards over short windows in
``torch.inference_mode``; on CPUs with native bf16 the forwards run under bf16 autocast
(``precision="auto"``). The syntax check parses the window, not the whole file, so its cost
does not grow with the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from codemlm.errors import ConfigError, InputError, PositionError
from codemlm.hardware import PRECISIONS, use_bf16

if TYPE_CHECKING:
    from codemlm.candidates import HoleContext, Repository
    from codemlm.checkpoint import LoadedModel
    from codemlm.completion_ranker import Evidence, Ranker

__all__ = ["SOURCE_MODES", "Candidate", "InfillConfig", "InfillEngine", "extend_hole"]

SOURCE_MODES = ("both", "model", "context")

# Identifier characters for the hole rules and the known-name bonus (Unicode letters, digits, _).
_IDENT_CHAR = re.compile(r"[^\W]", re.UNICODE)
_IDENT = re.compile(r"[^\W\d]\w*", re.UNICODE)


@dataclass(frozen=True)
class Candidate:
    """One completion: insert ``text`` in place of bytes ``[start_byte, end_byte)``."""

    text: str
    score: float  # the ranker's probability that this is what belongs here; higher is better
    start_byte: int
    end_byte: int
    syntax_ok: bool
    source: str = "model"  # where it came from: model, name, member, analog, role, continuation, wrap, line, compose


@dataclass(frozen=True)
class InfillConfig:
    """Knobs of the completion engine; defaults are tuned for a ``small`` model on 2 CPU cores."""

    # Whole window incl. the masks and <cls>/<sep>. 112 rather than 160 for the 14 M-parameter
    # `small`: completion p50 through the server 182 -> ~125 ms on 2 cores, EM@1 on the held-aside
    # validation holes 0.260 -> 0.253 (with refine_lengths 1; BENCHMARKS.md).
    max_context_tokens: int = 112
    left_share: float = 0.67  # share of the context budget before the hole
    # Exact token counts tried; 5 is common enough in held-out targets (9%) to earn its row.
    line_lengths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
    # Two lengths for a name: a third row cost ~13 ms through the server with `small` and moved
    # EM@1 on the validation holes by one hole in 1,200 (BENCHMARKS.md).
    identifier_lengths: tuple[int, ...] = (1, 2)
    # A selected name being replaced (fill selection): what goes there may be a short expression
    # ("b" -> "a * b"), and an explicit fill is not on the keystroke path.
    selected_identifier_lengths: tuple[int, ...] = (1, 2, 3)
    block_lengths: tuple[int, ...] = (2, 4, 8, 12, 16, 24)
    rounds: int = 2  # Mask-Predict iterations including the first prediction
    refine_lengths: int = 1  # how many of the best lengths (>1 token) are refined
    branches: int = 2  # top tokens tried at the first position of each refined length
    known_name_bonus: float = 0.3  # unused: the ranker weighs names now (kept so configs naming it load)
    # Complete a partly typed word: a cursor right after "ret" hands "ret" to the model as the
    # start of the hole, the first token must begin with it, and candidates continue it
    # ("urn a + b"). Off by default: after a whole word ("seen.add|(x)") it only adds noise.
    complete_typed_word: bool = False
    precision: str = "auto"  # "auto" (bf16 where the CPU has it natively), "fp32", "bf16"
    threads: int | None = None  # torch intra-op threads; None leaves the process setting
    # Where candidates come from: "model" (Mask-Predict only), "context" (the code's own names
    # and spans, no model at all) or "both" (context candidates judged by the model).
    sources: str = "both"
    # How many of the context candidates longer than every decoding length (best by evidence
    # alone) the model scores: each new length is one more row of the first forward, so this
    # bounds the latency (4 scored as well as 10 on held-aside stdlib holes, at a third the rows).
    score_top: int = 4
    # Every context candidate whose token length is one of the decoding lengths is scored too:
    # its row is in the first forward anyway, so this costs a tokenization, not a forward.
    score_every_free: bool = True
    max_fill_tokens: int = 24  # a longer context candidate is not scored by the model
    # Confidence gate: no answer at all unless the best candidate reaches this probability; once
    # there is an answer, alternatives down to ``min_probability_rest`` fill the top k.
    min_probability: float = 0.03
    min_probability_rest: float = 0.005

    def __post_init__(self) -> None:
        if self.max_context_tokens < 16:
            raise ConfigError(f"infill.max_context_tokens must be >= 16, got {self.max_context_tokens}")
        if not 0.0 < self.left_share < 1.0:
            raise ConfigError(f"infill.left_share must be in (0, 1), got {self.left_share}")
        for name in ("line_lengths", "identifier_lengths", "selected_identifier_lengths", "block_lengths"):
            lengths = getattr(self, name)
            if not lengths or any(n < 1 for n in lengths):
                raise ConfigError(f"infill.{name} must be positive token counts, got {lengths}")
        if self.rounds < 1 or self.refine_lengths < 0 or self.branches < 1:
            raise ConfigError("infill.rounds and infill.branches must be >= 1, refine_lengths >= 0")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"infill.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.sources not in SOURCE_MODES:
            raise ConfigError(f"infill.sources must be one of {', '.join(SOURCE_MODES)}, got {self.sources!r}")
        if self.score_top < 0 or self.max_fill_tokens < 1 or not 0.0 <= self.min_probability < 1.0 \
                or not 0.0 <= self.min_probability_rest < 1.0:
            raise ConfigError("infill.score_top must be >= 0, max_fill_tokens >= 1, min_probability(_rest) in [0, 1)")


@dataclass
class _Hole:
    start: int  # bytes replaced by a candidate (after the hole rules)
    end: int
    model_start: int  # where the model's hole starts (one healed space earlier, or = start)
    single_line: bool
    identifier: bool
    selected_tokens: int  # token length of the selected text (0 for a cursor)
    user_selection: bool = False  # the user selected text to replace (not a cursor's word rule)
    typed_word: bool = False  # bytes [model_start, start) are a typed word the fill must continue
    first_allowed: torch.Tensor | None = None  # Bool[V]: tokens that may start a typed-word fill


@dataclass
class _Window:
    left_ids: list[int]
    right_ids: list[int]
    left_text: str  # the code the window covers, for the syntax check
    right_text: str


@dataclass
class _Found:
    """A candidate being ranked: the text inserted at the hole and the evidence for it."""

    fill: str
    evidence: Evidence


@dataclass
class _Draft:
    """One masked sequence being decoded: a length, maybe a fixed first token."""

    length: int
    tokens: list[int]
    logp: list[float]
    fixed: int = 0  # leading positions that are never re-masked


def extend_hole(text: str, start_byte: int, end_byte: int) -> int:
    """End of the hole after the identifier rule: a cursor strictly inside an identifier
    extends to the identifier's end; anything else is left as it is."""
    if start_byte != end_byte:
        return end_byte
    data = text.encode("utf-8")
    # Only the neighbourhood matters; "ignore" drops a character cut by the slice edges.
    before = data[max(0, start_byte - 4) : start_byte].decode("utf-8", "ignore")[-1:]
    after = data[start_byte : start_byte + 4096].decode("utf-8", "ignore")
    if not before or not after or not _IDENT_CHAR.match(before) or not _IDENT_CHAR.match(after[0]):
        return end_byte
    match = re.match(r"\w+", after)
    return start_byte + len(match.group(0).encode("utf-8")) if match else end_byte


class InfillEngine:
    """Ranked completions for a hole in a document, from a loaded model directory."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_context_tokens: int | None = None,
        config: InfillConfig | None = None,
        ranker: Ranker | None = None,
    ) -> None:
        config = config or InfillConfig()
        if max_context_tokens is not None:
            config = replace(config, max_context_tokens=max_context_tokens)
        self.config = config
        self.model = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.device = next(self.model.parameters()).device
        # The window can never exceed what the model was built for.
        self.max_tokens = min(config.max_context_tokens, loaded.config.max_seq_len)
        self.max_seq_len = loaded.config.max_seq_len
        if config.threads:
            torch.set_num_threads(config.threads)
        self.autocast_bf16 = use_bf16(config.precision, self.device.type)
        # Predicting specials (<pad>, <mask>, ...) is never a completion.
        self._special = torch.tensor(sorted(self.tokenizer.special_ids), dtype=torch.long)
        self._vocab_bytes: list[bytes] | None = None  # token bytes, built on first typed-word hole
        self._model_path = getattr(loaded, "path", None)
        self._given_ranker = ranker
        self._rankers: dict[str, Ranker] = {}  # per source mode, from the model directory
        self._repository: tuple[tuple[int, int, str | None], Repository] | None = None

    @property
    def ranker(self) -> Ranker:
        """The ranker given, else the model directory's for the current ``sources`` mode (a
        ranker file may carry weights fitted on that mode's own rows: see ``Ranker.for_model_dir``)."""
        if self._given_ranker is not None:
            return self._given_ranker
        mode = self.config.sources
        if mode not in self._rankers:
            from codemlm.completion_ranker import Ranker

            self._rankers[mode] = Ranker.for_model_dir(self._model_path, mode)
        return self._rankers[mode]

    # ------------------------------------------------------------------ public API
    def complete(
        self,
        text: str,
        start_byte: int,
        end_byte: int | None = None,
        *,
        language: str | None = None,
        k: int = 5,
        repository: Repository | Sequence[str] | None = None,
    ) -> list[Candidate]:
        """Top-``k`` candidates for the bytes ``[start_byte, end_byte)`` of ``text``
        (a cursor when ``end_byte`` is None), best first; see the module doc for the rules.

        ``repository``: the *other* files of the repository (a :class:`Repository` built once,
        or their texts), searched for names, analogous spans and continuations. Fewer than
        ``k`` candidates (or none) come back when the rest are unlikely to be right.
        """
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        found, hole, window = self._collect(text, start_byte, end_byte, language, k, repository)
        return self._finish(found, hole, window, language, k)

    def evidence(
        self,
        text: str,
        start_byte: int,
        end_byte: int | None = None,
        *,
        language: str | None = None,
        repository: Repository | Sequence[str] | None = None,
    ) -> list[tuple[str, Evidence]]:
        """Every candidate with the evidence the ranker reads (syntax checked for all), unranked:
        for fitting the ranker (benchmarks/infill_fit_ranker.py) and for inspecting a hole."""
        found, _hole, window = self._collect(text, start_byte, end_byte, language, 5, repository)
        check = _syntax_checker(language)
        if check is not None:
            baseline = check(window.left_text + window.right_text)
            for f in found:
                f.evidence.syntax_ok = check(window.left_text + f.fill + window.right_text) <= baseline
        return [(f.fill, f.evidence) for f in found]

    def _collect(
        self, text: str, start_byte: int, end_byte: int | None, language: str | None, k: int,
        repository: Repository | Sequence[str] | None,
    ) -> tuple[list[_Found], _Hole, _Window]:
        data = _validate(text, start_byte, end_byte)
        hole = self._shape_hole(text, data, start_byte, start_byte if end_byte is None else end_byte)
        use_model = self.config.sources != "context"
        lengths = self._lengths(hole)
        evidence: dict[str, _Found] = {}
        context, typed = self._hole_context(data, hole, language)
        if self.config.sources != "model":
            self._add_context(evidence, context, self._repo(repository, language))
        given = data[hole.model_start : hole.start].decode("utf-8")
        # A candidate's row is the window plus its tokens, which must fit the model's positions.
        limit = min(self.config.max_fill_tokens, self.max_seq_len - self.max_tokens + max(lengths))
        fills = self._to_score(evidence, given, limit, set(lengths)) if use_model else []
        # The window is sized for the decoding lengths; a longer candidate's row runs a few tokens
        # past the budget rather than shrinking every row's context.
        window = self._window(data, hole, max(lengths))
        if use_model:
            all_masked: dict[int, torch.Tensor] = {len(ids): torch.empty(0) for _, ids in fills}
            drafts = self._decode(window, lengths, k, hole.first_allowed, all_masked=all_masked)
            for found, ids in fills:
                token_logp = all_masked[len(ids)][torch.arange(len(ids)), torch.tensor(ids)]
                e = found.evidence
                e.logp, e.logp_min, e.n_tokens = float(token_logp.mean()), float(token_logp.min()), len(ids)
            for fill, logp, worst, n in self._model_fills(drafts, hole, data):
                self._add_model(evidence, fill, (logp, worst, n), typed)
        from codemlm.candidates import hole_shape

        shape, bound = hole_shape(context), context.bound_names()
        for f in evidence.values():
            f.evidence.shape, f.evidence.assigned = shape, _bound(f.evidence.text, bound, language)
        return list(evidence.values()), hole, window

    # ------------------------------------------------------------------ hole and window
    def _shape_hole(self, text: str, data: bytes, start: int, end: int) -> _Hole:
        cursor = start == end
        end = extend_hole(text, start, end)
        selected = data[start:end].decode("utf-8")
        single_line = "\n" not in selected and "\r" not in selected
        identifier = bool(selected and _IDENT.fullmatch(selected)) or (
            not selected and data[start - 1 : start] == b"."
        )
        if cursor and end > start:
            identifier = True  # the rest of an identifier
        # Heal one space: the tokenizer trains " name" as one token, never " " + "name".
        model_start = start - 1 if data[start - 1 : start] == b" " and not selected.startswith(" ") else start
        # Token length of what the model's hole covers now (the healed space joins the first word).
        selected_tokens = len(self.tokenizer.encode(data[model_start:end].decode("utf-8")).ids) if selected else 0
        hole = _Hole(start, end, model_start, single_line, identifier, selected_tokens, user_selection=not cursor)
        if self.config.complete_typed_word and not selected:
            typed = re.search(r"\w{1,32}\Z", data[max(0, start - 128) : start].decode("utf-8", "ignore"))
            if typed:
                word_start = start - len(typed.group(0).encode("utf-8"))
                # The tokenizer joins one space to the word after it: hand that space over too.
                word_start -= data[word_start - 1 : word_start] == b" "
                allowed = self._first_token_filter(data[word_start:start])
                if allowed is not None:  # else no token starts with it: complete after the cursor
                    hole.model_start, hole.typed_word, hole.identifier = word_start, True, False
                    hole.first_allowed = allowed
        return hole

    def _first_token_filter(self, typed: bytes) -> torch.Tensor | None:
        """Bool[V]: tokens that begin with the typed bytes (None when no token does)."""
        if self._vocab_bytes is None:
            self._vocab_bytes = [self.tokenizer.token_bytes(i) for i in range(self.tokenizer.vocab_size)]
        allowed = torch.tensor([b.startswith(typed) and bool(b) for b in self._vocab_bytes])
        return allowed if bool(allowed.any()) else None

    def _lengths(self, hole: _Hole) -> list[int]:
        c = self.config
        if hole.identifier:
            base = c.selected_identifier_lengths if hole.user_selection else c.identifier_lengths
        else:
            base = c.line_lengths if hole.single_line else c.block_lengths
        lengths = set(base)
        if hole.selected_tokens:
            # The selection's own length is a good guess at the length of what replaces it.
            lengths.add(hole.selected_tokens)
        # Leave room for at least a few tokens of context on each side.
        cap = max(1, self.max_tokens - 2 - 8)
        return sorted({min(n, cap) for n in lengths})

    def _window(self, data: bytes, hole: _Hole, longest: int) -> _Window:
        budget = self.max_tokens - 2 - longest
        left_budget = int(budget * self.config.left_share)
        right_budget = budget - left_budget
        # Tokenize generous byte slices only (a token is rarely > 16 bytes), never the whole file.
        left_bytes = _cut_left(data[max(0, hole.model_start - 16 * budget) : hole.model_start], data, hole)
        right_bytes = _cut_right(data[hole.end : hole.end + 16 * budget], hole.end + 16 * budget < len(data))
        left = self.tokenizer.encode(left_bytes.decode("utf-8"))
        right = self.tokenizer.encode(right_bytes.decode("utf-8"))
        # A side shorter than its share gives the rest to the other side.
        if len(left.ids) < left_budget:
            right_budget = budget - len(left.ids)
        elif len(right.ids) < right_budget:
            left_budget = budget - len(right.ids)
        left_keep = _keep_left(left.ids, left.offsets, left_bytes, left_budget)
        right_keep = _keep_right(right.ids, right.offsets, right_bytes, right_budget)
        left_cut = left.offsets[-left_keep][0] if left_keep else len(left_bytes)
        right_cut = right.offsets[right_keep - 1][1] if right_keep else 0
        return _Window(
            left_ids=left.ids[len(left.ids) - left_keep :],
            right_ids=right.ids[:right_keep],
            left_text=left_bytes[left_cut:].decode("utf-8", "replace")
            + data[hole.model_start : hole.start].decode("utf-8"),
            right_text=right_bytes[:right_cut].decode("utf-8", "replace"),
        )

    # ------------------------------------------------------------------ decoding
    def _decode(
        self, window: _Window, lengths: list[int], k: int, first_allowed: torch.Tensor | None = None,
        *, all_masked: dict[int, torch.Tensor] | None = None,
    ) -> list[_Draft]:
        """Mask-Predict drafts for each length. With ``all_masked``, the log-probabilities of the
        first (all-masked) forward are kept per length ([n, V]) and rows of the lengths already in
        it are added: a context candidate of n tokens is scored by exactly that forward."""
        c = self.config
        extra = sorted(set(all_masked or ()) - set(lengths))
        keep: list[torch.Tensor] | None = [] if all_masked is not None else None
        with torch.inference_mode():
            first = self._predict(
                window, [[self.tokenizer.mask_id] * n for n in [*lengths, *extra]], width=max(k, c.branches),
                first_allowed=first_allowed, keep=keep,
            )
        if all_masked is not None and keep is not None:
            all_masked.update(zip([*lengths, *extra], keep, strict=True))
        first = first[: len(lengths)]
        drafts: list[_Draft] = []
        refine: list[tuple[float, _Draft, list[tuple[int, float]]]] = []
        for n, (tokens, logp, top) in zip(lengths, first, strict=True):
            draft = _Draft(n, tokens, logp)
            drafts.append(draft)
            if n == 1:
                # One position: its top-k tokens are the k best candidates of this length.
                drafts.extend(_Draft(1, [tok], [lp]) for tok, lp in top[0][1:k] if lp > -math.inf)
            else:
                refine.append((sum(logp) / n, draft, top[0]))
        refine.sort(key=lambda item: -item[0])
        active: list[_Draft] = []
        for _, draft, first_top in refine[: c.refine_lengths]:
            for rank, (tok, lp) in enumerate(first_top[: c.branches]):
                if lp == -math.inf:
                    break  # fewer allowed tokens than branches (typed-word filter)
                tokens, logp = list(draft.tokens), list(draft.logp)
                tokens[0], logp[0] = tok, lp
                branch = _Draft(draft.length, tokens, logp, fixed=1 if rank else 0)
                active.append(branch)
        drafts.extend(active)
        for t in range(1, c.rounds):
            masked: list[list[int]] = []
            for d in active:
                free = range(d.fixed, d.length)
                n = (d.length * (c.rounds - t)) // c.rounds
                worst = sorted(free, key=lambda i: d.logp[i])[: min(n, len(free))]
                masked.append(sorted(worst))
            todo = [(d, m) for d, m in zip(active, masked, strict=True) if m]
            if not todo:
                break
            seqs = [[self.tokenizer.mask_id if i in m else tok for i, tok in enumerate(d.tokens)] for d, m in todo]
            with torch.inference_mode():
                results = self._predict(window, seqs, width=1, first_allowed=first_allowed)
            for (d, m), (tokens, logp, _) in zip(todo, results, strict=True):
                for i in m:
                    d.tokens[i], d.logp[i] = tokens[i], logp[i]
        return drafts

    def _predict(
        self, window: _Window, holes: list[list[int]], *, width: int, first_allowed: torch.Tensor | None = None,
        keep: list[torch.Tensor] | None = None,
    ) -> list[tuple[list[int], list[float], list[list[tuple[int, float]]]]]:
        """One batched forward: every hole filling in its own copy of the window.

        Returns per sequence the argmax token and its log-probability at each hole position
        (fixed positions echo their token), plus the top-``width`` (token, logp) per position.
        ``first_allowed`` (Bool[V]) restricts the first hole position to those tokens.
        """
        tok = self.tokenizer
        seqs = [[tok.cls_id, *window.left_ids, *h, *window.right_ids, tok.sep_id] for h in holes]
        longest = max(map(len, seqs))
        ids = torch.full((len(seqs), longest), tok.pad_id, dtype=torch.long)
        attention = torch.zeros((len(seqs), longest), dtype=torch.bool)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = True
        offset = 1 + len(window.left_ids)
        is_mask = torch.zeros_like(attention)
        for row, h in enumerate(holes):
            for i, token in enumerate(h):
                is_mask[row, offset + i] = token == tok.mask_id
        ids, attention, is_mask = ids.to(self.device), attention.to(self.device), is_mask.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            hidden = self.model(ids, attention)  # [B, T, D]
            logits = self.model.mlm_logits(hidden[is_mask])  # [N, V], only the masks
        logits = logits.float()
        logits[:, self._special.to(logits.device)] = -math.inf
        if first_allowed is not None:
            # Flat index of each row's first hole position, when it is masked.
            firsts, flat = [], 0
            for h in holes:
                if h[0] == tok.mask_id:
                    firsts.append(flat)
                flat += sum(t == tok.mask_id for t in h)
            if firsts:
                rows = torch.tensor(firsts, device=logits.device)
                logits[rows[:, None], (~first_allowed).nonzero().flatten().to(logits.device)[None, :]] = -math.inf
        logp = torch.log_softmax(logits, dim=-1)
        if keep is not None:
            keep.extend(logp.cpu().split([sum(t == tok.mask_id for t in h) for h in holes]))
        top = logp.topk(width, dim=-1)  # [N, width]
        top_lp: list[list[float]] = top.values.cpu().tolist()
        top_ids: list[list[int]] = top.indices.cpu().tolist()
        out = []
        cursor = 0
        for h in holes:
            tokens, scores = list(h), [0.0] * len(h)
            tops: list[list[tuple[int, float]]] = []
            for i, token in enumerate(h):
                if token == tok.mask_id:
                    tokens[i], scores[i] = top_ids[cursor][0], top_lp[cursor][0]
                    tops.append(list(zip(top_ids[cursor], top_lp[cursor], strict=True)))
                    cursor += 1
                else:
                    tops.append([(token, 0.0)])
            out.append((tokens, scores, tops))
        return out

    # ------------------------------------------------------------------ candidates and scoring
    def _repo(self, repository: Repository | Sequence[str] | None, language: str | None) -> Repository | None:
        """A :class:`Repository` for the texts given (built once for the same sequence object)."""
        if repository is None:
            return None
        from codemlm.candidates import Repository

        if isinstance(repository, Repository):
            return repository
        key = (id(repository), len(repository), language)
        if self._repository is None or self._repository[0] != key:
            self._repository = (key, Repository(repository, language))
        return self._repository[1]

    def _hole_context(self, data: bytes, hole: _Hole, language: str | None) -> tuple[HoleContext, str]:
        """The hole as the context sources see it, and the typed word every candidate continues."""
        from codemlm.candidates import HoleContext

        prefix, suffix = data[: hole.start].decode("utf-8"), data[hole.end :].decode("utf-8")
        typed = ""
        if hole.typed_word:
            # Completing a typed word ("ret|"): candidates must start with it, and continue it.
            typed = data[hole.model_start : hole.start].decode("utf-8").lstrip(" ")
            prefix = prefix[: len(prefix) - len(typed)]
        return HoleContext.build(prefix, suffix, language, single_line=hole.single_line, typed=typed), typed

    def _add_context(self, found: dict[str, _Found], context: HoleContext, repository: Repository | None) -> None:
        """Context proposals into ``found``, as text to insert (after the typed word, if any)."""
        from codemlm.candidates import gather
        from codemlm.completion_ranker import Evidence

        typed, prefix = context.typed, context.left.text
        # Right after a word ("callable|"), a fill that starts with a word character would merge
        # into that word: only what can follow a whole word ("(...)", ".x", " if ...") is kept.
        after_word = not typed and bool(prefix) and bool(_IDENT_CHAR.match(prefix[-1]))
        for p in gather(context, repository):
            fill = p.text[len(typed) :]
            key = fill.strip()
            if not key or key in found or (after_word and _IDENT_CHAR.match(fill)):
                continue
            found[key] = _Found(fill, Evidence(p.text, frozenset(p.sources), count=p.count,
                                               left_match=p.left_match, right_match=p.right_match,
                                               distance=p.distance))

    def _to_score(self, found: dict[str, _Found], given: str, limit: int,
                  free: set[int]) -> list[tuple[_Found, list[int]]]:
        """The context candidates the model scores: every one whose token length is a decoding
        length (``free``: its log-probabilities come from a forward that runs anyway), and of
        the longer ones the best ``score_top`` by evidence alone (each new length is a row)."""
        if not found:
            return []
        items = list(found.values())
        if self.config.score_every_free:
            encoded = [a.tolist() for a in self.tokenizer.encode_ids_batch([given + f.fill for f in items])]
        else:
            encoded = [[] for _ in items]
        out = [(f, ids) for f, ids in zip(items, encoded, strict=True) if len(ids) in free]
        if self.config.score_top == 0:
            return out
        probs = self.ranker.probabilities([f.evidence for f in items])
        extra = 0
        for i in sorted(range(len(items)), key=lambda i: -probs[i]):
            ids = encoded[i] or self.tokenizer.encode(given + items[i].fill).ids
            if len(ids) in free and self.config.score_every_free:
                continue  # already scored
            if 0 < len(ids) <= limit:
                out.append((items[i], ids))
                extra += 1
                if extra == self.config.score_top:
                    break
        return out

    def _model_fills(self, drafts: list[_Draft], hole: _Hole, data: bytes) -> list[tuple[str, float, float, int]]:
        """Decoded drafts as (text to insert, mean token log-probability, the worst token's,
        token count), best per trimmed text."""
        given = data[hole.model_start : hole.start]  # bytes handed to the model as the hole's start
        best: dict[str, tuple[str, float, float, int]] = {}
        for d in drafts:
            tokens, logp = d.tokens, d.logp
            if hole.single_line:
                # Stop at the line end: newline tokens are whitespace-only pieces.
                cut = next((i for i, t in enumerate(tokens) if b"\n" in self.tokenizer.token_bytes(t)
                            or b"\r" in self.tokenizer.token_bytes(t)), len(tokens))
                tokens, logp = tokens[:cut], logp[:cut]
            if not tokens:
                continue
            raw = self.tokenizer.decode_bytes(tokens)
            if given and raw.startswith(given):
                raw = raw[len(given) :]  # already in the document: insert only what follows
            elif hole.typed_word:
                continue  # must continue the typed word (cannot happen with the first-token filter)
            try:
                fill = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # ends inside a multi-byte character
            key = fill.strip()
            score = sum(logp) / len(logp)
            if not key or not math.isfinite(score):
                continue
            if key not in best or best[key][1] < score:
                best[key] = (fill, score, min(logp), len(logp))
        return list(best.values())

    def _add_model(self, found: dict[str, _Found], fill: str, scores: tuple[float, float, int], typed: str) -> None:
        from codemlm.completion_ranker import Evidence

        logp, worst, n = scores
        key = fill.strip()
        known = found.get(key)
        if known is None:
            found[key] = _Found(fill, Evidence(typed + key, frozenset({"model"}), logp=logp, logp_min=worst,
                                               n_tokens=n))
            return
        e = known.evidence
        e.sources = e.sources | {"model"}
        if e.logp is None or logp > e.logp:
            e.logp, e.logp_min, e.n_tokens = logp, worst, n

    def _finish(self, found: list[_Found], hole: _Hole, window: _Window, language: str | None,
                k: int) -> list[Candidate]:
        """Rank by the ranker's probability (syntax-breaking candidates last), gate, cut to ``k``."""
        if not found:
            return []
        probs = self.ranker.probabilities([f.evidence for f in found])
        order = sorted(range(len(found)), key=lambda i: -probs[i])
        # Parsing costs ~0.3 ms a candidate: only the ones that can still reach the top k.
        short = [found[i] for i in order[: max(3 * k, 15)]]
        check = _syntax_checker(language)
        if check is not None:
            baseline = check(window.left_text + window.right_text)
            for f in short:
                f.evidence.syntax_ok = check(window.left_text + f.fill + window.right_text) <= baseline
            # Again over every candidate: the relative features compare each with all the others.
            probs = self.ranker.probabilities([f.evidence for f in found])
            order = sorted(range(len(found)), key=lambda i: -probs[i])
            short = [found[i] for i in order[: len(short)]]
        probs = [probs[i] for i in order[: len(short)]]
        from codemlm.completion_ranker import primary_source

        ranked = [Candidate(f.fill, p, hole.start, hole.end, f.evidence.syntax_ok, primary_source(f.evidence.sources))
                  for f, p in zip(short, probs, strict=True) if p >= self.config.min_probability_rest]
        ranked.sort(key=lambda c: (not c.syntax_ok, -c.score))
        if not ranked or ranked[0].score < self.config.min_probability:
            return []  # nothing likely enough: no answer beats a wrong one
        return ranked[:k]

    def _rank(self, candidates: list[Candidate], window: _Window, language: str | None, k: int) -> list[Candidate]:
        check = _syntax_checker(language)
        if check is None:
            return candidates[:k]
        baseline = check(window.left_text + window.right_text)
        flagged = [
            replace(c, syntax_ok=check(window.left_text + c.text + window.right_text) <= baseline)
            for c in candidates
        ]
        # Stable: within each group the score order is kept.
        flagged.sort(key=lambda c: not c.syntax_ok)
        return flagged[:k]


# ---------------------------------------------------------------------- helpers
def _validate(text: str, start: int, end: int | None) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise InputError("cannot complete in an empty document")
    if "\x00" in text:
        raise InputError("the document contains NUL bytes (binary content); nothing to complete")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise InputError(f"the document is not valid Unicode text: {exc.reason}") from exc
    end_ = start if end is None else end
    for name, pos in (("start", start), ("end", end_)):
        if not 0 <= pos <= len(data):
            raise PositionError(f"{name} byte {pos} is outside the document (length {len(data)} bytes)")
        if pos < len(data) and data[pos] & 0xC0 == 0x80:
            raise PositionError(f"{name} byte {pos} falls inside a multi-byte UTF-8 character")
    if end_ < start:
        raise PositionError(f"end byte {end_} comes before start byte {start}")
    return data


def _bound(text: str, bound: set[str], language: str | None) -> bool:
    """A name bound just above the hole, or an argument list made only of such names
    (``(key, value)`` after ``for key, value in ...``): what the code goes on to use."""
    if text in bound:
        return True
    if not text.startswith("(") or not bound:
        return False
    from codemlm.candidates.variants import split_arguments

    args = split_arguments(text, language)
    return bool(args) and all(a.lstrip("*") in bound for a in args)


def _cut_left(chunk: bytes, data: bytes, hole: _Hole) -> bytes:
    """Start a left slice at a line start unless it already begins the file."""
    if hole.model_start - len(chunk) <= 0:
        return chunk
    newline = chunk.find(b"\n")
    return chunk[newline + 1 :] if newline >= 0 else chunk[_first_char_boundary(chunk) :]


def _cut_right(chunk: bytes, truncated: bool) -> bytes:
    """End a right slice at a line end when it was cut from a longer file."""
    if not truncated:
        return chunk
    newline = chunk.rfind(b"\n")
    if newline >= 0:
        return chunk[: newline + 1]
    i = len(chunk)
    while i > 0 and chunk[i - 1] & 0xC0 == 0x80:
        i -= 1
    return chunk[: max(i - 1, 0)] if i and chunk[i - 1] >= 0xC0 else chunk[:i]


def _first_char_boundary(chunk: bytes) -> int:
    i = 0
    while i < len(chunk) and chunk[i] & 0xC0 == 0x80:
        i += 1
    return i


def _keep_left(ids: list[int], offsets: list[tuple[int, int]], raw: bytes, budget: int) -> int:
    """How many tokens to keep from the end of the left context: within budget, starting at a
    line start when possible."""
    if len(ids) <= budget:
        return len(ids)
    first = len(ids) - max(budget, 0)
    for i in range(first, len(ids)):
        start = offsets[i][0]
        if start == 0 or raw[start - 1 : start] == b"\n":
            return len(ids) - i
    return max(budget, 0)  # one very long line: keep the tokens nearest the hole


def _keep_right(ids: list[int], offsets: list[tuple[int, int]], raw: bytes, budget: int) -> int:
    """How many tokens to keep from the start of the right context, ending at a line end."""
    if len(ids) <= budget:
        return len(ids)
    for i in range(max(budget, 0), 0, -1):
        if b"\n" in raw[offsets[i - 1][0] : offsets[i - 1][1]]:
            return i
    return max(budget, 0)


def _syntax_checker(language: str | None) -> Callable[[str], int] | None:
    """error_count for a supported language, else None (unknown languages skip the check)."""
    if not language:
        return None
    from codemlm.errors import UnsupportedLanguageError
    from codemlm.languages import get_language

    try:
        name = get_language(language).name
    except UnsupportedLanguageError:
        return None
    from codemlm.syntax import error_count

    return lambda code: error_count(code, name)
