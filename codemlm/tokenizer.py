"""The byte-level BPE tokenizer, trained on the corpus, with byte offsets.

Byte offsets are the contract between tree-sitter spans, tokens and editor ranges, so this
module guarantees two things for any text:

* ``decode(encode(text).ids) == text`` (no normalizer, no prefix space, byte-level alphabet,
  special-token strings in the input are encoded as ordinary text);
* ``encode(text).offsets`` tile ``text.encode("utf-8")``: token ``i`` covers exactly the bytes
  ``offsets[i]``, consecutive and in order. They are computed from the byte length of each
  token (a byte-level token string has one character per byte), not from the character
  offsets that ``tokenizers`` reports, because a token may hold half of a multi-byte
  character and character offsets cannot say which half.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from codemlm.errors import TokenizerError

__all__ = [
    "PRETOKENIZE_PATTERN",
    "SPECIAL_TOKENS",
    "CodeTokenizer",
    "TokenizedText",
    "padded_batch",
]

SPECIAL_TOKENS = ("<pad>", "<unk>", "<cls>", "<sep>", "<mask>")  # ids 0..4 in this order

# Pre-tokenization for code (then byte-level BPE inside each piece). Identifiers stay whole
# pieces (with at most one leading space) so identifier spans align with token boundaries;
# punctuation never glues onto a following name ("self.x" -> "self" "." "x"); numbers (with
# at most one leading space) are cut every 3 digits; newlines group with the whitespace
# before them, and indentation is its own piece minus one space that joins the next word
# (GPT-2 style).
PRETOKENIZE_PATTERN = (
    r" ?[\p{L}_][\p{L}\p{N}_]*"
    r"| ?\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}_]+"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

# A line start whose indentation is spaces and tabs only and whose line is not blank: every
# piece of PRETOKENIZE_PATTERN ends at or before it, in any text that goes on from there (the
# newline group before it cannot reach past the indentation, nothing else crosses a newline),
# so a text cut there tokenizes to the whole text's first tokens. tests/test_tokenizer.py
# holds encode_ids_heads to that.
_SAFE_CUT = re.compile(r"\n(?=[ \t]*[^\s])")
_HEAD_CHARS_PER_TOKEN = 8  # code runs ~4 bytes a token here: a head this long rarely falls short


def _head(text: str, chars: int) -> str:
    """``text`` cut at the first safe line start at or after ``chars`` characters (whole if none)."""
    if len(text) <= chars:
        return text
    found = _SAFE_CUT.search(text, chars - 1)
    return text if found is None else text[: found.end()]


# The printable stand-ins ByteLevel uses for the 256 byte values (GPT-2's table).
_BYTE_ALPHABET = "".join(sorted(pre_tokenizers.ByteLevel.alphabet()))


@dataclass(frozen=True)
class TokenizedText:
    """Token ids and the byte range ``[start, end)`` of each token in the UTF-8 text."""

    ids: list[int]
    offsets: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.ids)


def _build_backend() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


class CodeTokenizer:
    """A trained byte-level BPE with the five special tokens at ids 0..4."""

    def __init__(self, backend: Tokenizer) -> None:
        self._backend = backend
        self._validate_and_index()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def train_from_iterator(
        cls, texts: Iterable[str], vocab_size: int = 16384, min_frequency: int = 2
    ) -> CodeTokenizer:
        """Train on ``texts``. A small corpus may yield fewer than ``vocab_size`` tokens."""
        if vocab_size < len(SPECIAL_TOKENS) + 256:
            raise TokenizerError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256}, got {vocab_size}")
        backend = _build_backend()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(_non_empty(texts), trainer=trainer)
        return cls(backend)

    @classmethod
    def from_str(cls, data: str) -> CodeTokenizer:
        try:
            backend = Tokenizer.from_str(data)
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise TokenizerError(f"not a valid tokenizer: {_first_line(exc)}") from exc
        return cls(backend)

    @classmethod
    def from_file(cls, path: str | Path) -> CodeTokenizer:
        path = Path(path)
        try:
            data = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise TokenizerError(f"tokenizer file not found: {path}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenizerError(f"cannot read tokenizer file {path}: {exc}") from exc
        try:
            return cls.from_str(data)
        except TokenizerError as exc:
            raise TokenizerError(f"{path}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_str(), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves half a tokenizer behind
        return path

    def to_str(self) -> str:
        return self._backend.to_str()

    def __getstate__(self) -> dict[str, Any]:  # for datasets.map(num_proc>1)
        return {"json": self.to_str()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._backend = Tokenizer.from_str(state["json"])
        self._validate_and_index()

    # -- properties ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return int(self._byte_lengths.shape[0])

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(range(len(SPECIAL_TOKENS)))

    pad_id = 0
    unk_id = 1
    cls_id = 2
    sep_id = 3
    mask_id = 4

    @property
    def byte_lengths(self) -> np.ndarray:
        """Int32[vocab]: how many UTF-8 bytes each token stands for (0 for specials)."""
        return self._byte_lengths

    # -- encoding -----------------------------------------------------------------------

    def encode(self, text: str) -> TokenizedText:
        return self._tokenized(self._backend.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[TokenizedText]:
        return [self._tokenized(e.ids) for e in self._encode_batch(texts)]

    def encode_ids_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids only (Int32 arrays): the fast path for building datasets."""
        return [np.asarray(e.ids, dtype=np.int32) for e in self._encode_batch(texts)]

    def encode_ids_heads(self, texts: Sequence[str], max_tokens: int) -> list[np.ndarray]:
        """``encode_ids_batch(texts)[i][:max_tokens]`` for each text, tokenizing only a head of
        each long one: cut where no pre-tokenizer piece can cross (``_head``), so the head's
        tokens are the whole text's first tokens; a head that holds too few is redone whole."""
        if max_tokens < 1:
            return [np.zeros(0, dtype=np.int32) for _ in texts]
        heads = [_head(text, max_tokens * _HEAD_CHARS_PER_TOKEN) for text in texts]
        encoded = self.encode_ids_batch(heads)
        short = [i for i, ids in enumerate(encoded) if len(ids) < max_tokens and len(heads[i]) < len(texts[i])]
        for i, ids in zip(short, self.encode_ids_batch([texts[i] for i in short]), strict=True):
            encoded[i] = ids
        return [ids[:max_tokens] for ids in encoded]

    def _encode_batch(self, texts: Sequence[str]) -> list[Any]:
        # Offsets come from byte lengths, so tokenizers' own (character) offsets are not
        # needed: encode_batch_fast skips them and is ~1.5x faster (tokenizers >= 0.21).
        fast = getattr(self._backend, "encode_batch_fast", None)
        if fast is not None:
            return list(fast(list(texts), add_special_tokens=False))
        return list(self._backend.encode_batch(list(texts), add_special_tokens=False))

    def byte_offsets(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end byte of each token of a text encoded from its beginning."""
        lengths = self._byte_lengths[np.asarray(ids, dtype=np.int64)]
        ends = np.cumsum(lengths, dtype=np.int64)
        return ends - lengths, ends

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (b"" for special tokens)."""
        if not 0 <= token_id < self.vocab_size:
            raise TokenizerError(f"token id {token_id} outside the vocabulary (size {self.vocab_size})")
        if token_id in self.special_ids:
            return b""
        return bytes(self._byte_of[c] for c in self._tokens[token_id])

    def name_ids(self) -> np.ndarray:
        """Int64[vocab]: a token that is one space plus another token maps to that token's id.

        ``" foo"`` and ``"foo"`` are the same name to identifier masking (which sees only
        ids): pass this as ``MaskingCollator(name_ids=...)``. Other tokens map to themselves.
        """
        out = np.arange(self.vocab_size, dtype=np.int64)
        space = _bytes_to_unicode()[ord(" ")]
        for idx, token in enumerate(self._tokens):
            if idx >= len(SPECIAL_TOKENS) and len(token) > 1 and token[0] == space:
                bare = self._backend.token_to_id(token[1:])
                if bare is not None:
                    out[idx] = bare
        return out

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped. Inverse of :meth:`encode`."""
        return self._backend.decode(list(ids), skip_special_tokens=True)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Raw bytes of ``ids`` (a slice may end inside a multi-byte character)."""
        return b"".join(self.token_bytes(int(i)) for i in ids)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Human-readable token strings (bytes decoded with replacement), for display."""
        return [
            SPECIAL_TOKENS[i] if i in self.special_ids else self.token_bytes(i).decode("utf-8", "replace")
            for i in map(int, ids)
        ]

    # -- internals ----------------------------------------------------------------------

    def _tokenized(self, ids: list[int]) -> TokenizedText:
        starts, ends = self.byte_offsets(ids)
        return TokenizedText(ids=ids, offsets=list(zip(starts.tolist(), ends.tolist(), strict=True)))

    def _validate_and_index(self) -> None:
        backend = self._backend
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            actual = backend.token_to_id(token)
            if actual != expected_id:
                raise TokenizerError(
                    f"special token {token!r} must have id {expected_id}, found {actual} "
                    f"(required: {', '.join(SPECIAL_TOKENS)} at ids 0..{len(SPECIAL_TOKENS) - 1})"
                )
        model = json.loads(backend.to_str()).get("model", {})
        if model.get("type") != "BPE":
            raise TokenizerError(f"expected a byte-level BPE model, found {model.get('type')!r}")
        vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        size = max(vocab.values()) + 1
        tokens = [""] * size
        for token, idx in vocab.items():
            tokens[idx] = token
        alphabet = set(_BYTE_ALPHABET)
        lengths = np.zeros(size, dtype=np.int32)
        for idx, token in enumerate(tokens):
            if idx < len(SPECIAL_TOKENS):
                continue
            if not token or not set(token) <= alphabet:
                raise TokenizerError(f"token {idx} ({token!r}) is not a byte-level token")
            lengths[idx] = len(token)
        self._tokens = tokens
        self._byte_lengths = lengths
        byte_encoder = _bytes_to_unicode()
        self._byte_of = {ch: b for b, ch in byte_encoder.items()}
        # Text that happens to contain "<mask>" etc. must stay text, or the round trip breaks.
        backend.encode_special_tokens = True
        backend.no_padding()
        backend.no_truncation()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the one ByteLevel uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text:
            yield text


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def padded_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Token rows as one right-padded batch: (ids Long[N, T], mask Bool[N, T]), T the longest row."""
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
